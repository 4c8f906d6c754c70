"""A few lines of run status: what runs where, a progress bar with ETA, files written.

Everything shown is computed from event data only (no clock), so the panel is the same on every
redraw and in snapshots.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from tui.widgets.text import fit_line

_UNSET = object()

STATUS_STYLES = {
    "idle": "dim",
    "starting": "bold",
    "running": "bold green",
    "stopping": "bold yellow",
    "completed": "bold green",
    "stopped": "bold yellow",
    "failed": "bold red",
}


def bar(fraction: float, width: int) -> str:
    """A text progress bar that reads without colour."""
    fraction = min(max(fraction, 0.0), 1.0)
    width = max(width, 4)
    full = int(round(fraction * width))
    return "█" * full + "░" * (width - full)


class ProgressPanel(Widget):
    """Status word + headline, a progress line with a bar, and one detail line."""

    DEFAULT_CSS = """
    ProgressPanel { height: 3; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.status = "idle"
        self.headline = "nothing running: fill the form and press F5 to start"
        self.fraction: float | None = None
        self.progress = ""
        self.detail = ""

    def set(
        self,
        *,
        status: str | None = None,
        headline: str | None = None,
        fraction: float | None | object = _UNSET,
        progress: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Change what is given; `fraction=None` removes the bar (a new run has none yet)."""
        if status is not None:
            self.status = status
        if headline is not None:
            self.headline = headline
        if fraction is not _UNSET:
            self.fraction = fraction  # type: ignore[assignment]
        if progress is not None:
            self.progress = progress
        if detail is not None:
            self.detail = detail
        self.refresh()

    def render(self) -> RenderResult:
        width = self.size.width or 80
        # each line is `a · b · c` parts: whole parts are dropped to fit, never half a word
        first = Text()
        first.append(f"{self.status:<10}", STATUS_STYLES.get(self.status, ""))
        first.append(fit_line(self.headline, width - 10))
        second = Text()
        if self.fraction is not None:
            second.append(bar(self.fraction, max(8, min(30, width // 4))), "green")
            second.append(f" {100 * self.fraction:3.0f}% ")
        second.append(fit_line(self.progress, width - len(second.plain)))
        third = Text(fit_line(self.detail, width), "dim")
        return Text("\n").join([first, second, third])

"""One line of text fitted to its width when drawn (see `tui.widgets.text`): a path keeps its
end, a status line loses whole parts, so a narrow terminal never shows half a word."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Size
from textual.widget import Widget

from tui.widgets.text import fit_line, fit_lines


class FitLine(Widget):
    """`text` (`a · b · c` parts, paths allowed) in one line of whatever width it gets."""

    DEFAULT_CSS = """
    FitLine { height: 1; }
    """

    def __init__(self, text: str = "", *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.text = text

    def update(self, text: str) -> None:
        self.text = text
        self.refresh()

    def render(self) -> RenderResult:
        return Text(fit_line(self.text, self.size.width or 80))


class FitText(Widget):
    """A few lines of prose (a sweep's answer) wrapped at spaces; what does not fit in `lines`
    ends with `…` instead of being clipped mid-sentence."""

    DEFAULT_CSS = """
    FitText { height: auto; }
    """

    def __init__(
        self, text: str = "", *, lines: int = 3, id: str | None = None, classes: str | None = None
    ):
        super().__init__(id=id, classes=classes)
        self.text = text
        self.lines = lines

    def update(self, text: str) -> None:
        self.text = text
        self.refresh(layout=True)

    def fitted(self, width: int) -> str:
        return fit_lines(self.text, width, self.lines) if self.text else ""

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.fitted(width).splitlines())

    def render(self) -> RenderResult:
        return Text(self.fitted(self.size.width or 80))

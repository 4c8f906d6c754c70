"""One line of text fitted to its width when drawn (see `tui.widgets.text`): a path keeps its
end, a status line loses whole parts, so a narrow terminal never shows half a word."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from tui.widgets.text import fit_line


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

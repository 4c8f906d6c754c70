"""The one path from untrusted text to the screen, for the CLI and the app alike.

Text from files, folder names and exceptions goes through `engine.runs.text.printable` (terminal
escapes and control characters removed, length capped) and is then either escaped for rich /
Textual markup (`markup`) or wrapped in a `Text`, which is never parsed as markup (`plain`).
gloo's `[/__w/pytorch/...]` in a failed run's reason is shown as written, not read as a tag.
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.runs.text import MAX_SHOWN, printable

__all__ = ["markup", "plain", "printable", "safe_table"]


def markup(value: object, limit: int = MAX_SHOWN, *, one_line: bool = True) -> str:
    """Untrusted text to put inside a markup string (a Static, a notification, a tooltip)."""
    return escape(printable(value, limit, one_line=one_line))


def plain(value: object, style: str = "", limit: int = MAX_SHOWN, *, one_line: bool = True) -> Text:
    """Untrusted text as a rich Text (a table cell, a line): shown as written, never markup.
    With `one_line=False` newlines are kept (a printed paragraph)."""
    if isinstance(value, Text):
        clean = value.copy()
        clean.plain = printable(value.plain, limit, one_line=one_line)  # spans are cropped
        return clean
    return Text(printable(value, limit, one_line=one_line), style=style)


def safe_table(table: Table) -> Table:
    """The table with every string title, caption, header and cell made `plain`: rich would
    parse a string cell as markup (a run's folder name or reason can hold `[/...]`)."""
    if isinstance(table.title, str):
        table.title = plain(table.title)
    if isinstance(table.caption, str):
        table.caption = plain(table.caption)
    for column in table.columns:
        if isinstance(column.header, str):
            column.header = plain(column.header)
        # rich keeps a column's cells in `_cells` and offers no public way to rewrite them
        column._cells = [plain(c) if isinstance(c, str) else c for c in column._cells]
    return table

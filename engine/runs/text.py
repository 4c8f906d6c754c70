"""Text that came from a file, a folder name or an exception, made safe to show.

Such text is data, never instructions to the terminal: a run folder named with `\\x1b[2J`, a
model field holding `\\x1b[31m`, or gloo's error text in a run's `reason` must reach the screen
as the characters they are. `printable` removes terminal escape sequences, control characters
and the Unicode controls that reorder what is shown (bidi overrides), and caps the length. The
front ends add the escaping of their markup on top (tui/safe.py); the engine never imports rich.
"""

from __future__ import annotations

import re

ELLIPSIS = "…"
MAX_SHOWN = 2000  # characters of one field shown; a 200 MB model name is not a name

# ESC [ ... final byte (CSI), ESC ] ... BEL or ESC \ (OSC), ESC P/X/^/_ ... ESC \ (DCS & co.),
# any other two-byte ESC sequence, the 8-bit CSI/OSC forms, then every remaining control
# character (C0 but tab and newline, DEL, C1), and the bidi and zero-width formatting controls.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b.?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|\x9d[^\x07\x9c]*[\x07\x9c]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]",
    re.DOTALL,
)


def printable(value: object, limit: int = MAX_SHOWN, *, one_line: bool = True) -> str:
    """`value` as text with every escape and control character removed, at most `limit`
    characters (the middle elided). With `one_line`, newlines and tabs become spaces."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > 4 * limit:  # never scan a huge string whole: only the parts that are shown
        text = text[: 2 * limit] + ELLIPSIS + text[-2 * limit :]
    text = _ESCAPES.sub("", text)
    if one_line:
        text = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    if len(text) > limit:
        keep = max(limit - 1, 0)
        text = text[: keep - keep // 2] + ELLIPSIS + text[len(text) - keep // 2 :]
    return text

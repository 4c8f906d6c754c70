"""Fitting text into a terminal line without losing what tells things apart.

Paths are long and their distinguishing part is the end (`…resnet20_ckpt_epoch2.pth`), so they
lose their middle, cut where a word starts. Status lines are `a · b · c` parts: a part that
does not fit is dropped whole (a path part is shortened first), so no line is cut mid-word.
"""

from __future__ import annotations

from collections.abc import Iterable

ELLIPSIS = "…"
SEPARATOR = " · "
WORD_STARTS = "/_-. "  # a cut right after one of these starts a word


def plural(count: int | float, word: str, many: str | None = None) -> str:
    """`1 level`, `2 levels`, `0 epochs`."""
    return f"{count:,} {word}" if count == 1 else f"{count:,} {many or word + 's'}"


def elide_middle(text: str, width: int) -> str:
    """`text` in at most `width` cells: the start, `…`, then the end from a word start.

    The end is the distinguishing part of a path (the file name), so it is kept whole when it
    fits; the start is kept only when there is room for a word of it.
    """
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return ELLIPSIS
    tail = text[len(text) - (width - 1) :]
    cut = _word_start(tail)
    tail = tail[cut:]
    room = width - 1 - len(tail)
    head = text[:room]
    # the start only when it ends at a word boundary (otherwise nothing of it)
    end = max((head.rfind(c) for c in WORD_STARTS), default=-1)
    head = head[: end + 1] if end >= 0 and end + 1 >= 4 else ""
    return f"{head}{ELLIPSIS}{tail}"


def _word_start(tail: str) -> int:
    """Where the first whole word of `tail` starts (0 when none does: then cut hard)."""
    if not tail:
        return 0
    first = min((i for i, c in enumerate(tail) if c in WORD_STARTS), default=-1)
    if first < 0 or first + 1 >= len(tail):
        return 0
    return first + 1


def is_path(part: str) -> bool:
    """A path, or a label and a path (`saved checkpoints/x.pth`)."""
    last = part.rpartition(" ")[2]
    return part.count(" ") <= 1 and ("/" in last or last.endswith((".pth", ".pt", ".png")))


def fit_parts(parts: Iterable[str], width: int, separator: str = SEPARATOR) -> str:
    """Parts joined by `separator` while they fit in `width`; a path part is middle-elided to
    the room left (when that leaves it readable), any other part that does not fit is dropped."""
    out = ""
    for part in parts:
        if not part:
            continue
        joint = separator if out else ""
        room = width - len(out) - len(joint)
        if len(part) <= room:
            out += joint + part
            continue
        if is_path(part) and room >= 16:
            # keep a label before the path ("saved …_epoch2.pth")
            label, _, path = part.rpartition(" ")
            if label and len(label) + 1 + 12 <= room:
                out += joint + label + " " + elide_middle(path, room - len(label) - 1)
            else:
                out += joint + elide_middle(part, room)
        elif not out or (part.count(" ") >= 2 and room >= 12):
            # a sentence-like part (a device, a reason) keeps its first words; then stop
            out += joint + cut_words(part, room)
            break
    return out


def cut_words(text: str, width: int) -> str:
    """The words of `text` that fit in `width` with `…` after them (never half a word)."""
    if len(text) <= width:
        return text
    head = text[: max(width - 1, 0)]
    space = head.rfind(" ")
    if space > 0:
        head = head[:space].rstrip(" ·,:;")
    return head + ELLIPSIS


def fit_line(text: str, width: int) -> str:
    """A `a · b · c` status line fitted by `fit_parts`; a single long part is elided."""
    return fit_parts(text.split(SEPARATOR), width)


TOAST_PATH = 34  # a path in a toast (about 40 columns wide at 80): its file name whole


def toast_path(path: object) -> str:
    """A path for a notification: toasts wrap long words anywhere, so a path longer than a toast
    line is middle-elided (`…/runs/x/sweep.png`) rather than broken inside its file name."""
    return elide_middle(str(path), TOAST_PATH)


def fit_lines(text: str, width: int, lines: int) -> str:
    """`text` wrapped at spaces into at most `lines` lines of `width`; what does not fit ends
    the last line with `…` after its last whole word, never a word cut off without a mark."""
    import textwrap

    wrapped = textwrap.wrap(text, max(width, 8)) or [""]
    if len(wrapped) <= lines:
        return "\n".join(wrapped)
    kept = wrapped[: lines - 1]
    rest = " ".join(wrapped[lines - 1 :])
    return "\n".join([*kept, cut_words(rest, max(width, 8))])

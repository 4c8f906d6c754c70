"""Numbers as both front ends show them: one place for units, dashes and durations.

Rules: a missing or non-finite value is `—` (never `-`, which reads as a sign next to signed
deltas); sizes are decimal (1 kB = 1000 bytes, as file managers and `ls -h --si` show them) with
three significant digits; durations are `4.2s`, `19s`, `3m05s`, `1h02m`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from engine.methods import pruning_label

NONE = "—"


def fmt_pruning(result: Any) -> str:
    """How a result was pruned: `global`, or `global, random` for a score other than l1."""
    return pruning_label(result.method, getattr(result, "score", "l1"))


def is_jpeg(data: str | None) -> bool:
    """Whether a run's recorded test images (ImageSet.source) are JPEG files: lossy copies,
    whose accuracies are not CIFAR-10's, so every screen and table says so."""
    return str(data or "").startswith("JPEG")


def _missing(value: float | None) -> bool:
    return value is None or not math.isfinite(value)


def fmt_pct(value: float | None, digits: int = 2) -> str:
    """`92.31%`."""
    return NONE if _missing(value) else f"{value:.{digits}f}%"


def fmt_acc(value: float | None, digits: int = 2) -> str:
    """An accuracy in percent without the sign, for columns headed `%`: `92.31`."""
    return NONE if _missing(value) else f"{value:.{digits}f}"


def fmt_num(value: float | None, digits: int = 4) -> str:
    return NONE if _missing(value) else f"{value:.{digits}f}"


def fmt_level(value: float | None) -> str:
    """A level or sparsity in percent, without needless decimals: `62.5%`, `60%`."""
    if _missing(value):
        return NONE
    return f"{value:.4g}%" if value < 100 else f"{value:g}%"


def fmt_count(value: int | None) -> str:
    """`1,234,567`."""
    return NONE if value is None else f"{value:,}"


def fmt_lr(value: float | None) -> str:
    return NONE if _missing(value) else f"{value:.3g}"


def fmt_bytes(value: float | None) -> str:
    """`512 B`, `27.2 kB`, `2.38 MB`: decimal units, three significant digits."""
    if _missing(value):
        return NONE
    size = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 999.5 or unit == "GB":
            break
        size /= 1000
    if unit == "B":
        return f"{size:.0f} B"
    digits = 2 if abs(size) < 9.995 else 1 if abs(size) < 99.95 else 0
    return f"{size:.{digits}f} {unit}"


def fmt_duration(seconds: float | None) -> str:
    """`4.2s`, `19s`, `3m05s`, `1h02m`: a tenth of a second only where it matters."""
    if _missing(seconds) or seconds < 0:
        return NONE
    if seconds < 9.95:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_ranks(images_per_s: tuple[float, ...]) -> str:
    """A distributed run's per-rank speeds, compactly: `ranks 812/790 img/s` ('' for one rank)."""
    if len(images_per_s) < 2:
        return ""
    return "ranks " + "/".join(f"{r:,.0f}" for r in images_per_s) + " img/s"


def fmt_interval(interval: Sequence[float] | None, *, signed: bool = False) -> str:
    """'90.1-92.3' or '-1.20..+0.40' (a change, signed)."""
    if not interval:
        return NONE
    low, high = interval
    if signed:
        return f"{low:+.2f}..{high:+.2f}"
    return f"{low:.1f}-{high:.1f}"

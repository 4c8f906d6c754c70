"""Axes for terminal charts a few rows tall, where a tick label must name the row it sits on.

plotext puts a value on the row nearest to it, `(rows - 1) * (y - bottom) / (top - bottom)`
rows up. With limits picked from the data, the rows' values are odd numbers, and a tick such as
`75` is drawn on the nearest row, whose value may be 66 or 83: a point and the tick beside it
then disagree (a 81% baseline on the `50` row, the curve that starts there on the `100` row).
`row_axis` picks the limits so that every row's value is a round number and puts the ticks on
rows exactly; `x_ticks` does the same for a ratio axis (speedup, times fewer MACs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NICE_STEPS = (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 50.0)
CHART_CHROME_ROWS = 4  # title, top frame, bottom axis, x tick labels: not the canvas


@dataclass(frozen=True)
class Axis:
    """Limits and labelled ticks; every tick value is the value of the row it is drawn on."""

    low: float
    high: float
    ticks: list[float]
    labels: list[str]


def canvas_rows(height: int) -> int:
    """The plotting rows of a chart widget `height` rows tall (title, frame and x ticks off)."""
    return max(height - CHART_CHROME_ROWS, 2)


def _label(value: float, step: float) -> str:
    """As many decimals as the step needs (a step of 16.7 rounds its rows to whole numbers)."""
    digits = 0 if step >= 1 else 1 if round(step * 10, 6).is_integer() else 2
    return f"{value:.{digits}f}"


def row_axis(
    low: float, high: float, rows: int, floor: float = 0.0, ceiling: float = 100.0
) -> Axis:
    """A y axis showing at least `low`..`high` (within `floor`..`ceiling`) on `rows` rows whose
    values are round: the smallest round step that fits, its ticks on rows. When no round step
    fits the ceiling (0-100 on 7 rows), the rows split `low`..`high` evenly and each tick is
    labelled with its own row's value, rounded."""
    rows = max(rows, 2)
    low, high = max(low, floor), min(high, ceiling)
    if high <= low:
        high = min(low + 1.0, ceiling)
        low = high - 1.0
    for step in NICE_STEPS:
        span = (rows - 1) * step
        if span < high - low - 1e-9:
            continue
        slack = span - (high - low)  # rows to spare: half above the data, half below
        bottom = math.floor((low - slack / 2) / step + 1e-9) * step
        bottom = min(max(bottom, floor), ceiling - span)
        while bottom + span < high - 1e-9 and bottom + step <= low + 1e-9:
            bottom += step
        if bottom < floor - 1e-9 or bottom > low + 1e-9 or bottom + span < high - 1e-9:
            continue
        return _ticked(bottom, step, rows)
    return _ticked(low, (high - low) / (rows - 1), rows)


def _ticked(bottom: float, step: float, rows: int) -> Axis:
    """Every row's value; a label on every row, or on every other one when more than six would
    crowd the axis (the rows whose values are multiples of twice the step, when they are)."""
    values = list(reversed([bottom + i * step for i in range(rows)]))
    every = 1 if rows <= 6 else 2
    gap = step * every
    start = next(
        (i for i in range(every) if abs(values[i] / gap - round(values[i] / gap)) < 1e-6), 0
    )
    ticks = [round(v, 9) for v in values[start::every]]
    digits_step = gap if start or all(abs(t / gap - round(t / gap)) < 1e-6 for t in ticks) else step
    return Axis(values[-1], values[0], ticks, [_label(v, digits_step) for v in ticks])


def x_ticks(low: float, high: float, width: int, suffix: str = "x") -> Axis:
    """A ratio x axis from `low` to `high`, never below 0: round ticks with the unit after each
    (`1x 2x 3x`), about one per 12 columns."""
    low, high = max(low, 0.0), max(high, low + 0.1)
    wanted = max(width // 12, 2)
    step = next((s for s in NICE_STEPS if (high - low) / s <= wanted), 100.0)
    first = math.ceil(low / step - 1e-9) * step
    ticks = [round(first + i * step, 9) for i in range(int((high - first) / step + 1e-9) + 1)]
    return Axis(low, high, ticks, [f"{_label(t, step)}{suffix}" for t in ticks])


def zoom_range(
    baseline: float, tolerance: float, highest: float | None = None
) -> tuple[float, float]:
    """The y range around the baseline where the answer is decided: the tolerance band takes
    about a fifth of it, so it stays visible in a chart a few rows tall; a level above the
    baseline (`highest`) stays in view too."""
    band = max(tolerance, 0.5)
    top = baseline + band if highest is None else max(baseline + band, highest + band / 4)
    return max(0.0, baseline - 4 * band), min(100.0, top)

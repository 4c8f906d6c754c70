"""The Sweep screen's level table and the words around it: which cells each column shows, Enter
on a row, the line shown while a level is measured, the answer of a partial sweep."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

from engine.sweep.answer import x_value
from tui.formatting import fmt_duration
from tui.widgets.charts import CurvePoint
from tui.widgets.text import plural

# The level table's columns and the rows.level_cells value each shows.
LEVEL_KEYS = {"level%": "level", "sparsity%": "sparsity", "nonzero": "nonzero", "acc%": "accuracy"}
LEVEL_KEYS |= {"BN acc%": "bn", "tuned%": "tuned", "speedup": "speedup", "compact": "sparse"}
LEVEL_KEYS |= {"s": "seconds"}


def level_columns(config: Any, narrow: bool) -> list[str]:
    """The level table's columns for a sweep of `config` (no `nonzero` when `narrow`)."""
    columns = (
        ["level%", "sparsity%", "acc%"] if narrow else ["level%", "sparsity%", "nonzero", "acc%"]
    )
    if config is not None and config.bn_recalibrate > 0:
        columns.append("BN acc%")
    if config is not None and getattr(config, "finetune_epochs", 0) > 0:
        columns.append("tuned%")
    if config is not None and config.latency_batch:
        columns.append("speedup")
    return columns + ["compact", "s"]


def placed_curve(
    points: list[Any], best_level: float | None, axis: str
) -> tuple[list[CurvePoint], CurvePoint | None, list[CurvePoint]]:
    """The curve, the best level and the fine-tuned curve on `axis` (levels without a value
    there are left out)."""
    dense = next((p for p in points if p.level_percent == 0.0), None)

    def placed(p: Any, accuracy: float | None) -> CurvePoint | None:
        x = x_value(p, dense, axis)
        return None if x is None or accuracy is None else CurvePoint(x, accuracy)

    curve = [placed(p, p.accuracy) for p in points if p.evaluated]
    best = None
    if best_level is not None:
        match = [p for p in points if p.level_percent == best_level]
        best = placed(match[0], match[0].accuracy) if match else None
    recovered = [placed(p, p.accuracy_finetuned) for p in points]
    return [c for c in curve if c], best, [c for c in recovered if c]


def measuring_text(config: Any, points: list[Any], elapsed: float) -> str:
    """`point 2/5 · measuring level 50% for 12s · ETA 40s`: a level sends nothing until it
    ends, so the line says which one runs and for how long ("" when none is left)."""
    levels = sorted(set(config.levels) | {0.0})
    done = {p.level_percent for p in points}
    left = [v for v in levels if v not in done]
    if not left:
        return ""
    timed = [p.seconds for p in points if p.evaluated]
    mean = sum(timed) / len(timed) if timed else None
    eta = None if mean is None else max(mean - elapsed, 0.0) + (len(left) - 1) * mean
    return (
        f"point {len(done) + 1}/{len(levels)} · measuring level {left[0]:g}% for "
        f"{fmt_duration(elapsed)} · ETA {fmt_duration(eta)}"
        + (f" · {mean:.1f} s/point" if mean is not None else "")
    )


class LevelTable(DataTable):
    """The sweep's levels; Enter on a row fine-tunes that level (a click only selects it)."""

    def action_select_cursor(self) -> None:
        self.screen.action_finetune_level()  # type: ignore[attr-defined]


def answer_text(status: str, sentence: str, done: int, total: int) -> str:
    """The answer in words, marked as partial when the sweep did not finish its levels."""
    if status == "completed":
        return sentence
    return f"{status} after {done} of {plural(total, 'level')}, so far: {sentence}"

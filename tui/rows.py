"""One formatter per table row that both front ends show: a training epoch and a sweep level.

The CLI's rich tables (`tui.tables`) and the app's DataTables (`tui.screens`) pick their columns
from the same cells, so a number reads the same everywhere (the lr with three significant
digits, a duration as `4.2s`). `percent` adds the `%` sign for tables whose headers lack it.
"""

from __future__ import annotations

from typing import Any

from tui.formatting import (
    NONE,
    fmt_acc,
    fmt_bytes,
    fmt_count,
    fmt_duration,
    fmt_interval,
    fmt_level,
    fmt_lr,
    fmt_num,
    fmt_pct,
)

BEST_MARK = "*"  # the best level (highest within tolerance)
REFINED_MARK = "r"  # a bisection point of the best-sparsity search


def epoch_cells(entry: dict[str, Any], *, percent: bool = True) -> dict[str, str]:
    """One epoch (a metrics.jsonl line or an EpochEnded's fields), each value formatted."""
    acc = fmt_pct if percent else fmt_acc
    sparsity = entry.get("sparsity")
    return {
        "epoch": str(entry["epoch"]),
        "train_loss": fmt_num(entry.get("train_loss")),
        "train_acc": acc(entry.get("train_acc")),
        "test_loss": fmt_num(entry.get("test_loss")),
        "test_acc": acc(entry.get("test_acc")),
        "lr": fmt_lr(entry.get("lr")),
        "seconds": fmt_duration(entry.get("seconds")),
        "sparsity": NONE
        if sparsity is None
        else (fmt_level(sparsity) if percent else f"{sparsity:.1f}"),
    }


def level_text(point: Any, best_level: float | None, passed_mark: str, *, percent: bool) -> str:
    """`70%*` (best), `72.5%r` (refined), with the rule's passed-over mark when it applies."""
    level = point.level_percent
    text = fmt_level(level) if percent else f"{level:g}"
    if getattr(point, "refined", False):
        text += REFINED_MARK
    if best_level is not None and level == best_level:
        text += BEST_MARK
    return text + (passed_mark if getattr(point, "passed_over", False) else "")


def level_cells(
    point: Any,
    baseline: float | None,
    best_level: float | None,
    passed_mark: str,
    *,
    percent: bool = True,
) -> dict[str, str]:
    """One sweep level (a PointResult or a SweepPoint), each value formatted; a level that was
    not evaluated has no accuracy cells."""
    acc = fmt_pct if percent else fmt_acc
    speedup = getattr(point, "speedup", None)
    cells = {
        "level": level_text(point, best_level, passed_mark, percent=percent),
        "sparsity": fmt_level(point.sparsity_percent)
        if percent
        else f"{point.sparsity_percent:.1f}",
        "nonzero": fmt_count(point.nonzero_parameters),
        "bn": acc(getattr(point, "accuracy_bn_recalibrated", None)),
        "tuned": acc(getattr(point, "accuracy_finetuned", None)),
        "speedup": NONE if speedup is None else f"{speedup:.2f}x",
        "loss": fmt_num(getattr(point, "loss", None), 3),
        "sparse": fmt_bytes(point.sparse_bytes),
        "dense": fmt_bytes(point.dense_bytes),
        "seconds": f"{point.seconds:.1f}",
    }
    if not point.evaluated:
        return cells | {"accuracy": "not evaluated" if percent else "skip"}
    accuracy = point.accuracy
    delta = NONE if baseline is None or accuracy is None else f"{accuracy - baseline:+.2f}"
    return cells | {
        "accuracy": acc(accuracy),
        "ci95": fmt_interval(getattr(point, "accuracy_ci95", None)),
        "delta": delta,
        "delta_ci95": fmt_interval(getattr(point, "delta_ci95", None), signed=True),
    }

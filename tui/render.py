"""Rendering of engine events and results: one-line texts and rich tables (the chart is in
`tui.sweep_chart`).

Front-end neutral: the CLI prints these, the TUI can show the same lines, tables and chart data.
Nothing here trains, prunes or reads checkpoints; every function takes engine events or result
objects (duck-typed by field name, so a `SweepPoint` event and a `PointResult` both work) and
returns text or a `rich.table.Table`.
"""

from __future__ import annotations

from typing import Any

from engine.events import (
    BatchProgress,
    CheckpointSaved,
    EpochEnded,
    Notice,
    RunFinished,
    RunStarted,
    SensitivityPoint,
    SweepFinished,
    SweepPoint,
)
from tui.formatting import (
    fmt_bytes,
    fmt_count,
    fmt_duration,
    fmt_interval,
    fmt_level,
    fmt_num,
    fmt_pct,
    fmt_pruning,
)

SYNTHETIC_WARNING = "SYNTHETIC data (a learnable stand-in, not CIFAR-10): accuracies mean nothing"
# --------------------------------------------------------------------------------------------
# One line per event (plain text: the CLI prints them without a TTY, the TUI can log them)


def run_started_line(event: RunStarted) -> str:
    parts = [f"{event.kind} {event.model}", f"{event.parameters:,} parameters", event.device]
    if event.world_size > 1:
        parts.append(f"{event.world_size} ranks")
    line = " | ".join(parts) + f" | run {event.run_dir}"
    line += f"\ntest images: {event.data}" if event.data and not event.synthetic else ""
    return f"SYNTHETIC {line}" if event.synthetic else line


def batch_line(event: BatchProgress) -> str:
    return (
        f"epoch {event.epoch}/{event.epochs} batch {event.batch}/{event.batches} "
        f"loss {event.loss:.4f} {event.images_per_s:,.0f} img/s"
    )


def epoch_line(event: EpochEnded) -> str:
    width = len(str(event.epochs))
    line = (
        f"epoch {event.epoch:>{width}}/{event.epochs}  "
        f"train loss {event.train_loss:.4f} acc {fmt_pct(event.train_acc)}  "
        f"test loss {event.test_loss:.4f} acc {fmt_pct(event.test_acc)}  "
        f"lr {event.lr:.6g}  {fmt_duration(event.seconds)}  {event.images_per_s:,.0f} img/s"
    )
    if event.gpu_memory_mb is not None:
        line += f"  {event.gpu_memory_mb:,.0f} MiB"
    if event.sparsity is not None:
        line += f"  sparsity {fmt_level(event.sparsity)}"
    return line


def checkpoint_line(event: CheckpointSaved) -> str:
    return f"checkpoint saved: {event.path} (epoch {event.epoch})"


def point_line(point: Any, baseline: float | None = None) -> str:
    """One pruning level (a `SweepPoint` event or a `PointResult`)."""
    head = f"level {fmt_level(point.level_percent):>6}"
    index, total = getattr(point, "index", 0), getattr(point, "total", 0)
    refined = getattr(point, "refined", False)
    if refined:  # a bisection step: how many follow is not known ahead, so no counter
        head = "[bisect] " + head
    elif total:
        head = f"[{index:>{len(str(total))}}/{total}] " + head
    if not point.evaluated:
        return f"{head}  not evaluated (early stop at chance accuracy)"
    line = (
        f"{head}  sparsity {fmt_level(point.sparsity_percent):>6}  "
        f"top-1 {fmt_pct(point.accuracy):>7}"
    )
    interval = getattr(point, "accuracy_ci95", None)
    if interval:
        line += f" [{fmt_interval(interval)}]"
    if baseline is not None and point.accuracy is not None:
        line += f" ({point.accuracy - baseline:+.2f}"
        delta = getattr(point, "delta_ci95", None)
        line += f", 95% {fmt_interval(delta, signed=True)})" if delta else ")"
    if point.accuracy_bn_recalibrated is not None:
        line += f"  BN-recal {fmt_pct(point.accuracy_bn_recalibrated)}"
    line += (
        f"  loss {fmt_num(point.loss)}  nonzero {fmt_count(point.nonzero_parameters)}"
        f"  sparse {fmt_bytes(point.sparse_bytes)} of {fmt_bytes(point.dense_bytes)}"
        f"  {fmt_duration(point.seconds)}"
    )
    return line


def sensitivity_line(event: SensitivityPoint) -> str:
    width = len(str(event.total))
    return (
        f"[{event.index:>{width}}/{event.total}] {event.layer} at {fmt_level(event.level_percent)}"
        f": top-1 {fmt_pct(event.accuracy)}"
    )


def most_sensitive_line(result: Any, count: int = 3) -> str:
    """'most sensitive at 90%: conv1 27.8%, … (dense 54.8%)', or '' when no level was measured
    for every layer."""
    level, names = result.comparison_level(), result.most_sensitive(count)
    if level is None or not names:
        return ""
    cells = ", ".join(f"{name} {result.accuracy[name][level]:.1f}%" for name in names)
    base = result.baseline_accuracy
    line = f"most sensitive at {level:g}%: {cells}" + (f" (dense {base:.1f}%)" if base else "")
    return line + small_sample_warning(result)


SMALL_SAMPLE_POINTS = 1.0  # a 95% half-width above this many points is worth a warning


def small_sample_warning(result: Any) -> str:
    """'; caution: …' when the test set measures each layer's accuracy too coarsely to rank
    layers closer than the interval (as sweeps warn about their tolerance); else ''."""
    from engine.measure.stats import wilson_ci95  # numpy: when used

    images, base = getattr(result, "test_images", 0), result.baseline_accuracy
    if not images or base is None:
        return ""
    interval = wilson_ci95(round(base / 100 * images), images)
    half = (interval[1] - interval[0]) / 2 if interval else 0.0
    if half <= SMALL_SAMPLE_POINTS:
        return ""
    return (
        f"; caution: {images:,} test images measure each accuracy only to about +-{half:.1f} "
        "points (95%), so layers closer than that are not told apart"
    )


def sweep_finished_line(event: SweepFinished) -> str:
    if not event.best_level_percent:
        line = (
            f"sweep finished: {event.points} levels; baseline {fmt_pct(event.baseline_accuracy)}, "
            f"no pruned level within {event.tolerance:g} point"
        )
    else:
        line = (
            f"sweep finished: {event.points} levels; best {fmt_level(event.best_level_percent)} "
            f"removed at {fmt_pct(event.best_accuracy)} (baseline "
            f"{fmt_pct(event.baseline_accuracy)}, tolerance {event.tolerance:g}"
        )
        if event.best_level_ci95:
            low, high = event.best_level_ci95
            line += f", 95% interval {fmt_level(low)}-{fmt_level(high)}"
        line += ")"
    return f"{line}; {event.note}" if event.note else line


def run_finished_line(event: RunFinished) -> str:
    line = f"{event.kind} {event.status}: {event.run_dir}"
    return f"{line} ({event.reason})" if event.reason else line


def event_line(event: Any, baseline: float | None = None) -> str | None:
    """The one-line text of any engine event (None for events with nothing to say)."""
    if isinstance(event, RunStarted):
        return run_started_line(event)
    if isinstance(event, BatchProgress):
        return batch_line(event)
    if isinstance(event, EpochEnded):
        return epoch_line(event)
    if isinstance(event, CheckpointSaved):
        return checkpoint_line(event)
    if isinstance(event, SweepPoint):
        return point_line(event, baseline)
    if isinstance(event, SensitivityPoint):
        return sensitivity_line(event)
    if isinstance(event, SweepFinished):
        return sweep_finished_line(event)
    if isinstance(event, Notice):
        return f"warning: {event.text}" if event.level == "warning" else event.text
    if isinstance(event, RunFinished):
        return run_finished_line(event)
    return None


# --------------------------------------------------------------------------------------------
# Results as single lines


def find_line(result: Any) -> str:
    """The best-sparsity answer as `key=value` pairs a script can split on spaces and `=`."""

    def value(v: float | None, digits: int) -> str:
        return "none" if v is None else f"{v:.{digits}f}"

    parts = [
        f"best_level_percent={'none' if result.best_level_percent is None else f'{result.best_level_percent:g}'}",
        f"accuracy={value(result.best_accuracy, 2)}",
        f"baseline={value(result.baseline_accuracy, 2)}",
        f"tolerance={result.tolerance:g}",
        f"method={result.method}",
        f"score={getattr(result, 'score', 'l1')}",
        f"run={result.run_dir}",
    ]
    if getattr(result, "finetune_epochs", 0):
        parts[3:3] = [
            "best_level_finetuned="
            + (
                "none"
                if result.best_level_finetuned is None
                else f"{result.best_level_finetuned:g}"
            ),
            f"accuracy_finetuned={value(result.best_accuracy_finetuned, 2)}",
            f"control={value(result.control_accuracy, 2)}",
            f"finetune_epochs={result.finetune_epochs}",
        ]
    if getattr(result, "target_speedup", 0):
        best = next(
            (p for p in result.points if p.level_percent == result.best_level_percent), None
        )
        parts[3:3] = [
            f"speedup={value(best.speedup if best else None, 2)}",
            f"target_speedup={result.target_speedup:g}",
            f"timed_on={result.timed_on.replace(' ', '')}",
        ]
    if getattr(result, "synthetic", False):
        parts.append("data=SYNTHETIC")
    return " ".join(parts)


def sweep_line(result: Any) -> str:
    """The final line of a sweep: the answer in words, where it is, SYNTHETIC when it is."""
    line = f"{result.sentence()} ({fmt_pruning(result)}, {len(result.points)} levels, {result.run_dir})"
    return f"SYNTHETIC data: {line}" if getattr(result, "synthetic", False) else line


# --------------------------------------------------------------------------------------------
# Tables


def sweep_legend(result: Any) -> str:
    """The table's legend: the rule in its one sentence, the marks, how sure the answer is."""
    from engine.measure.stats import BEST_LEVEL_RULE, PASSED_OVER_MARK  # numpy: when used

    lines = [
        f"baseline {fmt_pct(result.baseline_accuracy)}, tolerance {result.tolerance:g} point; "
        f"* = best level, {PASSED_OVER_MARK} = level the rule passed over (its own accuracy says "
        "otherwise), r = refined by bisection; 95% CI: Wilson (top-1), paired bootstrap on the "
        "same images (vs base)",
        BEST_LEVEL_RULE,
    ]
    interval = result.level_interval()
    if interval:
        lines.append(
            f"95% interval of the best level (bootstrap over test images): "
            f"{fmt_level(interval[0])} to {fmt_level(interval[1])}"
        )
    if getattr(result, "note", ""):
        lines.append(result.note)
    return "\n".join(lines)


def classes_failing_line(result: Any, count: int = 3) -> str:
    """Which classes fail first: the largest per-class drops from the dense model at the first
    evaluated level past the best one (or the highest level when none is past it)."""
    points = sorted(
        (p for p in result.points if getattr(p, "per_class_accuracy", None)),
        key=lambda p: p.level_percent,
    )
    if len(points) < 2 or points[0].level_percent != 0.0:
        return ""
    best = result.best_level_percent or 0.0
    past = [p for p in points if p.level_percent > best]
    at = past[0] if past else points[-1]
    dense = points[0].per_class_accuracy
    drops = [
        (value - dense[name], name)
        for name, value in at.per_class_accuracy.items()
        if value is not None and dense.get(name) is not None
    ]
    worst = sorted(drops)[:count]
    shown = ", ".join(f"{name} {drop:+.1f}" for drop, name in worst)
    return f"classes that fail first (change at {fmt_level(at.level_percent)}): {shown}"

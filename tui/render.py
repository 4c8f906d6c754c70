"""Rendering of engine events and results: one-line texts, rich tables, accuracy-vs-sparsity charts.

Front-end neutral: the CLI prints these, the TUI can show the same lines, tables and chart data.
Nothing here trains, prunes or reads checkpoints; every function takes engine events or result
objects (duck-typed by field name, so a `SweepPoint` event and a `PointResult` both work) and
returns text, a `rich.table.Table` or chart data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

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
    NONE,
    fmt_bytes,
    fmt_count,
    fmt_duration,
    fmt_level,
    fmt_num,
    fmt_pct,
)

SYNTHETIC_WARNING = "SYNTHETIC data (a learnable stand-in, not CIFAR-10): accuracies mean nothing"
# --------------------------------------------------------------------------------------------
# One line per event (plain text: the CLI prints them without a TTY, the TUI can log them)


def run_started_line(event: RunStarted) -> str:
    parts = [f"{event.kind} {event.model}", f"{event.parameters:,} parameters", event.device]
    if event.world_size > 1:
        parts.append(f"{event.world_size} ranks")
    line = " | ".join(parts) + f" | run {event.run_dir}"
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
    if total:
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
    if getattr(point, "refined", False):
        line += "  (refined)"
    return line


def sensitivity_line(event: SensitivityPoint) -> str:
    width = len(str(event.total))
    return (
        f"[{event.index:>{width}}/{event.total}] {event.layer} at {fmt_level(event.level_percent)}"
        f": top-1 {fmt_pct(event.accuracy)}"
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


def fmt_interval(interval: Sequence[float] | None, *, signed: bool = False) -> str:
    """'90.1-92.3' or '-1.20..+0.40' (a change, signed)."""
    if not interval:
        return NONE
    low, high = interval
    if signed:
        return f"{low:+.2f}..{high:+.2f}"
    return f"{low:.1f}-{high:.1f}"


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
    if getattr(result, "synthetic", False):
        parts.append("data=SYNTHETIC")
    return " ".join(parts)


def sweep_line(result: Any) -> str:
    """The final line of a sweep: the answer in words, where it is, SYNTHETIC when it is."""
    line = f"{result.sentence()} ({result.method}, {len(result.points)} levels, {result.run_dir})"
    return f"SYNTHETIC data: {line}" if getattr(result, "synthetic", False) else line


# --------------------------------------------------------------------------------------------
# Tables


def train_table(history: Sequence[dict[str, Any]], title: str = "training") -> Table:
    """One row per epoch; a `sparsity` column when the run pruned (gradual or fine-tuning)."""
    table = Table(title=title, title_justify="left")
    pruned = any(h.get("sparsity") is not None for h in history)
    columns = ("epoch", "train loss", "train acc", "test loss", "test acc", "lr", "time")
    for name in columns + ("sparsity",) * pruned:
        table.add_column(name, justify="right")
    best = max((h.get("test_acc") or 0.0 for h in history), default=None)
    for h in history:
        style = "bold" if best is not None and h.get("test_acc") == best else None
        row = [
            str(h["epoch"]),
            fmt_num(h.get("train_loss")),
            fmt_pct(h.get("train_acc")),
            fmt_num(h.get("test_loss")),
            fmt_pct(h.get("test_acc")),
            f"{h.get('lr', 0.0):.4g}",
            fmt_duration(h.get("seconds")),
        ]
        if pruned:
            row.append(fmt_level(h["sparsity"]) if h.get("sparsity") is not None else NONE)
        table.add_row(*row, style=style)
    return table


def sweep_table(result: Any, title: str | None = None) -> Table:
    """Per level: sparsity, nonzero count, accuracy and its drop, loss, dense vs sparse bytes.

    The best level (highest within tolerance) is marked `*`.
    """
    from engine.stats import PASSED_OVER_MARK  # numpy: when used

    if title is None:
        title = f"{result.method} sweep of {result.model}: {result.run_dir}"
        if getattr(result, "synthetic", False):
            title = "SYNTHETIC " + title
    table = Table(title=title, title_justify="left")
    bn = any(p.accuracy_bn_recalibrated is not None for p in result.points)
    tuned = any(getattr(p, "accuracy_finetuned", None) is not None for p in result.points)
    columns = ["level", "sparsity", "nonzero", "top-1", "95% CI", "vs base", "vs base 95% CI"]
    if bn:
        columns.append("BN-recal")
    if tuned:
        columns.append(f"tuned {result.finetune_epochs}ep")
    columns += ["loss", "sparse", "dense"]
    for name in columns:
        table.add_column(name, justify="right", no_wrap=True)
    baseline = result.baseline_accuracy
    for p in result.points:
        mark = "*" if p.level_percent == result.best_level_percent else ""
        passed = PASSED_OVER_MARK if getattr(p, "passed_over", False) else ""
        level = fmt_level(p.level_percent) + ("r" if getattr(p, "refined", False) else "")
        level += mark + passed
        if not p.evaluated:
            row = [level, fmt_level(p.sparsity_percent), fmt_count(p.nonzero_parameters)]
            row += ["not evaluated"] + [""] * (len(columns) - 4)
            table.add_row(*row, style="dim")
            continue
        delta = (
            f"{p.accuracy - baseline:+.2f}"
            if baseline is not None and p.accuracy is not None
            else NONE
        )
        row = [
            level,
            fmt_level(p.sparsity_percent),
            fmt_count(p.nonzero_parameters),
            fmt_pct(p.accuracy),
            fmt_interval(getattr(p, "accuracy_ci95", None)),
            delta,
            fmt_interval(getattr(p, "delta_ci95", None), signed=True),
        ]
        if bn:
            row.append(fmt_pct(p.accuracy_bn_recalibrated))
        if tuned:
            row.append(fmt_pct(p.accuracy_finetuned))
        row += [fmt_num(p.loss, 3), fmt_bytes(p.sparse_bytes), fmt_bytes(p.dense_bytes)]
        table.add_row(*row, style="bold" if mark else None)
    table.caption = sweep_legend(result)
    if tuned:
        control = getattr(result, "control_accuracy", None)
        table.caption += (
            f"; tuned = after {result.finetune_epochs} epoch(s) of masked fine-tuning"
            + (f", control (dense fine-tuned alike) {fmt_pct(control)}" if control else "")
        )
    table.caption_justify = "left"
    return table


def sweep_legend(result: Any) -> str:
    """The table's legend: the rule in its one sentence, the marks, how sure the answer is."""
    from engine.stats import BEST_LEVEL_RULE, PASSED_OVER_MARK  # numpy: when used

    lines = [
        f"baseline {fmt_pct(result.baseline_accuracy)}, tolerance {result.tolerance:g} point; "
        f"* = best level, {PASSED_OVER_MARK} = level the rule passed over (its own accuracy says "
        "otherwise), r = refined by bisection; 95% CI: Wilson (top-1), paired bootstrap on the "
        "same images (vs base)",
        BEST_LEVEL_RULE,
    ]
    interval = getattr(result, "best_level_ci95", None)
    if interval:
        lines.append(
            f"95% interval of the best level (bootstrap over test images): "
            f"{fmt_level(interval[0])} to {fmt_level(interval[1])}"
        )
    if getattr(result, "note", ""):
        lines.append(result.note)
    return "\n".join(lines)


def per_class_table(result: Any) -> Table | None:
    """Top-1 per class at each level: which classes fail first."""
    points = [p for p in result.points if getattr(p, "per_class_accuracy", None)]
    if not points:
        return None
    classes = list(points[0].per_class_accuracy)
    table = Table(title="top-1 per class (%)", title_justify="left")
    table.add_column("level", justify="right", no_wrap=True)
    for name in classes:
        table.add_column(name[:8], justify="right", no_wrap=True)
    for p in sorted(points, key=lambda p: p.level_percent):
        values = [p.per_class_accuracy.get(name) for name in classes]
        table.add_row(fmt_level(p.level_percent), *(fmt_num(v, 1) for v in values))
    return table


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


def sensitivity_table(result: Any) -> Table:
    """Layer x level top-1 accuracy, with each cell's drop from the dense baseline."""
    table = Table(
        title=f"per-layer sensitivity (baseline {fmt_pct(result.baseline_accuracy)}): {result.run_dir}",
        title_justify="left",
    )
    table.add_column("layer", no_wrap=True)
    for level in result.levels:
        table.add_column(fmt_level(level), justify="right", no_wrap=True)
    for layer in result.layers:
        row = result.accuracy.get(layer, {})
        cells = []
        for level in result.levels:
            acc = row.get(level)
            if acc is None:
                cells.append(NONE)
                continue
            drop = acc - result.baseline_accuracy
            style = "red" if drop < -5 else "yellow" if drop < -1 else ""
            cells.append(Text(f"{acc:.1f}", style=style))
        table.add_row(layer, *cells)
    return table


def export_table(result: Any) -> Table:
    table = Table(
        title=f"export at {fmt_level(result.level_percent)} ({result.method}, {result.format})",
        title_justify="left",
    )
    table.add_column("what")
    table.add_column("bytes", justify="right")
    table.add_column("size", justify="right")
    table.add_column("of dense params", justify="right")
    dense = result.dense_parameter_bytes or 1
    rows = [
        ("dense parameters", result.dense_parameter_bytes),
        ("nonzero values", result.nonzero_bytes),
        ("sparse encoding", result.sparse_encoded_bytes),
        ("dense checkpoint file", result.dense_file_bytes),
        ("this file", result.file_bytes),
    ]
    for name, value in rows:
        share = f"{100.0 * value / dense:.1f}%" if value is not None else NONE
        table.add_row(name, fmt_count(value), fmt_bytes(value), share)
    return table


def run_best(record: Any) -> str:
    """A run's headline: best test accuracy for training, best sparsity (@ its accuracy) for
    sweeps, the dense baseline for sensitivity runs."""
    summary = record.summary or {}
    if record.kind == "train" and summary.get("best_test_acc") is not None:
        return f"{fmt_pct(summary['best_test_acc'])} ({summary.get('epochs_completed', 0)} ep)"
    if record.kind == "finetune" and summary.get("recovered_accuracy") is not None:
        return (
            f"{fmt_level(summary['level_percent'])}: {fmt_pct(summary['oneshot_accuracy'])}"
            f" -> {fmt_pct(summary['recovered_accuracy'])}"
        )
    if record.kind in ("sweep", "find") and summary.get("best_level_percent") is not None:
        return (
            f"{fmt_level(summary['best_level_percent'])} @ {fmt_pct(summary.get('best_accuracy'))}"
        )
    if record.kind == "sensitivity" and summary.get("baseline_accuracy") is not None:
        return f"base {fmt_pct(summary['baseline_accuracy'])}"
    if record.kind == "export" and summary.get("file_bytes") is not None:
        return f"{fmt_level(summary['level_percent'])}: {fmt_bytes(summary['file_bytes'])}"
    return NONE


RUNS_FULL_WIDTH = 118  # below this many columns `runs_table` leaves out what the name says


def runs_table(listings: Iterable[Any], width: int | None = None) -> Table:
    """One row per run, newest first as given; a SYNTHETIC run says so.

    In a narrow terminal (`width` < RUNS_FULL_WIDTH) kind, model and date are left out: the run's
    name (`YYYYmmdd-HHMMSS-kind-model`) carries them.
    """
    full = width is None or width >= RUNS_FULL_WIDTH
    table = Table(
        title="runs (newest first)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("run", no_wrap=True)
    if full:
        table.add_column("kind", no_wrap=True)
        table.add_column("model", no_wrap=True)
        table.add_column("date", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("data", no_wrap=True)
    table.add_column("best", justify="right", no_wrap=True)
    for item in listings:
        record = item.record
        status_style = {
            "completed": "green",
            "failed": "red",
            "damaged": "red",
            "stopped": "yellow",
            "interrupted": "yellow",
        }.get(record.status, "")
        row: list[Any] = [item.path.name]
        if full:
            row += [record.kind, record.model, record.created.replace("T", " ")[:16]]
        row += [
            Text(record.status, style=status_style),
            Text("SYNTHETIC", style="yellow") if record.synthetic else "",
            run_best(record),
        ]
        table.add_row(*row)
    return table


# --------------------------------------------------------------------------------------------
# Accuracy vs sparsity chart: data shaping shared by plotext (CLI, TUI) and matplotlib (--png)


@dataclass
class Series:
    label: str
    x: list[float]  # measured sparsity of the prunable weights, %
    y: list[float]  # top-1 accuracy, %


@dataclass
class Baseline:
    label: str
    accuracy: float


def sweep_series(result: Any, label: str | None = None) -> Series:
    """The evaluated points of one sweep, in level order (unevaluated levels are left out)."""
    points = [p for p in result.points if p.evaluated and p.accuracy is not None]
    points.sort(key=lambda p: p.level_percent)
    if label is None:
        label = f"{result.model} {result.method}"
    return Series(label, [p.sparsity_percent for p in points], [p.accuracy for p in points])


def recovered_series(result: Any, label: str | None = None) -> Series | None:
    """The fine-tuned accuracy of a recovery sweep's levels, or None for a one-shot sweep."""
    points = [p for p in result.points if getattr(p, "accuracy_finetuned", None) is not None]
    if not points:
        return None
    points.sort(key=lambda p: p.level_percent)
    name = f"{label or f'{result.model} {result.method}'} +{result.finetune_epochs}ep ft"
    return Series(
        name, [p.sparsity_percent for p in points], [p.accuracy_finetuned for p in points]
    )


def chart_data(
    results: Sequence[Any], labels: Sequence[str] | None = None
) -> tuple[list[Series], list[Baseline]]:
    """Series for each sweep and the dense baselines: one line when all runs share the baseline
    (within 0.01 point), else one per run, named after it. A recovery sweep adds its fine-tuned
    curve right after its one-shot curve (never alone) and its control as a baseline."""
    names: list[str | None] = list(labels) if labels else [None] * len(results)
    series, recovered, controls = [], [], []
    for result, name in zip(results, names, strict=True):
        series.append(sweep_series(result, name))
        tuned = recovered_series(result, name)
        if tuned is not None:
            recovered.append(tuned)
        if getattr(result, "control_accuracy", None) is not None:
            controls.append(
                Baseline(f"control {result.control_accuracy:.2f}%", result.control_accuracy)
            )
    series, baselines = _with_baselines(results, series)
    return series + recovered, baselines + controls


def _with_baselines(
    results: Sequence[Any], series: list[Series]
) -> tuple[list[Series], list[Baseline]]:
    """One dense line when the runs share a baseline (within 0.01 point), else one each."""
    found = [
        (s.label, r.baseline_accuracy)
        for r, s in zip(results, series, strict=True)
        if r.baseline_accuracy is not None
    ]
    if not found:
        return series, []
    if all(math.isclose(b, found[0][1], abs_tol=0.01) for _, b in found):
        return series, [Baseline(f"dense {found[0][1]:.2f}%", found[0][1])]
    return series, [Baseline(f"dense {label} {b:.2f}%", b) for label, b in found]


CLI_MARKERS = (("hd", "▀"), ("dot", "•"), ("x", "x"), ("+", "+"), ("*", "*"), ("o", "o"))


def draw_accuracy_chart(plt: Any, series: Sequence[Series], baselines: Sequence[Baseline]) -> None:
    """Draw onto a plotext-like object (the `plotext` module, or textual-plotext's `self.plt`).

    The y axis ends at 100 at most and there is no plotext legend (it would sit on the curves,
    which start top left): `chart_legend` says which marker is which, under the chart."""
    xs = [x for s in series for x in s.x] or [0.0, 100.0]
    lo, hi = min(min(xs), 0.0), max(max(xs), 1.0)
    ys = [y for s in series for y in s.y] + [b.accuracy for b in baselines]
    if ys:
        bottom, top = min(ys), max(ys)
        span = max(top - bottom, 1.0)
        plt.ylim(max(bottom - 0.05 * span, 0.0), min(top + 0.05 * span, 100.0))
    for b in baselines:
        plt.plot([lo, hi], [b.accuracy, b.accuracy], marker="-", color="gray")
    for i, s in enumerate(series):
        if s.x:
            plt.plot(s.x, s.y, marker=CLI_MARKERS[i % len(CLI_MARKERS)][0])
    plt.title("top-1 accuracy vs sparsity")
    plt.xlabel("weights removed (%)")
    plt.ylabel("top-1 (%)")


def chart_legend(series: Sequence[Series], baselines: Sequence[Baseline]) -> str:
    """Which line is which: `── dense 93.10% · ▀ resnet20 layerwise · • resnet20 global`."""
    parts = [f"── {b.label}" for b in baselines]
    parts += [
        f"{CLI_MARKERS[i % len(CLI_MARKERS)][1]} {s.label}" for i, s in enumerate(series) if s.x
    ]
    return " · ".join(parts)


def accuracy_chart(
    series: Sequence[Series],
    baselines: Sequence[Baseline],
    *,
    width: int = 80,
    height: int = 20,
    color: bool = False,
) -> str:
    """The chart as text (ANSI colours only when `color`), built with plotext, legend below."""
    import plotext as plt

    from engine.stats import BEST_LEVEL_RULE  # numpy: when used

    plt.clear_figure()
    plt.plotsize(width, height)
    draw_accuracy_chart(plt, series, baselines)
    text = plt.build()
    plt.clear_figure()
    text = text if color else plt.uncolorize(text)
    return f"{text}\n{chart_legend(series, baselines)}\n{BEST_LEVEL_RULE}"


def write_png(
    path: str, series: Sequence[Series], baselines: Sequence[Baseline], title: str = ""
) -> None:
    """The same chart as an image (needs matplotlib: the `png` extra)."""
    import matplotlib

    from engine.stats import BEST_LEVEL_RULE  # numpy: when used

    matplotlib.use("Agg")
    import matplotlib.pyplot as mpl

    fig, ax = mpl.subplots(figsize=(7, 4.5), dpi=150)
    try:
        for s in series:
            ax.plot(s.x, s.y, marker="o", markersize=3, label=s.label)
        for b in baselines:
            ax.axhline(b.accuracy, linestyle="--", color="gray", linewidth=1, label=b.label)
        ax.set_xlabel("weights removed (%)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(title or "top-1 accuracy vs sparsity")
        ax.set_xlim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.text(0.01, 0.01, BEST_LEVEL_RULE, fontsize=5, wrap=True)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        fig.savefig(path)
    finally:
        mpl.close(fig)

"""The rich tables the CLI prints (and `report` shows): training epochs, sweep levels, per-class
and per-layer accuracy, exports and the runs listing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from engine.methods import CHANNEL_METHODS, score_words
from tui.formatting import (
    NONE,
    fmt_bytes,
    fmt_count,
    fmt_level,
    fmt_num,
    fmt_pct,
    fmt_pruning,
    is_jpeg,
)
from tui.render import sweep_legend
from tui.rows import epoch_cells, level_cells
from tui.safe import printable
from tui.widgets.text import elide_middle


def titled_table(title: str) -> Table:
    """Every CLI table in one compact style (a rule under the header, no outer box), so the
    widest of them still fits 80 columns."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


def train_table(history: Sequence[dict[str, Any]], title: str = "training") -> Table:
    """One row per epoch; a `sparsity` column when the run pruned (gradual or fine-tuning)."""
    table = titled_table(title)
    pruned = any(h.get("sparsity") is not None for h in history)
    columns = ("epoch", "train loss", "train acc", "test loss", "test acc", "lr", "time")
    for name in columns + ("sparsity",) * pruned:
        table.add_column(name, justify="right")
    best = max((h.get("test_acc") or 0.0 for h in history), default=None)
    keys = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"]
    for h in history:
        style = "bold" if best is not None and h.get("test_acc") == best else None
        cells = epoch_cells(h)
        table.add_row(*(cells[k] for k in keys + ["sparsity"] * pruned), style=style)
    return table


# The sweep table's columns and the `level_cells` key each shows (BASIC: also when not evaluated).
SWEEP_KEYS = ("level", "sparsity", "nonzero", "accuracy", "ci95", "delta", "delta_ci95")
TAIL_KEYS = ("loss", "sparse", "dense")
BASIC = ("level", "sparsity", "nonzero", "top-1")
# Left out first when a table is wider than the terminal (--json and wider terminals keep all).
SWEEP_OPTIONAL = ("dense", "loss", "nonzero", "sparse")


def sweep_table(result: Any, title: str | None = None, width: int | None = None) -> Table:
    """Per level: sparsity, accuracy with its interval, the change from the dense model with its
    interval, then nonzero count, loss and dense vs sparse bytes while they fit in `width`.

    The best level (highest within tolerance) is marked `*`.
    """
    optional = list(SWEEP_OPTIONAL)
    left_out: list[str] = []
    table = _sweep_table(result, title, left_out)
    while width is not None and optional and _width(table) > width:
        left_out.append(optional.pop(0))
        table = _sweep_table(result, title, left_out)
    if left_out:
        table.caption += f"; {', '.join(sorted(left_out))} left out at this width (--json has them)"
    return table


def _width(table: Table) -> int:
    from rich.console import Console

    return Console(width=1000).measure(table).maximum


def _sweep_table(result: Any, title: str | None, left_out: list[str]) -> Table:
    from engine.measure.stats import PASSED_OVER_MARK  # numpy: when used

    if title is None:
        title = f"{fmt_pruning(result)} sweep of {result.model}: {result.run_dir}"
        if getattr(result, "synthetic", False):
            title = "SYNTHETIC " + title
    table = titled_table(title)
    bn = any(p.accuracy_bn_recalibrated is not None for p in result.points)
    tuned = any(getattr(p, "accuracy_finetuned", None) is not None for p in result.points)
    columns = ["level", "sparsity", "nonzero", "top-1", "95% CI", "vs base", "vs base 95% CI"]
    if bn:
        columns.append("BN-recal")
    if tuned:
        columns.append(f"tuned {result.finetune_epochs}ep")
    columns += ["loss", "sparse", "dense"]
    shown = [name for name in columns if name not in left_out]
    for name in shown:
        table.add_column(name, justify="right", no_wrap=True)
    baseline = result.baseline_accuracy
    keys = dict(
        zip(columns, SWEEP_KEYS + ("bn",) * bn + ("tuned",) * tuned + TAIL_KEYS, strict=True)
    )
    for p in result.points:
        cells = level_cells(p, baseline, result.best_level_percent, PASSED_OVER_MARK)
        if not p.evaluated:
            row = [cells.get(keys[name], "") if name in BASIC else "" for name in shown]
            table.add_row(*row, style="dim")
            continue
        best = p.level_percent == result.best_level_percent
        table.add_row(*(cells[keys[name]] for name in shown), style="bold" if best else None)
    table.caption = sweep_legend(result)
    if tuned:
        control = getattr(result, "control_accuracy", None)
        table.caption += (
            f"; tuned = after {result.finetune_epochs} epoch(s) of masked fine-tuning"
            + (f", control (dense fine-tuned alike) {fmt_pct(control)}" if control else "")
        )
    table.caption_justify = "left"
    return table


def per_class_table(result: Any, width: int | None = None) -> Table | None:
    """Top-1 per class at each level: which classes fail first. Class names are shortened only
    as far as `width` needs (CIFAR-10's fit 80 columns whole)."""
    points = [p for p in result.points if getattr(p, "per_class_accuracy", None)]
    if not points:
        return None
    classes = list(points[0].per_class_accuracy)
    table = titled_table("top-1 per class (%)")
    table.add_column("level", justify="right", no_wrap=True)
    gap, cut = _class_columns(classes, width or 80)
    if gap == 1:
        table.padding = (0, 0)
    for name in classes:
        table.add_column(name[:cut], justify="right", no_wrap=True)
    for p in sorted(points, key=lambda p: p.level_percent):
        values = [p.per_class_accuracy.get(name) for name in classes]
        table.add_row(fmt_level(p.level_percent), *(fmt_num(v, 1) for v in values))
    return table


def _class_columns(classes: list[str], width: int) -> tuple[int, int]:
    """(gap, cut): the column gap (2, or 1 when that is what lets names fit) and the longest
    class-name length at which the level column and one column per class (values up to 5
    wide) fit `width`; names are never cut below 4 characters."""
    longest = max((len(name) for name in classes), default=4)
    for gap in (2, 1):
        for cut in range(longest, 3, -1):
            fits = 5 + sum(max(min(len(n), cut), 5) + gap for n in classes) <= width
            if fits and (cut == longest or gap == 1):
                return gap, cut
    return 1, 4


def sensitivity_table(result: Any) -> Table:
    """Layer x level top-1 accuracy, with each cell's drop from the dense baseline."""
    words = score_words(result.score)
    by = f", {words}" if words else ""
    table = titled_table(
        f"per-layer sensitivity{by} (baseline {fmt_pct(result.baseline_accuracy)}): "
        f"{result.run_dir}"
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
    table = titled_table(
        f"export at {fmt_level(result.level_percent)} ({fmt_pruning(result)}, {result.format})"
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


RUNS_FULL_WIDTH = 140  # below this many columns pruning and checkpoint go under the run's folder
RUN_STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "damaged": "red",
    "stopped": "yellow",
    "interrupted": "yellow",
}


def runs_table(listings: Iterable[Any], width: int | None = None) -> Table:
    """One row per run (engine.runs.lifecycle.RunInfo), newest first as given: its folder (kind,
    model and start are in its name) and the name it was given, how it pruned, the checkpoint it
    read (elided, keeping the file name), its status and its headline (the line the app's Runs
    screen shows too) with its note; a SYNTHETIC run says so.

    In a narrow terminal (`width` < RUNS_FULL_WIDTH) pruning and checkpoint are a line under
    the run's folder instead of columns, so the headline keeps room to be read.
    """
    full = width is None or width >= RUNS_FULL_WIDTH
    table = titled_table("runs (newest first)")
    table.add_column("run", no_wrap=True)
    if full:
        table.add_column("pruning", no_wrap=True)
        table.add_column("checkpoint", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("data", no_wrap=True)
    table.add_column("result", no_wrap=False, ratio=1)
    for item in listings:
        record = item.record
        # fields from run.json are untrusted text: printable (no escapes, a capped length)
        run = Text(printable(item.path.name))
        source = elide_middle(printable(item.source()), 30 if full else 24)
        how = [printable(item.pruning(), 32), source]
        if not full and any(how):
            run.append("\n" + " · ".join(part for part in how if part), style="dim")
        if record.name:
            run.append("\n" + printable(record.name, 60), style="bold")
        result = Text(printable(item.headline()))
        if record.note:
            result.append("\nnote: " + printable(record.note, 200), style="dim")
        status = Text(printable(record.status, 20), style=RUN_STATUS_STYLES.get(record.status, ""))
        row: list[Any] = [run, *how] if full else [run]
        table.add_row(*row, status, data_label(record), result)
    return table


def cost_table(result: Any) -> Table | None:
    """Per level, what the network it runs costs: parameters, MACs (per image), the measured
    latency at batch 1 and at the throughput batch, and the speedup over dense with its range.
    None when the sweep neither timed latency nor asked for a cost axis (`--x`)."""
    timed = getattr(result, "timed_on", "")
    if not timed and getattr(result, "x", "level") == "level":
        return None
    structured = result.method in CHANNEL_METHODS
    table = titled_table(
        f"cost of each level ({'slim network' if structured else 'dense kernels'})"
    )
    batch = timed.rsplit("batch ", 1)[-1] if timed else ""
    columns = ["level", "parameters", "MACs", "ms, batch 1", f"ms, batch {batch or '-'}"]
    columns += ["speedup", "range"]
    for name in columns:
        table.add_column(name, justify="right", no_wrap=True)
    for p in result.points:
        span = getattr(p, "speedup_range", None)
        table.add_row(
            fmt_level(p.level_percent),
            fmt_count(getattr(p, "parameters", None)),
            fmt_count(getattr(p, "macs", None)),
            fmt_num(getattr(p, "latency_ms", None), 2),
            fmt_num(getattr(p, "latency_batch", None), 1),
            NONE if getattr(p, "speedup", None) is None else f"{p.speedup:.2f}x",
            f"{span[0]:.2f}-{span[1]:.2f}x" if span else NONE,
        )
    how = (
        f"median of timed passes on {timed}; range: dense quartiles over the level's"
        if timed
        else "latency not timed: pass --latency-batch N"
    )
    if not structured:
        how += "; masked zeros still run on dense kernels, so no speedup is expected"
    noise = latency_noise(result.points)
    if noise is not None:
        how += (
            f"; caution: batch 1 took up to {noise:.1f}x the dense model's time although no "
            "level adds work (a busy machine?): read the batch speedup and its range"
        )
    table.caption, table.caption_justify = how, "left"
    return table


NOISY_LATENCY = 1.5  # a pruned level at batch 1 this many times slower than dense is noise


def latency_noise(points: Sequence[Any]) -> float | None:
    """The worst batch-1 slowdown against dense when it is over NOISY_LATENCY (pruning never
    adds work, so such a time says the machine was busy), else None."""
    times = {p.level_percent: getattr(p, "latency_ms", None) for p in points}
    dense = times.get(0.0)
    others = [t for level, t in times.items() if level > 0 and t is not None]
    if not dense or not others:
        return None
    worst = max(others) / dense
    return worst if worst > NOISY_LATENCY else None


def sweep_tables(result: Any, width: int | None = None, name: str = "") -> list[Table]:
    """What the CLI prints for a sweep: its levels, their cost when measured, per-class accuracy;
    the levels' title starts with the run's `name` when it was given one."""
    title = None
    if name:
        title = f"{name}: {fmt_pruning(result)} sweep of {result.model}: {result.run_dir}"
        title = "SYNTHETIC " * bool(getattr(result, "synthetic", False)) + title
    levels = sweep_table(result, title=title, width=width)
    found = [levels, cost_table(result), per_class_table(result, width)]
    return [table for table in found if table is not None]


def data_label(record: Any) -> Text | str:
    """SYNTHETIC or JPEG where the numbers are not those of CIFAR-10's own images."""
    if record.synthetic:
        return Text("SYNTHETIC", style="yellow")
    return "JPEG" if is_jpeg(record.data) else ""

"""The accuracy-vs-sparsity chart of the CLI (plotext text) and of `--png` (matplotlib): the
series and dense baselines of one or several sweeps, and the two ways to draw them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tui.formatting import fmt_pruning

# What the x-axis shows, per SweepConfig.x (engine.sweep.answer.x_value computes it).
AXIS_LABELS = {
    "level": "weights removed (%)",
    "latency": "speedup over dense (x, measured)",
    "macs": "times fewer MACs than dense",
    "params": "times fewer parameters than dense",
}
AXIS_TITLES = {"level": "sparsity", "latency": "speedup", "macs": "MACs", "params": "parameters"}
# The app chart's x-axis names, cycled with `x` (level: None, the chart's own sparsity %).
SHORT_AXIS = {"latency": "speedup x (measured)", "macs": "x fewer MACs", "params": "x fewer params"}


def short_axis_name(axis: str, structured: bool, timed: bool) -> str | None:
    """The app chart's x-axis name; None for sparsity. Masked (unstructured) levels run on dense
    kernels, and the name says so."""
    if axis == "level":
        return None
    name = SHORT_AXIS[axis]
    if axis == "latency" and not timed:
        name = "speedup: not timed (set Latency batch)"
    return name if structured else f"{name}, dense kernels"


@dataclass
class Series:
    label: str
    x: list[float]  # measured sparsity of the prunable weights (%), or the axis' ratio
    y: list[float]  # top-1 accuracy, %
    axis: str = "level"  # SweepConfig.x
    band: list[tuple[float, float]] | None = None  # each point's 95% interval, when known


def _axis_of(results: Sequence[Any], axis: str | None) -> str:
    if axis is not None:
        return axis
    return getattr(results[0], "x", "level") if results else "level"


def _placed(result: Any, points: list[Any], axis: str, accuracy: str) -> tuple[list, list]:
    """(x, y) of the points that have a value on `axis` (e.g. no speedup when not timed)."""
    from engine.sweep.answer import x_value  # torch: when used

    dense = next((p for p in result.points if p.level_percent == 0.0), None)
    placed = [(x_value(p, dense, axis), getattr(p, accuracy)) for p in points]
    placed = [(x, y) for x, y in placed if x is not None]
    return [x for x, _ in placed], [y for _, y in placed]


@dataclass
class Baseline:
    label: str
    accuracy: float


def sweep_series(result: Any, label: str | None = None, axis: str = "level") -> Series:
    """The evaluated points of one sweep, in level order (unevaluated levels are left out, and
    on a cost axis the levels without that measurement)."""
    points = [p for p in result.points if p.evaluated and p.accuracy is not None]
    points.sort(key=lambda p: p.level_percent)
    if label is None:
        label = f"{result.model} {fmt_pruning(result)}"
    if axis == "level":
        xs, ys = [p.sparsity_percent for p in points], [p.accuracy for p in points]
        bands = [getattr(p, "accuracy_ci95", None) for p in points]
        band = [tuple(b) for b in bands] if bands and all(bands) else None
        return Series(label, xs, ys, axis, band)  # type: ignore[arg-type]
    xs, ys = _placed(result, points, axis, "accuracy")
    return Series(label, xs, ys, axis)


def recovered_series(result: Any, label: str | None = None, axis: str = "level") -> Series | None:
    """The fine-tuned accuracy of a recovery sweep's levels, or None for a one-shot sweep."""
    points = [p for p in result.points if getattr(p, "accuracy_finetuned", None) is not None]
    if not points:
        return None
    points.sort(key=lambda p: p.level_percent)
    name = f"{label or f'{result.model} {fmt_pruning(result)}'} +{result.finetune_epochs}ep ft"
    if axis == "level":
        xs, ys = [p.sparsity_percent for p in points], [p.accuracy_finetuned for p in points]
    else:
        xs, ys = _placed(result, points, axis, "accuracy_finetuned")
    return Series(name, xs, ys, axis)


def chart_data(
    results: Sequence[Any], labels: Sequence[str] | None = None, axis: str | None = None
) -> tuple[list[Series], list[Baseline]]:
    """Series for each sweep and the dense baselines: one line when all runs share the baseline
    (within 0.01 point), else one per run, named after it. A recovery sweep adds its fine-tuned
    curve right after its one-shot curve (never alone) and its control as a baseline. `axis`
    (SweepConfig.x) defaults to the first sweep's own."""
    axis = _axis_of(results, axis)
    names: list[str | None] = list(labels) if labels else [None] * len(results)
    series, recovered, controls = [], [], []
    for result, name in zip(results, names, strict=True):
        series.append(sweep_series(result, name, axis))
        tuned = recovered_series(result, name, axis)
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


MIN_Y_SPAN = 4.0  # accuracy points the y axis shows at least
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
        if top - bottom < MIN_Y_SPAN:  # one level, or a flat curve: not 36.000 / 35.983 labels
            middle = (top + bottom) / 2
            bottom, top = middle - MIN_Y_SPAN / 2, middle + MIN_Y_SPAN / 2
        span = top - bottom
        plt.ylim(max(bottom - 0.05 * span, 0.0), min(top + 0.05 * span, 100.0))
    for b in baselines:
        plt.plot([lo, hi], [b.accuracy, b.accuracy], marker="-", color="gray")
    for i, s in enumerate(series):
        if s.x:
            plt.plot(s.x, s.y, marker=CLI_MARKERS[i % len(CLI_MARKERS)][0])
    axis = series[0].axis if series else "level"
    plt.title(f"top-1 accuracy vs {AXIS_TITLES[axis]}")
    plt.xlabel(AXIS_LABELS[axis])
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
    """The chart as text (ANSI colours only when `color`), built with plotext, legend below
    (the best-level rule is in the sweep table's legend, printed before every chart)."""
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    draw_accuracy_chart(plt, series, baselines)
    text = plt.build()
    plt.clear_figure()
    text = text if color else plt.uncolorize(text)
    return f"{text}\n{chart_legend(series, baselines)}"


def write_png(
    path: str, series: Sequence[Series], baselines: Sequence[Baseline], title: str = ""
) -> None:
    """The same chart as an image (needs matplotlib: the `png` extra)."""
    import matplotlib

    from engine.measure.stats import BEST_LEVEL_RULE  # numpy: when used

    matplotlib.use("Agg")
    import matplotlib.pyplot as mpl

    fig, ax = mpl.subplots(figsize=(7, 4.5), dpi=150)
    try:
        for s in series:
            (line,) = ax.plot(s.x, s.y, marker="o", markersize=3, label=s.label)
            if s.band:
                low, high = [b[0] for b in s.band], [b[1] for b in s.band]
                color = line.get_color()
                ax.fill_between(s.x, low, high, color=color, alpha=0.2, label="95% interval")
        for b in baselines:
            ax.axhline(b.accuracy, linestyle="--", color="gray", linewidth=1, label=b.label)
        axis = series[0].axis if series else "level"
        ax.set_xlabel(AXIS_LABELS[axis])
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(title or f"top-1 accuracy vs {AXIS_TITLES[axis]}")
        if axis == "level":
            ax.set_xlim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.text(0.01, 0.01, BEST_LEVEL_RULE, fontsize=5, wrap=True)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        fig.savefig(path)
    finally:
        mpl.close(fig)

"""Terminal charts (textual-plotext) that redraw only when given new data.

Each chart keeps the numbers it shows and rebuilds its plot from them in `render`, so a resize
redraws correctly, and a chart changes on screen only when the app hands it new data: once per
epoch or per sweep point, never per batch (an SSH link carries a few chart updates a minute).
Series differ by marker as well as by colour, so they stay apart under NO_COLOR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import RenderResult
from textual_plotext import Plot, PlotextPlot

from tui.widgets.chart_axes import Axis, canvas_rows, row_axis, x_ticks, zoom_range
from tui.widgets.chart_png import ChartSpec

SERIES_COLORS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow")
SERIES_MARKERS = ("hd", "dot", "x", "+", "*", "o", "#")
SERIES_SYMBOLS = ("▀", "•", "x", "+", "*", "o", "#")  # how each marker looks, for legends
PERCENT_TICKS = [0, 25, 50, 75, 100]


def downsample(
    xs: Sequence[float], ys: Sequence[float], limit: int
) -> tuple[list[float], list[float]]:
    """At most `limit` points: consecutive points are averaged in equal buckets."""
    n = len(xs)
    if n <= limit or limit <= 0:
        return list(xs), list(ys)
    out_x, out_y = [], []
    for b in range(limit):
        lo, hi = b * n // limit, (b + 1) * n // limit
        if hi > lo:
            out_x.append(round(sum(xs[lo:hi]) / (hi - lo)))
            out_y.append(sum(ys[lo:hi]) / (hi - lo))
    return out_x, out_y


def set_y(plt: Plot, axis: Axis) -> None:
    """Limits and ticks from `row_axis`: every tick on the row whose value it names."""
    plt.ylim(axis.low, axis.high)
    plt.yticks(axis.ticks, axis.labels)


def percent_x(plt: Plot) -> None:
    plt.xlim(0, 100)
    plt.xticks(PERCENT_TICKS)


def legend(labels: Sequence[str]) -> str:
    """A one-line legend for a title (plotext's own legend sits on the curves): `▀ a · • b`."""
    return " · ".join(
        f"{SERIES_SYMBOLS[i % len(SERIES_SYMBOLS)]} {label}" for i, label in enumerate(labels)
    )


def fit_title(width: int, *candidates: str) -> str:
    """The first title that fits `width` (plotext drops a title that does not)."""
    for text in candidates:
        if len(text) <= width - 2:
            return text
    return candidates[-1][: max(width - 3, 0)] + "…"


class Chart(PlotextPlot):
    """A plotext chart drawn from stored data by `draw`."""

    DEFAULT_CSS = """
    Chart { width: 1fr; height: 1fr; min-height: 5; }
    """

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.chart_title = title
        self.short_titles: tuple[str, ...] = ()  # shorter titles for narrow charts, in order
        self.redraws = 0  # how many times new data arrived (tests check charts are not per batch)

    def changed(self) -> None:
        self.redraws += 1
        self.refresh()

    def draw(self, plt: Plot) -> None:
        raise NotImplementedError

    def spec(self) -> ChartSpec:
        """The chart's data for an image (`tui.widgets.chart_png`)."""
        raise NotImplementedError

    def rows(self) -> int:
        """The canvas rows the plot gets (the ticks are placed on them)."""
        return canvas_rows(self.size.height)

    def render(self) -> RenderResult:
        plt = self.plt
        plt.clear_figure()
        plt.title(fit_title(self.size.width, self.chart_title, *self.short_titles))
        self.draw(plt)
        return super().render()


class AccuracyChart(Chart):
    """Train and test accuracy per epoch."""

    def __init__(self, **kwargs) -> None:
        super().__init__(f"accuracy % · {legend(['test', 'train'])}", **kwargs)
        self.short_titles = (f"acc % · {legend(['test', 'train'])}", legend(["test", "train"]))
        self.epochs: list[int] = []
        self.train_acc: list[float] = []
        self.test_acc: list[float] = []

    def set_data(self, epochs: list[int], train_acc: list[float], test_acc: list[float]) -> None:
        self.epochs, self.train_acc, self.test_acc = list(epochs), list(train_acc), list(test_acc)
        self.changed()

    def draw(self, plt: Plot) -> None:
        if not self.epochs:
            plt.xlim(1, 2)
            plt.ylim(0, 100)
            return
        plt.plot(self.epochs, self.test_acc, marker=SERIES_MARKERS[0], color=SERIES_COLORS[0])
        plt.plot(self.epochs, self.train_acc, marker=SERIES_MARKERS[1], color=SERIES_COLORS[1])
        values = self.train_acc + self.test_acc  # both series in view, whatever their range
        pad = max(0.05 * (max(values) - min(values)), 0.5)
        set_y(plt, row_axis(min(values) - pad, max(values) + pad, self.rows()))
        if len(self.epochs) == 1:
            plt.xlim(self.epochs[0] - 1, self.epochs[0] + 1)

    def spec(self) -> ChartSpec:
        xs = [float(e) for e in self.epochs]
        return ChartSpec(
            "accuracy per epoch",
            "epoch",
            "accuracy (%)",
            [("test", xs, list(self.test_acc)), ("train", xs, list(self.train_acc))],
        )


class LossChart(Chart):
    """Training loss per optimiser step, down-sampled to the chart's width."""

    def __init__(self, **kwargs) -> None:
        super().__init__("loss / step", **kwargs)
        self.steps: list[float] = []
        self.losses: list[float] = []

    def set_data(self, steps: Sequence[float], losses: Sequence[float]) -> None:
        self.steps, self.losses = list(steps), list(losses)
        # the latest value in the title: readable even when the curve is a few cells
        self.chart_title = f"loss {self.losses[-1]:.4f}" if self.losses else "loss / step"
        self.changed()

    def draw(self, plt: Plot) -> None:
        if not self.steps:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            return
        width = max(self.size.width * 2, 20)
        xs, ys = downsample(self.steps, self.losses, width)
        plt.plot(xs, ys, marker="hd", color="orange")
        # explicit limits: the curve spans the whole frame
        if len(xs) == 1:
            plt.xlim(xs[0] - 1, xs[0] + 1)
        else:
            plt.xlim(min(xs), max(xs))
        set_y(plt, row_axis(min(ys), max(ys), self.rows(), ceiling=math.inf))

    def spec(self) -> ChartSpec:
        return ChartSpec(
            "training loss", "optimiser step", "loss", [("loss", self.steps, self.losses)]
        )


@dataclass(frozen=True)
class CurvePoint:
    sparsity: float  # the x value: sparsity %, or the speedup when the axis says so
    accuracy: float


class SweepChart(Chart):
    """Accuracy vs measured sparsity, point by point, with the baseline and tolerance band.

    Zoomed (the default) the y axis spans the band around the baseline, where the answer is
    decided; `z` switches to the whole 0-100 range, where the collapse shows."""

    def __init__(self, **kwargs) -> None:
        super().__init__("accuracy % vs sparsity %", **kwargs)
        self.points: list[CurvePoint] = []
        self.baseline: float | None = None
        self.tolerance: float | None = None
        self.best: CurvePoint | None = None
        self.recovered: list[CurvePoint] = []  # a recovery sweep's fine-tuned accuracy
        self.zoomed = True
        self.axis: str | None = None  # None: sparsity %; else the x-axis' name, e.g. "speedup x"

    def _x_axis(self, plt: Plot) -> None:
        """Sparsity 0-100 %, or a ratio (speedup, times fewer MACs) from 0 or 1 up, its unit on
        every tick."""
        if self.axis is None:
            percent_x(plt)
            return
        xs = [p.sparsity for p in self.points + self.recovered] or [1.0]
        low, high = min(min(xs), 1.0), max(max(xs), 1.1)
        pad = 0.05 * (high - low)
        axis = x_ticks(low - pad, high + pad, self.size.width)
        plt.xlim(axis.low, axis.high)
        plt.xticks(axis.ticks, axis.labels)

    def y_axis(self) -> Axis:
        """Zoomed: the band around the baseline; else all of 0-100. Rows hold round values."""
        if self.zoomed and self.baseline is not None:
            highest = max((p.accuracy for p in self.points), default=None)
            low, high = zoom_range(self.baseline, self.tolerance or 0.0, highest)
            return row_axis(low, high, self.rows())
        return row_axis(0.0, 100.0, self.rows())

    def toggle_zoom(self) -> None:
        self.zoomed = not self.zoomed
        self.changed()

    def set_data(
        self,
        points: Sequence[CurvePoint],
        baseline: float | None = None,
        tolerance: float | None = None,
        best: CurvePoint | None = None,
        recovered: Sequence[CurvePoint] = (),
    ) -> None:
        self.points = sorted(points, key=lambda p: p.sparsity)
        self.baseline, self.tolerance, self.best = baseline, tolerance, best
        self.recovered = sorted(recovered, key=lambda p: p.sparsity)
        self.changed()

    def draw(self, plt: Plot) -> None:
        tolerance = self.tolerance or 0.0
        zoom = self.zoomed and self.baseline is not None
        self._x_axis(plt)
        set_y(plt, self.y_axis())
        if self.baseline is not None:
            # the band: baseline (green) down to baseline - tolerance (yellow)
            plt.hline(self.baseline, "green")
            if tolerance:
                plt.hline(self.baseline - tolerance, "yellow")
            view = "z: 0-100" if zoom else "z: zoom"
            band = f" ── −{tolerance:g} pt" if tolerance else ""
            against = self.axis or "sparsity %"
            plt.title(
                fit_title(
                    self.size.width,
                    f"acc % vs {against} · ── baseline{band} · X best · {view}",
                    f"acc % vs {against} · ── baseline{band} · X best",
                    f"vs {against} · ── base{band} · X best",
                    f"vs {against} · X best",
                )
            )
        else:
            plt.title(fit_title(self.size.width, f"acc % vs {self.axis or 'sparsity %'}"))
        if self.points:
            xs = [p.sparsity for p in self.points]
            ys = [p.accuracy for p in self.points]
            plt.plot(xs, ys, marker="hd", color="cyan")
        if self.recovered and self.points:  # never without the one-shot curve beside it
            xs = [p.sparsity for p in self.recovered]
            ys = [p.accuracy for p in self.recovered]
            plt.plot(xs, ys, marker="dot", color="magenta")
        if self.best is not None:
            plt.scatter([self.best.sparsity], [self.best.accuracy], marker="X", color="red")
        self.drawn_axis = self.y_axis()

    def spec(self) -> ChartSpec:
        spec = ChartSpec(
            f"top-1 accuracy vs {self.axis or 'sparsity'}",
            self.axis or "weights removed (%)",
            "top-1 accuracy (%)",
            [("accuracy", [p.sparsity for p in self.points], [p.accuracy for p in self.points])],
            xlim=(0, 100) if self.axis is None else None,
        )
        if self.recovered:
            xs, ys = [p.sparsity for p in self.recovered], [p.accuracy for p in self.recovered]
            spec.series.append(("after fine-tuning", xs, ys))
        if self.baseline is not None:
            spec.lines.append((f"dense {self.baseline:.2f}%", self.baseline))
            if self.tolerance:
                spec.band = (self.baseline - self.tolerance, self.baseline)
            if self.zoomed:
                highest = max((p.accuracy for p in self.points), default=None)
                spec.ylim = zoom_range(self.baseline, self.tolerance or 0.0, highest)
        if self.best is not None:
            where = (
                f"{self.best.sparsity:.1f}%" if self.axis is None else f"{self.best.sparsity:.2f}x"
            )
            spec.points.append((f"best {where}", self.best.sparsity, self.best.accuracy))
        return spec


class OverlayChart(Chart):
    """Several runs' curves in one chart: sweeps (accuracy vs sparsity) or training runs
    (accuracy per epoch). The legend is the title, so it never covers a curve."""

    def __init__(self, **kwargs) -> None:
        super().__init__("accuracy % vs sparsity %", **kwargs)
        self.series: list[tuple[str, list[float], list[float]]] = []
        self.kind = "sweep"

    def set_data(
        self, series: Sequence[tuple[str, Sequence[float], Sequence[float]]], kind: str = "sweep"
    ) -> None:
        self.series = [(label, list(xs), list(ys)) for label, xs, ys in series]
        self.kind = kind
        self.changed()

    def draw(self, plt: Plot) -> None:
        what = "accuracy % per epoch" if self.kind == "train" else "accuracy % vs sparsity %"
        labels = [label for label, _, _ in self.series]
        # the legend is the title; without room for the times, the methods alone
        short = [label.split(" ")[0] for label in labels]
        if len(set(short)) < len(short):
            short = labels
        plt.title(
            fit_title(
                self.size.width,
                f"{what} · {legend(labels)}" if labels else what,
                f"accuracy % · {legend(labels)}",
                legend(labels),
                legend(short),
            )
        )
        ys_all = [y for _, _, ys in self.series for y in ys]
        if self.kind == "train":
            xs_all = [x for _, xs, _ in self.series for x in xs]
            if xs_all:
                low, high = min(xs_all), max(xs_all)
                if low == high:
                    low, high = low - 1, high + 1
                plt.xlim(low, high)
            low, high = min(ys_all, default=0.0), max(ys_all, default=100.0)
            set_y(plt, row_axis(low - 1, high + 1, self.rows()))
        else:
            percent_x(plt)
            set_y(plt, row_axis(0.0, 100.0, self.rows()))
        for i, (_, xs, ys) in enumerate(self.series):
            if xs:
                plt.plot(
                    xs,
                    ys,
                    marker=SERIES_MARKERS[i % len(SERIES_MARKERS)],
                    color=SERIES_COLORS[i % len(SERIES_COLORS)],
                )

    def spec(self) -> ChartSpec:
        if self.kind == "train":
            return ChartSpec("accuracy per epoch", "epoch", "accuracy (%)", list(self.series))
        return ChartSpec(
            "top-1 accuracy vs sparsity",
            "weights removed (%)",
            "top-1 accuracy (%)",
            list(self.series),
            xlim=(0, 100),
        )

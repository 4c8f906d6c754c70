"""Terminal charts (textual-plotext) that redraw only when given new data.

Each chart keeps the numbers it shows and rebuilds its plot from them in `render`, so a resize
redraws correctly, and a chart changes on screen only when the app hands it new data: once per
epoch or per sweep point, never per batch (an SSH link carries a few chart updates a minute).
Series differ by marker as well as by colour, so they stay apart under NO_COLOR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import RenderResult
from textual_plotext import Plot, PlotextPlot

SERIES_COLORS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow")
SERIES_MARKERS = ("hd", "dot", "x", "+", "*", "o", "#")
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


def percent_axes(plt: Plot, top: float = 100) -> None:
    """Both axes in percent: x from 0 to 100, y from 0 to `top`, ticks every 25."""
    plt.xlim(0, 100)
    plt.ylim(0, top)
    plt.yticks(PERCENT_TICKS)
    plt.xticks(PERCENT_TICKS)


class Chart(PlotextPlot):
    """A plotext chart drawn from stored data by `draw`."""

    DEFAULT_CSS = """
    Chart { width: 1fr; height: 1fr; min-height: 5; }
    """

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.chart_title = title
        self.redraws = 0  # how many times new data arrived (tests check charts are not per batch)

    def changed(self) -> None:
        self.redraws += 1
        self.refresh()

    def draw(self, plt: Plot) -> None:
        raise NotImplementedError

    def render(self) -> RenderResult:
        plt = self.plt
        plt.clear_figure()
        plt.title(self.chart_title)
        self.draw(plt)
        return super().render()


class AccuracyChart(Chart):
    """Train and test accuracy per epoch."""

    def __init__(self, **kwargs) -> None:
        super().__init__("accuracy %", **kwargs)
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
        plt.plot(self.epochs, self.train_acc, label="train", marker="dot", color="orange")
        plt.plot(self.epochs, self.test_acc, label="test", marker="hd", color="cyan")
        plt.ylim(max(0.0, min(self.train_acc + self.test_acc) - 5), 100)
        if len(self.epochs) == 1:
            plt.xlim(self.epochs[0] - 1, self.epochs[0] + 1)


class LossChart(Chart):
    """Training loss per optimiser step, down-sampled to the chart's width."""

    def __init__(self, **kwargs) -> None:
        super().__init__("loss / step", **kwargs)
        self.steps: list[float] = []
        self.losses: list[float] = []

    def set_data(self, steps: Sequence[float], losses: Sequence[float]) -> None:
        self.steps, self.losses = list(steps), list(losses)
        self.changed()

    def draw(self, plt: Plot) -> None:
        if not self.steps:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
            return
        width = max(self.size.width * 2, 20)
        xs, ys = downsample(self.steps, self.losses, width)
        plt.plot(xs, ys, marker="braille", color="orange")
        if len(xs) == 1:
            plt.xlim(xs[0] - 1, xs[0] + 1)


@dataclass(frozen=True)
class CurvePoint:
    sparsity: float
    accuracy: float


class SweepChart(Chart):
    """Accuracy vs measured sparsity, point by point, with the baseline and tolerance band."""

    def __init__(self, **kwargs) -> None:
        super().__init__("accuracy % vs sparsity % (── baseline, X best)", **kwargs)
        self.points: list[CurvePoint] = []
        self.baseline: float | None = None
        self.tolerance: float | None = None
        self.best: CurvePoint | None = None

    def set_data(
        self,
        points: Sequence[CurvePoint],
        baseline: float | None = None,
        tolerance: float | None = None,
        best: CurvePoint | None = None,
    ) -> None:
        self.points = sorted(points, key=lambda p: p.sparsity)
        self.baseline, self.tolerance, self.best = baseline, tolerance, best
        self.changed()

    def draw(self, plt: Plot) -> None:
        percent_axes(plt)
        if self.baseline is not None:
            plt.hline(self.baseline, "green")
            if self.tolerance:
                plt.hline(self.baseline - self.tolerance, "gray")
        if self.points:
            xs = [p.sparsity for p in self.points]
            ys = [p.accuracy for p in self.points]
            plt.plot(xs, ys, marker="hd", color="cyan")
        if self.best is not None:
            plt.scatter([self.best.sparsity], [self.best.accuracy], marker="X", color="red")


class OverlayChart(Chart):
    """Several sweeps' curves in one chart, for comparison."""

    def __init__(self, **kwargs) -> None:
        super().__init__("accuracy % vs sparsity %", **kwargs)
        self.series: list[tuple[str, list[float], list[float]]] = []

    def set_data(self, series: Sequence[tuple[str, Sequence[float], Sequence[float]]]) -> None:
        self.series = [(label, list(xs), list(ys)) for label, xs, ys in series]
        self.changed()

    def draw(self, plt: Plot) -> None:
        # headroom above 100% keeps the legend (top left) off the curves, which start high
        percent_axes(plt, top=100 + 12 * max(len(self.series), 1))
        for i, (label, xs, ys) in enumerate(self.series):
            if xs:
                plt.plot(
                    xs,
                    ys,
                    label=label,
                    marker=SERIES_MARKERS[i % len(SERIES_MARKERS)],
                    color=SERIES_COLORS[i % len(SERIES_COLORS)],
                )

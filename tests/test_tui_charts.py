"""The app's charts read right at 80x24: every y tick names the row it is drawn on, the
baseline and the best level sit on the rows their values belong to, the y range follows the
data, the x-axis is named and never starts below 0, and a resumed run keeps its loss history.

Row placement is checked by reading the rendered text, not only by snapshots.
"""

from __future__ import annotations

import re

import pytest
from textual.app import App, ComposeResult

from engine.config import SweepConfig, TrainConfig
from engine.events import BatchProgress, RunStarted, SweepPoint
from tui.app import PrunelabApp
from tui.screens.train import joined_losses
from tui.widgets.chart_axes import canvas_rows, row_axis, x_ticks
from tui.widgets.charts import AccuracyChart, CurvePoint, LossChart, SweepChart

TICK = re.compile(r"^\s*(-?[\d.]+)[┤├┼]")


class ChartApp(App[None]):
    """One chart filling a terminal of the test's size."""

    def __init__(self, chart) -> None:
        super().__init__()
        self.chart = chart

    def compose(self) -> ComposeResult:
        yield self.chart


def canvas(chart) -> list[str]:
    """The rendered chart's canvas lines (between the top frame and the bottom axis)."""
    lines = chart.render().plain.splitlines()
    top = next(i for i, line in enumerate(lines) if "┌" in line)
    bottom = next(i for i, line in enumerate(lines) if "└" in line)
    return lines[top + 1 : bottom]


def row_values(chart, rows: list[str]) -> list[float]:
    axis = chart.drawn_axis
    step = (axis.high - axis.low) / (len(rows) - 1)
    return [axis.high - i * step for i in range(len(rows))]


def check_labels(rows: list[str], values: list[float]) -> None:
    """Every tick label is the value of its own row (rounded as printed)."""
    labelled = 0
    for line, value in zip(rows, values, strict=True):
        found = TICK.match(line)
        if found and found.group(1).strip():
            labelled += 1
            printed = found.group(1)
            digits = len(printed.split(".")[1]) if "." in printed else 0
            assert float(printed) == pytest.approx(round(value, digits)), (line, value)
    assert labelled >= 2


def nearest_row(values: list[float], target: float) -> int:
    return min(range(len(values)), key=lambda i: abs(values[i] - target))


SEED = [(0, 93.1), (10, 93.0), (20, 92.9), (30, 92.1), (40, 90.2), (50, 72.0), (60, 18.0)]
SEED += [(70, 10.0), (80, 10.0), (90, 10.0), (100, 10.0)]
LOW = [(0, 22.5), (30, 22.0), (50, 20.0), (70, 14.0), (90, 10.0)]  # a barely trained network


@pytest.mark.parametrize("height", [7, 8, 9, 11, 14, 19, 24])
@pytest.mark.parametrize("zoomed", [True, False], ids=["zoom", "0-100"])
@pytest.mark.parametrize("curve", [SEED, LOW], ids=["seed", "low"])
async def test_sweep_chart_draws_baseline_and_best_on_their_rows(height, zoomed, curve):
    chart = SweepChart()
    app = ChartApp(chart)
    async with app.run_test(size=(80, height)) as pilot:
        points = [CurvePoint(x, y) for x, y in curve]
        baseline = curve[0][1]
        best = next(p for p in reversed(points) if p.accuracy >= baseline - 1.0)
        chart.set_data(points, baseline, 1.0, best)
        if not zoomed:
            chart.toggle_zoom()
        await pilot.pause()
        rows = canvas(chart)
        assert len(rows) == canvas_rows(height)
        values = row_values(chart, rows)
        check_labels(rows, values)
        baseline_row = next(i for i, line in enumerate(rows) if "├" in line[:8])
        assert baseline_row == nearest_row(values, baseline), rows
        x_row = next(i for i, line in enumerate(rows) if "X" in line)
        assert x_row == nearest_row(values, best.accuracy), rows
        # the curve starts (dense, x = 0) on or next to the baseline's row, never rows away
        first = next(i for i, line in enumerate(rows) if re.search(r"[┤├│][▀▄█▖▗▘▝▚▞▌▐]", line))
        assert abs(first - baseline_row) <= 1, rows


@pytest.mark.parametrize("rows", range(2, 30))
def test_row_axis_ticks_sit_on_rows_and_cover_the_range(rows):
    for low, high in [(0.0, 100.0), (89.1, 94.1), (13.0, 22.0), (0.05, 2.3), (99.0, 100.0)]:
        axis = row_axis(low, high, rows, ceiling=100.0 if high <= 100 else float("inf"))
        assert axis.low <= low + 1e-9 and axis.high >= high - 1e-9
        assert axis.low >= 0.0 and axis.high <= 100.0 + 1e-9
        step = (axis.high - axis.low) / (rows - 1)
        for tick in axis.ticks:
            assert (tick - axis.low) / step == pytest.approx(round((tick - axis.low) / step))


def test_ratio_axis_never_starts_below_zero_and_names_its_unit():
    axis = x_ticks(-2.8, 3.4, 70)
    assert axis.low >= 0.0 and min(axis.ticks) >= 0.0
    assert all(label.endswith("x") for label in axis.labels)


async def test_train_accuracy_range_follows_the_data():
    """Train 15.5 -> 18.4 % and test 13 -> 22 %: both curves use the chart's height."""
    chart = AccuracyChart()
    async with ChartApp(chart).run_test(size=(60, 12)) as pilot:
        chart.set_data([1, 2, 3], [15.5, 17.0, 18.4], [13.0, 18.0, 22.0])
        await pilot.pause()
        rows = canvas(chart)
        labels = [float(m.group(1)) for line in rows if (m := TICK.match(line))]
        assert min(labels) <= 14.0 and max(labels) >= 21.0
        assert max(labels) - min(labels) <= 20.0, "not 8..100: the curves fill the chart"


async def test_loss_chart_ticks_sit_on_their_rows():
    chart = LossChart()
    async with ChartApp(chart).run_test(size=(60, 12)) as pilot:
        chart.set_data(list(range(1, 200)), [2.3 - 0.01 * s for s in range(1, 200)])
        await pilot.pause()
        assert len(canvas(chart)) == canvas_rows(12)


def test_a_resumed_runs_losses_join_where_the_new_steps_start():
    before = [(s, 2.0) for s in range(1, 101)]
    after = [(s, 1.0) for s in range(81, 120)]  # resumed from the checkpoint at step 80
    joined = joined_losses(before, after)
    assert [s for s, _ in joined] == list(range(1, 120))
    assert joined_losses(before, []) == before


def make_app(tmp_path) -> PrunelabApp:
    return PrunelabApp(
        run_root=str(tmp_path / "runs"),
        checkpoint_dir=str(tmp_path / "checkpoints"),
        devices=["auto", "cpu"],
    )


def batch(step: int, batches: int = 50) -> BatchProgress:
    epoch = (step - 1) // batches + 1
    return BatchProgress(epoch, 4, (step - 1) % batches + 1, batches, 2.0 / step, 1000.0, step)


async def test_resume_keeps_the_whole_loss_history(tmp_path):
    """F6, then F5 resuming: the loss chart starts at step 1, not at the resume."""
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.train_screen
        config = TrainConfig(epochs=4)
        started = RunStarted("train", str(tmp_path / "runs" / "r1"), "cpu", "resnet20", 1, {})
        screen.begin(config, None)
        screen.apply(started)
        for step in range(1, 61):
            screen.loss_log.append((step, 2.0 / step))
            screen.apply(batch(step))
        screen.begin(config, resume=str(tmp_path / "checkpoints" / "x_stopped.pth"))
        screen.apply(started)
        for step in range(61, 81):
            screen.loss_log.append((step, 2.0 / step))
            screen.apply(batch(step))
        screen._redraw_loss()
        await pilot.pause()
        steps = screen.query_one(LossChart).steps
        assert steps[0] == 1 and steps[-1] == 80 and len(steps) == 80


async def test_x_axis_offers_only_sparsity_for_masked_levels(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.switch_mode("sweep")
        await pilot.pause()
        screen = app.sweep_screen
        screen.begin(SweepConfig(checkpoint="x.pth", method="layerwise", levels=(0.0, 50.0)))
        assert screen.axes() == ["level"]
        screen.action_x_axis()
        assert screen.axis == "level", "no stacking at 1x: masked levels run on dense kernels"
        coupled = SweepConfig(checkpoint="x.pth", method="coupled", levels=(0.0, 50.0))
        screen.begin(coupled)
        assert "macs" in screen.axes()


def sweep_point(level: float, accuracy: float, **extra) -> SweepPoint:
    return SweepPoint(
        level_percent=level,
        sparsity_percent=level,
        total_sparsity_percent=level,
        nonzero_parameters=1000,
        accuracy=accuracy,
        loss=None,
        dense_bytes=4000,
        sparse_bytes=2000,
        seconds=0.5,
        **extra,
    )


async def test_a_continued_sweep_draws_its_curve_whatever_the_axis_was(tmp_path):
    """`c` on Runs with the x-axis on MACs: the curve, not only the baseline lines."""
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.switch_mode("sweep")
        await pilot.pause()
        screen = app.sweep_screen
        screen.begin(SweepConfig(checkpoint="x.pth", method="coupled", levels=(0.0, 50.0)))
        screen.axis = "macs"
        screen.begin(SweepConfig(checkpoint="x.pth", method="coupled", levels=(0.0, 50.0)))
        for i, (level, acc) in enumerate([(0.0, 90.0), (50.0, 85.0)], start=1):
            screen.apply(sweep_point(level, acc, index=i, total=2))  # no MACs measured
        await pilot.pause()
        chart = screen.query_one(SweepChart)
        assert len(chart.points) == 2 and chart.axis is None

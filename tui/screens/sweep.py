"""Sweep screen: the SweepConfig form and the accuracy-vs-sparsity curve growing point by point."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, DataTable
from textual.worker import Worker, WorkerState

from engine.checkpoints.info import checkpoint_info
from engine.config import X_AXES, SweepConfig
from engine.events import Event, SensitivityPoint, SweepFinished, SweepPoint
from engine.measure.stats import PASSED_OVER_MARK
from engine.methods import CHANNEL_METHODS, pruning_label
from tui.formatting import fmt_acc, fmt_duration, fmt_pruning
from tui.rows import level_cells
from tui.screens.common import checkpoint_choices, find_checkpoints
from tui.screens.dialogs import PickDialog
from tui.screens.job import JobScreen, job_bindings
from tui.screens.save import chart_path, save_chart
from tui.screens.sweep_layers import LayerActions
from tui.screens.sweep_levels import (
    LEVEL_KEYS,
    LevelTable,
    answer_text,
    level_columns,
    measuring_text,
    placed_curve,
)
from tui.sweep_chart import short_axis_name
from tui.widgets.charts import SweepChart
from tui.widgets.config_form import ConfigForm
from tui.widgets.line import FitLine, FitText
from tui.widgets.progress import ProgressPanel
from tui.widgets.text import plural

SWEEP_GROUPS = ("Pruning", "Model", "Data", "Device", "Run")


class SweepScreen(LayerActions, JobScreen):
    """Everything about one pruning sweep."""

    JOB = "sweep"
    JOBS = ("sweep", "sensitivity")
    TITLE_TEXT = "Sweep"
    PICK_ACTION, PICK_BUTTON, PICK_LABEL = "pick_checkpoint", "pick", "Open… ^o"
    IDLE_HEADLINE = "F5 starts · ^o: checkpoint"  # a key hint: true with one typed, too
    STOPPING_TEXT = "stopping: finished levels are kept, the level being measured is dropped"
    BINDINGS = [
        *job_bindings(Binding("ctrl+o", "pick_checkpoint", "Open…")),
        Binding("z", "zoom", "Zoom", show=False),  # the chart's title says z
        Binding("ctrl+s", "save_chart", "Save PNG", show=False),
        Binding("enter", "finetune_level", "Fine-tune", show=False),  # the done line says it
        Binding("f", "toggle_chart", "Chart"),
        Binding("l", "layers", "Layers", show=False),  # help and palette name l and x
        Binding("x", "x_axis", "Axis", show=False),
        Binding("s", "sensitivity", "Sensitivity", show=False),
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        newest = find_checkpoints(self.checkpoint_dir)
        self.initial_values = {
            "checkpoint": str(newest[0]) if newest else "",
            **self.initial_values,
        }
        self.config: SweepConfig | None = None
        self._sensitivity_began: float | None = None  # monotonic time of its first point
        self.points: list[SweepPoint] = []
        self.baseline: float | None = None
        self.tolerance: float | None = None
        self.best_level: float | None = None
        self.best_accuracy: float | None = None
        self.sentence = ""
        self.checkpoint_seen = ""  # the checkpoint whose data fields were last taken
        self.checkpoint_text = ""
        self.axis = "level"  # the chart's x-axis (X_AXES), cycled with `x`
        self._level_started = 0.0  # monotonic time the level being measured started

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        """While a level is measured (no event until it ends), say which one and for how long."""
        if getattr(self.app, "worker", None) is None or getattr(self.app, "job", None) != "sweep":
            return
        if self.status != "running" or self.config is None:
            return
        text = measuring_text(self.config, self.points, time.monotonic() - self._level_started)
        if not text:
            return
        self.progress_text = text
        self._show_progress()

    def compose_above_form(self) -> ComposeResult:
        yield FitLine(self.checkpoint_text, id="checkpoint-line", classes="resume-line")

    def make_form(self) -> ConfigForm:
        return ConfigForm(
            SweepConfig,
            self.initial_values,
            groups=SWEEP_GROUPS,
            choices={"device": self.devices},
            suggestions={"checkpoint": [str(p) for p in find_checkpoints(self.checkpoint_dir)]},
            exclude=("x", "target_speedup"),  # x: the `x` key; find's
            id="sweep-form",
        )

    def compose_live(self) -> ComposeResult:
        yield ProgressPanel(id="sweep-progress")
        yield FitText("", id="sentence", classes="sentence")
        yield SweepChart(id="sweep-chart")
        yield LevelTable(id="level-table", cursor_type="row", zebra_stripes=True)

    # -- actions ---------------------------------------------------------------------------------

    def start(self, config: SweepConfig) -> None:
        self.app.start_sweep(config)

    def action_pick_checkpoint(self) -> None:
        self.app.push_screen(
            PickDialog(
                f"Checkpoint to prune (from {self.checkpoint_dir}/)",
                checkpoint_choices(self.checkpoint_dir),
                empty=f"no checkpoints in {self.checkpoint_dir}/: train one first, or type a path",
            ),
            self._checkpoint_picked,
        )

    def _checkpoint_picked(self, path: str | None) -> None:
        if path:
            self.form.set_values({"checkpoint": path})

    def checkpoint_written(self, path: str) -> None:
        """A training run wrote `path`: offer it, and make it the default while untouched."""
        if not self.ready:
            self.initial_values["checkpoint"] = path
            return
        paths = [str(p) for p in find_checkpoints(self.checkpoint_dir)]
        if path not in paths:
            paths.insert(0, path)
        self.form.set_suggestions("checkpoint", paths)
        if not self.form.raw_values().get("checkpoint"):
            self.form.set_values({"checkpoint": path})

    def action_zoom(self) -> None:
        """The chart's y axis: the band around the baseline, or all of 0-100."""
        self.query_one(SweepChart).toggle_zoom()

    def action_x_axis(self) -> None:
        """The chart's x-axis, in turn: sparsity, the measured speedup over dense (when the
        sweep timed its levels), times fewer MACs, times fewer parameters."""
        axes = self.axes()
        if axes == ["level"]:
            self.notify(
                "only sparsity: masked levels run on dense kernels, so their MACs, parameters "
                "and speed are the dense model's (structured, coupled or internal change them)",
                timeout=6,
            )
        at = axes.index(self.axis) if self.axis in axes else -1
        self.axis = axes[(at + 1) % len(axes)]
        if self.ready:
            self._redraw_chart()

    def axes(self) -> list[str]:
        """The x-axes that tell this sweep's levels apart: a masked (unstructured) level has the
        dense model's MACs, parameters and speed, so every point would sit at 1x."""
        structured = self.config is not None and self.config.method in CHANNEL_METHODS
        if not structured:
            return ["level"]
        return [a for a in X_AXES if a != "latency" or self._timed()]

    def _timed(self) -> bool:
        return any(getattr(p, "speedup", None) for p in self.points) or bool(
            self.config is not None and self.config.latency_batch
        )

    def action_finetune_level(self) -> None:
        """Fine-tune the selected level (else the best one) with this sweep's checkpoint, method,
        score and data: the Fine-tune form, filled in."""
        config = self.config
        if not self.points or config is None:
            self.notify("run a sweep first: then Enter fine-tunes a level", severity="warning")
            return
        key = self.selected_level_key()
        level = float(key) if key is not None else self.best_level
        if level is None or level == 0.0:
            level = max(config.levels)
        self.app.finetune_level(config, level)

    def axis_name(self) -> str | None:
        structured = self.config is not None and self.config.method in CHANNEL_METHODS
        return short_axis_name(self.axis, structured, self._timed())

    LETTER_ACTIONS = frozenset({"zoom", "layers", "x_axis", "sensitivity", "toggle_chart"})

    def offers(self, action: str) -> bool | None:
        if action in ("layers", "finetune_level"):
            return bool(self.points) and self.config is not None
        if action == "sensitivity":
            return getattr(self.app, "job", None) is None or None
        return super().offers(action)

    def action_save_chart(self) -> None:
        save_chart(self, [self.query_one(SweepChart).spec()], chart_path(self.run_dir, "sweep"))

    def _values_changed(self) -> None:
        path = str(self.form.raw_values().get("checkpoint") or "")
        if path == self.checkpoint_seen:
            return
        self.checkpoint_seen = path
        if not path or not Path(path).is_file():
            self._show_checkpoint("" if not path else "no such file yet")
            return
        self._show_checkpoint("reading the checkpoint…")
        self.run_worker(
            partial(checkpoint_info, path),
            thread=True,
            exit_on_error=False,
            group="checkpoint-info",
            exclusive=True,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "checkpoint-info":
            return
        event.stop()
        info = event.worker.result if event.state == WorkerState.SUCCESS else None
        if info is None or info.path != self.checkpoint_seen:
            return  # failed, or an older checkpoint than the one in the field now
        self._show_checkpoint(info.describe())  # its data: what dataset "auto" evaluates on

    def _show_checkpoint(self, text: str) -> None:
        self.checkpoint_text = text
        if self.ready:
            self.query_one("#checkpoint-line", FitLine).update(text)

    @on(Button.Pressed, "#pick")
    def _pick_pressed(self) -> None:
        self.action_pick_checkpoint()

    # -- engine events -----------------------------------------------------------------------------

    def begin(self, config: SweepConfig) -> None:
        self.config = config
        if self.axis not in self.axes():
            self.axis = "level"  # e.g. `c` on Runs continues a sweep this axis cannot show
        self._level_started = time.monotonic()
        self.points = []
        self.baseline = self.best_level = self.best_accuracy = None
        self.tolerance = config.tolerance
        self.sentence = ""
        self._begin(
            config,
            f"{pruning_label(config.method, config.score)} sweep of {config.checkpoint}",
            "loading checkpoint and test data…",
        )

    def _apply(self, event: Event) -> None:
        if isinstance(event, SweepPoint):
            self._level_started = time.monotonic()
            self.points = [p for p in self.points if p.level_percent != event.level_percent]
            self.points.append(event)
            self.points.sort(key=lambda p: p.level_percent)
            if len(self.points) == 1 and self.ready:
                self.app.refresh_bindings()  # l (per-layer view) has a level to show now
            if event.level_percent == 0.0 and event.accuracy is not None:
                self.baseline = event.accuracy
            if event.total:
                self.fraction = min(event.index / event.total, 1.0)
            done = [p for p in self.points if p.evaluated]
            mean = sum(p.seconds for p in done) / len(done) if done else 0.0
            left = max(event.total - event.index, 0) * mean
            self.progress_text = (
                f"point {event.index}/{event.total} · level {event.level_percent:g}% · "
                f"ETA {fmt_duration(left)} · acc {fmt_acc(event.accuracy)}% · "
                f"{mean:.1f} s/point"
            )
            if self.ready:
                self._add_level_row(event)
                self._redraw_chart()
                self._show_progress()
        elif isinstance(event, SensitivityPoint):
            self.fraction = event.index / max(event.total, 1)
            now = time.monotonic()
            if event.index == 1 or self._sensitivity_began is None:
                self._sensitivity_began = now  # the first layer's first level: timing starts
            spent = now - self._sensitivity_began
            per = spent / max(event.index - 1, 1) if event.index > 1 else 0.0
            eta = f" · ETA {fmt_duration(per * (event.total - event.index))}" if per else ""
            self.progress_text = (
                f"sensitivity {event.index}/{event.total}{eta} · {event.layer} · "
                f"level {event.level_percent:g}% · acc {event.accuracy:.2f}%"
            )
            self._show_progress()
        elif isinstance(event, SweepFinished):
            self.baseline = event.baseline_accuracy
            self.best_level = event.best_level_percent
            self.best_accuracy = event.best_accuracy
            self.tolerance = event.tolerance
            if self.ready:
                self._redraw_chart()

    def _run_started(self, event: Any) -> None:
        self._level_started = time.monotonic()
        if self.config is not None and self.config.levels:
            first = self.config.levels[0]
            what = " (the dense baseline)" if first == 0 else ""
            self.progress_text = f"evaluating level {first:g}%{what}…"

    def _take_result(self, result: Any) -> None:
        total = len(self.config.levels) if self.config is not None else len(result.points)
        self.sentence = answer_text(result.status, result.sentence(), len(result.points), total)
        if result.synthetic:
            self.sentence += " (SYNTHETIC data)"
        self.points = list(result.points)  # with the rule's marks (passed-over levels)
        self.baseline = result.baseline_accuracy
        self.best_level = result.best_level_percent
        self.best_accuracy = result.best_accuracy
        done = plural(len(result.points), "level")
        if result.status == "completed":
            self.progress_text = (
                f"done: {done}, {fmt_pruning(result)} · Enter on a level fine-tunes it · "
                "l per layer · F4 Runs compares"
            )
        else:
            self.progress_text = (
                f"{result.status}: {done} of {total} kept (a level being measured is dropped) · "
                "c on Runs measures the rest"
            )

    def _show_finished(self) -> None:
        self._redraw_all()
        self.app.refresh_bindings()

    # -- drawing -------------------------------------------------------------------------------

    def _narrow(self) -> bool:
        """The live panel is beside the form in a narrow terminal: no room for `nonzero`."""
        return self.app.size.width - (0 if self.form_hidden else 48) < 70

    def on_resize(self) -> None:
        self._check_columns()

    def action_toggle_form(self) -> None:
        super().action_toggle_form()
        self._check_columns()

    def _check_columns(self) -> None:
        if self.ready:
            table = self.query_one("#level-table", DataTable)
            if [str(c.label) for c in table.ordered_columns] != self._columns():
                self._redraw_all()

    def _columns(self) -> list[str]:
        return level_columns(self.config, self._narrow())

    def _recovering(self) -> bool:
        return self.config is not None and getattr(self.config, "finetune_epochs", 0) > 0

    def _add_level_row(self, p: SweepPoint) -> None:
        table = self.query_one("#level-table", DataTable)
        key = f"{p.level_percent:g}"
        if key in table.rows:
            table.remove_row(key)
        formatted = level_cells(p, self.baseline, self.best_level, PASSED_OVER_MARK, percent=False)
        cells = [formatted[LEVEL_KEYS[name]] for name in self._columns()]
        table.add_row(*cells, key=key)
        table.move_cursor(row=table.row_count - 1)

    def _redraw_chart(self) -> None:
        curve, best, recovered = placed_curve(self.points, self.best_level, self.axis)
        if not curve and self.axis != "level" and any(p.evaluated for p in self.points):
            self.axis = "level"  # no level has this measurement: never a chart without a curve
            curve, best, recovered = placed_curve(self.points, self.best_level, self.axis)
        chart = self.query_one(SweepChart)
        chart.axis = self.axis_name()
        chart.set_data(curve, self.baseline, self.tolerance, best, recovered)
        self.query_one("#sentence", FitText).update(self.sentence)

    def _redraw_all(self) -> None:
        table = self.query_one("#level-table", DataTable)
        table.clear(columns=True)
        table.add_columns(*self._columns())
        for p in self.points:
            self._add_level_row(p)
        self._redraw_chart()
        self._show_progress()

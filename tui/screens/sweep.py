"""Sweep screen: the SweepConfig form and the accuracy-vs-sparsity curve growing point by point."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, DataTable, Static

from engine.config import SweepConfig
from engine.events import Event, SweepFinished, SweepPoint
from tui.formatting import fmt_acc, fmt_bytes, fmt_count, fmt_duration
from tui.screens.common import checkpoint_choices, find_checkpoints
from tui.screens.dialogs import PickDialog
from tui.screens.job import JobScreen, job_bindings
from tui.widgets.charts import CurvePoint, SweepChart
from tui.widgets.config_form import ConfigForm
from tui.widgets.progress import ProgressPanel

SWEEP_GROUPS = ("Pruning", "Model", "Data", "Device", "Run")


class SweepScreen(JobScreen):
    """Everything about one pruning sweep."""

    JOB = "sweep"
    TITLE_TEXT = "Sweep"
    PICK_ACTION, PICK_BUTTON, PICK_LABEL = "pick_checkpoint", "pick", "Checkpoint… ^o"
    IDLE_HEADLINE = "nothing running: pick a checkpoint and press F5 to start"
    STOPPING_TEXT = "stopping after this level; finished points are kept"
    BINDINGS = job_bindings(Binding("ctrl+o", "pick_checkpoint", "Checkpoint…"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        newest = find_checkpoints(self.checkpoint_dir)
        self.initial_values = {
            "checkpoint": str(newest[0]) if newest else "",
            **self.initial_values,
        }
        self.config: SweepConfig | None = None
        self.points: list[SweepPoint] = []
        self.baseline: float | None = None
        self.tolerance: float | None = None
        self.best_level: float | None = None
        self.best_accuracy: float | None = None
        self.sentence = ""

    def make_form(self) -> ConfigForm:
        return ConfigForm(
            SweepConfig,
            self.initial_values,
            groups=SWEEP_GROUPS,
            choices={"device": self.devices},
            suggestions={"checkpoint": [str(p) for p in find_checkpoints(self.checkpoint_dir)]},
            id="sweep-form",
        )

    def compose_live(self) -> ComposeResult:
        yield ProgressPanel(id="sweep-progress")
        yield Static("", id="sentence", classes="sentence")
        yield SweepChart(id="sweep-chart")
        yield DataTable(id="level-table", cursor_type="row", zebra_stripes=True)

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

    @on(Button.Pressed, "#pick")
    def _pick_pressed(self) -> None:
        self.action_pick_checkpoint()

    # -- engine events -----------------------------------------------------------------------------

    def begin(self, config: SweepConfig) -> None:
        self.points = []
        self.baseline = self.best_level = self.best_accuracy = None
        self.tolerance = config.tolerance
        self.sentence = ""
        self._begin(
            config,
            f"{config.method} sweep of {config.checkpoint}",
            "loading checkpoint and test data…",
        )

    def _apply(self, event: Event) -> None:
        if isinstance(event, SweepPoint):
            self.points = [p for p in self.points if p.level_percent != event.level_percent]
            self.points.append(event)
            self.points.sort(key=lambda p: p.level_percent)
            if event.level_percent == 0.0 and event.accuracy is not None:
                self.baseline = event.accuracy
            if event.total:
                self.fraction = min(event.index / event.total, 1.0)
            done = [p for p in self.points if p.evaluated]
            mean = sum(p.seconds for p in done) / len(done) if done else 0.0
            left = max(event.total - event.index, 0) * mean
            self.progress_text = (
                f"point {event.index}/{event.total} · level {event.level_percent:g}% · "
                f"acc {fmt_acc(event.accuracy)}% · {mean:.1f} s/point · ETA {fmt_duration(left)}"
            )
            if self.ready:
                self._add_level_row(event)
                self._redraw_chart()
                self._show_progress()
        elif isinstance(event, SweepFinished):
            self.baseline = event.baseline_accuracy
            self.best_level = event.best_level_percent
            self.best_accuracy = event.best_accuracy
            self.tolerance = event.tolerance
            if self.ready:
                self._redraw_chart()

    def _take_result(self, result: Any) -> None:
        self.sentence = result.sentence()
        if result.synthetic:
            self.sentence += " (SYNTHETIC data)"
        self.baseline = result.baseline_accuracy
        self.best_level = result.best_level_percent
        self.best_accuracy = result.best_accuracy
        self.progress_text = f"{len(result.points)} levels · results in {result.run_dir}"

    def _show_finished(self) -> None:
        self._redraw_all()

    # -- drawing -------------------------------------------------------------------------------

    def _columns(self) -> list[str]:
        columns = ["level%", "sparsity%", "nonzero", "acc%"]
        if self.config is not None and self.config.bn_recalibrate > 0:
            columns.append("BN acc%")
        return columns + ["compact", "s"]

    def _add_level_row(self, p: SweepPoint) -> None:
        table = self.query_one("#level-table", DataTable)
        key = f"{p.level_percent:g}"
        if key in table.rows:
            table.remove_row(key)
        best = self.best_level is not None and p.level_percent == self.best_level
        cells = [
            f"{p.level_percent:g}" + (" ★" if best else ""),
            f"{p.sparsity_percent:.1f}",
            fmt_count(p.nonzero_parameters),
            fmt_acc(p.accuracy) if p.evaluated else "skip",
        ]
        if self.config is not None and self.config.bn_recalibrate > 0:
            cells.append(fmt_acc(p.accuracy_bn_recalibrated))
        cells += [fmt_bytes(p.sparse_bytes), f"{p.seconds:.1f}"]
        table.add_row(*cells, key=key)
        table.move_cursor(row=table.row_count - 1)

    def _redraw_chart(self) -> None:
        curve = [
            CurvePoint(p.sparsity_percent, p.accuracy)
            for p in self.points
            if p.evaluated and p.accuracy is not None
        ]
        best = None
        if self.best_level is not None:
            match = [p for p in self.points if p.level_percent == self.best_level]
            if match and match[0].accuracy is not None:
                best = CurvePoint(match[0].sparsity_percent, match[0].accuracy)
        self.query_one(SweepChart).set_data(curve, self.baseline, self.tolerance, best)
        self.query_one("#sentence", Static).update(self.sentence)

    def _redraw_all(self) -> None:
        table = self.query_one("#level-table", DataTable)
        table.clear(columns=True)
        table.add_columns(*self._columns())
        for p in self.points:
            self._add_level_row(p)
        self._redraw_chart()
        self._show_progress()

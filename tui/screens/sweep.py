"""Sweep screen: the SweepConfig form and the accuracy-vs-sparsity curve growing point by point."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import DescendantFocus
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Static

from engine.config import SweepConfig
from engine.events import Event, Notice, RunFinished, RunStarted, SweepFinished, SweepPoint
from tui.screens.common import WIDE, checkpoint_choices, find_checkpoints, fmt_acc, fmt_int
from tui.screens.dialogs import PickDialog
from tui.widgets.charts import CurvePoint, SweepChart
from tui.widgets.config_form import ConfigForm
from tui.widgets.progress import ProgressPanel, format_bytes, format_duration

SWEEP_GROUPS = ("Pruning", "Model", "Data", "Device", "Run")


class SweepScreen(Screen):
    """Everything about one pruning sweep."""

    JOB = "sweep"
    BINDINGS = [
        Binding("f5", "start", "Start"),
        Binding("f6", "stop", "Stop"),
        Binding("ctrl+o", "pick_checkpoint", "Checkpoint…"),
        Binding("ctrl+f", "toggle_form", "Form"),
    ]

    def __init__(
        self,
        values: dict[str, Any],
        *,
        devices: list[str],
        checkpoint_dir: str,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name, id="sweep-screen")
        self.checkpoint_dir = checkpoint_dir
        newest = find_checkpoints(checkpoint_dir)
        self.initial_values = {"checkpoint": str(newest[0]) if newest else "", **values}
        self.devices = devices
        self.valid = False
        self.form_hidden = False
        self.ready = False  # True once composed and mounted: widgets can be updated
        # what the screen shows
        self.config: SweepConfig | None = None
        self.points: list[SweepPoint] = []
        self.baseline: float | None = None
        self.tolerance: float | None = None
        self.best_level: float | None = None
        self.best_accuracy: float | None = None
        self.sentence = ""
        self.status = "idle"
        self.headline = "nothing running: pick a checkpoint and press F5 to start"
        self.progress_text = ""
        self.fraction: float | None = None
        self.run_dir = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="body"):
            with Vertical(classes="side", id="sweep-side"):
                with Horizontal(classes="buttons"):
                    yield Button("Start F5", id="start", variant="success", compact=True)
                    yield Button("Stop F6", id="stop", variant="error", compact=True)
                    yield Button("Checkpoint… ^o", id="pick", compact=True)
                with VerticalScroll(classes="form-scroll"):
                    yield ConfigForm(
                        SweepConfig,
                        self.initial_values,
                        groups=SWEEP_GROUPS,
                        choices={"device": self.devices},
                        suggestions={
                            "checkpoint": [str(p) for p in find_checkpoints(self.checkpoint_dir)]
                        },
                        id="sweep-form",
                    )
                yield Static(
                    "Tab: next field · F5: start · F1: help", classes="hint", id="sweep-hint"
                )
            with Vertical(classes="live", id="sweep-live"):
                yield ProgressPanel(id="sweep-progress")
                yield Static("", id="sentence", classes="sentence")
                yield SweepChart(id="sweep-chart")
                yield DataTable(id="level-table", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True
        self.sub_title = "Sweep"
        self._redraw_all()
        self._update_buttons()

    def on_screen_resume(self) -> None:
        self._update_buttons()
        self.app.refresh_bindings()

    @property
    def form(self) -> ConfigForm:
        return self.query_one("#sweep-form", ConfigForm)

    # -- actions ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        job = getattr(self.app, "job", None)
        if action == "start":
            if job == self.JOB:
                return False
            return True if (self.valid and job is None) else None
        if action == "stop":
            return job == self.JOB
        if action == "pick_checkpoint":
            return None if job == self.JOB else True
        return True

    def action_start(self) -> None:
        if self.check_action("start", ()) is not True:
            if not self.valid:
                self.app.bell()
                self.notify("fix the fields marked in red first", severity="warning")
            return
        config = self.form.config
        if config is not None:
            self.app.start_sweep(config)

    def action_stop(self) -> None:
        self.app.action_stop_job()

    def action_toggle_form(self) -> None:
        self.form_hidden = not self.form_hidden
        self.set_class(self.form_hidden, "-form-hidden")

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

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#stop")
    def _stop_pressed(self) -> None:
        self.action_stop()

    @on(Button.Pressed, "#pick")
    def _pick_pressed(self) -> None:
        self.action_pick_checkpoint()

    @on(ConfigForm.Changed)
    def _form_changed(self, event: ConfigForm.Changed) -> None:
        self.valid = not event.problems
        self._update_buttons()
        self.app.refresh_bindings()

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        text = self.form.help_for(event.widget)
        if text:
            self.query_one("#sweep-hint", Static).update(text)

    def _update_buttons(self) -> None:
        if not self.ready:
            return
        job = getattr(self.app, "job", None)
        self.query_one("#start", Button).disabled = not (self.valid and job is None)
        self.query_one("#stop", Button).disabled = job != self.JOB
        self.query_one("#pick", Button).disabled = job == self.JOB

    # -- engine events -----------------------------------------------------------------------------

    def begin(self, config: SweepConfig) -> None:
        self.config = config
        self.points = []
        self.baseline = self.best_level = self.best_accuracy = None
        self.tolerance = config.tolerance
        self.sentence = ""
        self.status = "starting"
        self.headline = f"{config.method} sweep of {config.checkpoint}"
        self.progress_text = "loading checkpoint and test data…"
        self.fraction = None
        self.run_dir = ""
        if self.ready:
            if self.app.size.width < WIDE and not self.form_hidden:
                self.action_toggle_form()
            self._redraw_all()
            self._update_buttons()

    def apply(self, event: Event) -> None:
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
                f"acc {fmt_acc(event.accuracy)}% · {mean:.1f} s/point · ETA {format_duration(left)}"
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
        elif isinstance(event, RunStarted):
            self.status = "running"
            self.run_dir = event.run_dir
            synthetic = " · SYNTHETIC data" if event.synthetic else ""
            self.headline = (
                f"{event.model} · {event.parameters:,} params · {event.device}{synthetic}"
            )
            self._show_progress()
        elif isinstance(event, Notice):
            self.notify(
                event.text, severity="warning" if event.level == "warning" else "information"
            )
        elif isinstance(event, RunFinished):
            self.status = event.status
            if event.reason:
                self.headline = event.reason
            self._show_progress()

    def finish(self, result: Any = None, error: str | None = None) -> None:
        if error is not None:
            self.status = "failed"
            self.headline = error
        elif result is not None:
            self.status = result.status
            self.sentence = result.sentence()
            if result.synthetic:
                self.sentence += " (SYNTHETIC data)"
            self.baseline = result.baseline_accuracy
            self.best_level = result.best_level_percent
            self.best_accuracy = result.best_accuracy
            self.progress_text = f"{len(result.points)} levels · results in {result.run_dir}"
        if self.ready:
            self._redraw_all()
            self._update_buttons()

    def set_stopping(self) -> None:
        self.status = "stopping"
        self.progress_text = "stopping after this level; finished points are kept"
        self._show_progress()

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
            fmt_int(p.nonzero_parameters),
            fmt_acc(p.accuracy) if p.evaluated else "skip",
        ]
        if self.config is not None and self.config.bn_recalibrate > 0:
            cells.append(fmt_acc(p.accuracy_bn_recalibrated))
        cells += [format_bytes(p.sparse_bytes), f"{p.seconds:.1f}"]
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

    def _show_progress(self) -> None:
        if not self.ready:
            return
        self.query_one(ProgressPanel).set(
            status=self.status,
            headline=self.headline,
            fraction=self.fraction,
            progress=self.progress_text,
            detail=f"run {self.run_dir}" if self.run_dir else "",
        )

"""Train screen: the TrainConfig form, Start/Stop/Resume, live progress, charts and epoch table.

The screen holds what it shows (epochs, losses, status) so it can be drawn whenever it becomes
visible; the app feeds it engine events with `apply` and never trains anything itself.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable
from textual.worker import Worker, WorkerState

from engine.config import TrainConfig
from engine.events import BatchProgress, CheckpointSaved, EpochEnded, Event, RunStarted
from engine.runs.record import read_metrics
from tui.formatting import fmt_acc, fmt_duration, fmt_ranks
from tui.rows import epoch_cells
from tui.screens.common import find_checkpoints, one_line
from tui.screens.dialogs import ErrorDialog, PickDialog
from tui.screens.job import JobScreen, job_bindings
from tui.screens.save import chart_path, save_chart
from tui.widgets.charts import AccuracyChart, LossChart
from tui.widgets.config_form import ConfigForm
from tui.widgets.line import FitLine
from tui.widgets.progress import ProgressPanel
from tui.widgets.text import plural, toast_path

LOSS_REDRAW_S = 2.0  # the loss chart follows the batches at most this often (SSH-friendly)

TRAIN_GROUPS = ("Training", "Model", "Data", "Device", "Checkpoints", "Run")
EPOCH_COLUMNS = ("ep", "loss", "train%", "test%", "lr", "time")  # fits 41 columns beside the form
EPOCH_KEYS = ("epoch", "train_loss", "train_acc", "test_acc", "lr", "seconds")  # rows.epoch_cells


class TrainScreen(JobScreen):
    """Everything about one training run."""

    JOB = "train"
    TITLE_TEXT = "Train"
    PICK_ACTION, PICK_BUTTON, PICK_LABEL = "pick_resume", "resume", "Resume… ^o"
    IDLE_HEADLINE = "F5 starts · fill the form"
    STOPPING_TEXT = "stopping after this batch; a resumable checkpoint is written"
    BINDINGS = [
        *job_bindings(Binding("ctrl+o", "pick_resume", "Resume…")),
        Binding("f", "toggle_chart", "Chart"),
        Binding("ctrl+s", "save_chart", "Save PNG", show=False),
    ]
    LETTER_ACTIONS = frozenset({"toggle_chart"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume_path: str | None = None
        self.config: TrainConfig | None = None
        self.epochs: list[dict[str, Any]] = []
        self.loss_log: list[tuple[int, float]] = []  # appended by the worker thread
        # a resumed run's earlier losses (this session's steps, else its epochs' mean losses)
        self.loss_before: list[tuple[float, float]] = []
        self.loss_run = ""  # the run folder the losses belong to
        self._seed_losses = False  # a resume with no earlier steps: seed them from the epochs
        self.last_checkpoint = ""
        self.gpu_memory: float | None = None
        self.last_loss: float | None = None
        self.resume_epochs_done: int | None = None  # epochs the resume checkpoint has done
        self._loss_drawn = 0.0  # monotonic time of the last live loss-chart redraw

    # -- layout --------------------------------------------------------------------------------

    def compose_above_form(self) -> ComposeResult:
        yield FitLine(self._resume_text(), id="resume-line", classes="resume-line")

    CONFIG: type = TrainConfig  # the form's dataclass
    GROUPS: tuple[str, ...] = TRAIN_GROUPS

    def make_form(self) -> ConfigForm:
        return ConfigForm(
            self.CONFIG,
            self.initial_values,
            groups=self.GROUPS,
            choices={"device": self.devices},
            id=f"{self.JOB}-form",
        )

    def compose_live(self) -> ComposeResult:
        yield ProgressPanel(id="train-progress")
        with Horizontal(classes="charts"):
            yield LossChart(id="loss-chart")
            yield AccuracyChart(id="acc-chart")
        table: DataTable = DataTable(id="epoch-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*EPOCH_COLUMNS)
        yield table

    # -- actions ---------------------------------------------------------------------------------

    def start(self, config: TrainConfig) -> None:
        done = self.resume_epochs_done if self.resume_path else None
        if done is not None and config.epochs <= done:
            self.app.bell()
            self.notify(
                f"epochs: the checkpoint has {plural(done, 'epoch')} done; set epochs above "
                f"{done} to train on (or ^o → (none) for a fresh run)",
                title="Nothing to resume",
                severity="warning",
            )
            self.query_one("#f-epochs").focus()
            return
        self.app.start_train(config, resume=self.resume_path)

    def action_pick_resume(self) -> None:
        """Read the checkpoints' metadata (a worker: files can be large), then offer the ones
        training can continue, with their model, data, epoch and accuracy."""
        folder = str(self.form.raw_values().get("checkpoint_dir") or self.checkpoint_dir)
        self.notify(f"reading the checkpoints in {toast_path(folder)}/…", timeout=2)
        self.run_worker(
            partial(resumable_choices, folder),
            thread=True,
            exit_on_error=False,
            group="resume-list",
            exclusive=True,
        )

    def action_save_chart(self) -> None:
        """Both charts side by side as a PNG, in the run's folder."""
        specs = [self.query_one(LossChart).spec(), self.query_one(AccuracyChart).spec()]
        save_chart(self, specs, chart_path(self.run_dir, "training"))

    def _offer_resume(self, folder: str, choices: list[tuple[str, str]]) -> None:
        self.app.push_screen(
            PickDialog(
                f"Resume training from a checkpoint in {folder}/",
                [("", "(none) start a fresh run"), *choices],
            ),
            self._resume_picked,
        )

    def _resume_picked(self, path: str | None) -> None:
        if path is None:
            return
        if not path:
            self.set_resume(None)
            return
        self.set_resume(path)
        self.run_worker(
            lambda: (self._load_resume_config(path), _epochs_done(path)),
            thread=True,
            exit_on_error=False,
            group="load",
            name="resume-config",
        )

    @staticmethod
    def _load_resume_config(path: str) -> TrainConfig:
        from engine.training.train import resume_config

        return resume_config(path)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "resume-list":
            event.stop()
            if event.state == WorkerState.SUCCESS:
                folder, choices = event.worker.result
                self._offer_resume(folder, choices)
            elif event.state == WorkerState.ERROR:
                self.app.push_screen(ErrorDialog("Cannot list", one_line(event.worker.error)))
            return
        if event.worker.group != "load":
            return
        event.stop()
        if event.state == WorkerState.SUCCESS:
            config, self.resume_epochs_done = event.worker.result
            values = config.to_dict()
            self.form.set_values(values)
            self.notify(f"form filled from {Path(self.resume_path or '').name}; F5 resumes")
        elif event.state == WorkerState.ERROR:
            self.set_resume(None)
            self.app.push_screen(ErrorDialog("Cannot resume", one_line(event.worker.error)))

    def set_resume(self, path: str | None) -> None:
        self.resume_path = path or None
        if self.ready:
            self.query_one("#resume-line", FitLine).update(self._resume_text())

    def _resume_text(self) -> str:
        if self.resume_path:
            return f"resume {self.resume_path}"
        return "fresh run · ^o resumes a checkpoint"

    @on(Button.Pressed, "#resume")
    def _resume_pressed(self) -> None:
        self.action_pick_resume()

    # -- engine events -----------------------------------------------------------------------------

    def begin(self, config: TrainConfig, resume: str | None) -> None:
        """A run is about to start: clear the panels."""
        self.epochs = []
        self.loss_before = joined_losses(self.loss_before, list(self.loss_log)) if resume else []
        self.loss_log.clear()
        self._seed_losses = bool(resume) and not self.loss_before
        self.last_checkpoint = ""
        self.gpu_memory = None
        self.last_loss = None
        self._loss_drawn = 0.0
        self._begin(
            config,
            f"{config.model} on {config.dataset} · {plural(config.epochs, 'epoch')}",
            f"resuming · from {resume}" if resume else "loading data…",
        )

    def _apply(self, event: Event) -> None:
        """Record one engine event and show it (cheaply: charts only per epoch)."""
        if isinstance(event, BatchProgress):
            if self._seed_losses and self.epochs:
                self._seed_losses = False
                # resumed without this session's steps: each logged epoch's mean loss instead
                self.loss_before = [
                    (e["epoch"] * event.batches, e["train_loss"])
                    for e in self.epochs
                    if isinstance(e.get("train_loss"), (int, float))
                ]
            self.last_loss = event.loss
            self._progress(event)
            self._show_progress()
            # the loss chart follows the batches too (the first at once, then every few seconds)
            now = time.monotonic()
            if self.ready and (not self._loss_drawn or now - self._loss_drawn >= LOSS_REDRAW_S):
                self._loss_drawn = now
                self._redraw_loss()
        elif isinstance(event, EpochEnded):
            entry = {k: getattr(event, k) for k in event.__dataclass_fields__}
            stale = any(e["epoch"] >= event.epoch for e in self.epochs)  # resumed before them
            self.epochs = [e for e in self.epochs if e["epoch"] < event.epoch] + [entry]
            if event.gpu_memory_mb is not None:
                self.gpu_memory = event.gpu_memory_mb
            self.fraction = event.epoch / max(event.epochs, 1)
            self.progress_text = (
                f"epoch {event.epoch}/{event.epochs} done · test {event.test_acc:.2f}% · "
                f"loss {event.train_loss:.4f} · "
                f"ETA {fmt_duration(self._eta(event.epoch, 0, 0))} · "
                f"{event.images_per_s:,.0f} img/s"
            )
            if self.ready and stale:
                self._redraw_all()
            elif self.ready:
                self._add_epoch_row(entry)
                self._redraw_charts()
                self._show_progress()
        elif isinstance(event, CheckpointSaved):
            self.last_checkpoint = event.path
            self._show_progress()

    def _run_started(self, event: RunStarted) -> None:
        if not self.progress_text.startswith(("resuming", "pruning")):
            self.progress_text = "data loaded · training the first batches…"
        if event.run_dir != self.loss_run:
            self._seed_losses = self._seed_losses or bool(self.loss_before)
            self.loss_before = []  # another run's losses
            self.loss_run = event.run_dir
        # a resumed run continues a run folder: show the epochs it already logged
        logged, _ = read_metrics(event.run_dir)  # damaged lines are skipped
        logged = [e for e in logged if isinstance(e.get("train_acc"), (int, float))]
        if logged and not self.epochs:
            self.epochs = logged
            if self.ready:
                self._redraw_all()

    def _take_result(self, result: Any) -> None:
        if result.status == "stopped" and result.checkpoint:
            self.set_resume(result.checkpoint)
            self.progress_text = f"stopped: F5 resumes · from {result.checkpoint}"
        elif result.status == "stopped":
            self.progress_text = "stopped before a checkpoint was written: F5 starts afresh"
        elif result.status == "completed":
            self.set_resume(None)
            acc = fmt_acc(result.final_test_acc)
            self.progress_text = (
                f"done: {plural(result.epochs_completed, 'epoch')}, test {acc}% · "
                "F3 sweeps the checkpoint"
            )

    def _progress(self, event: BatchProgress) -> None:
        self.fraction = ((event.epoch - 1) * event.batches + event.batch) / max(
            event.epochs * event.batches, 1
        )
        eta = self._eta(event.epoch, event.batch, event.batches, event.images_per_s)
        # most wanted first: parts that do not fit are dropped from the end
        self.progress_text = (
            f"epoch {event.epoch}/{event.epochs} · loss {event.loss:.4f} · "
            f"ETA {fmt_duration(eta)} · batch {event.batch}/{event.batches} · "
            f"{event.images_per_s:,.0f} img/s"
        )
        if event.ranks:  # a distributed run: each rank's speed, compactly
            self.progress_text += " · " + fmt_ranks(event.ranks)

    def _eta(
        self, epoch: int, batch: int, batches: int, images_per_s: float | None = None
    ) -> float | None:
        """Seconds left: the rest of this epoch at the current speed, then the mean epoch time."""
        if self.config is None:
            return None
        left_epochs = self.config.epochs - epoch
        mean_epoch = None
        if self.epochs:
            recent = self.epochs[-3:]
            mean_epoch = sum(e["seconds"] for e in recent) / len(recent)
        this_epoch = 0.0
        if batches and images_per_s:
            per_batch = self.config.batch_size / images_per_s
            this_epoch = (batches - batch) * per_batch
            if mean_epoch is None:
                mean_epoch = batches * per_batch
        if mean_epoch is None:
            return None
        return this_epoch + left_epochs * mean_epoch

    # -- drawing -------------------------------------------------------------------------------

    def _detail(self) -> list[str]:
        detail = super()._detail()
        if self.gpu_memory is not None:
            detail.append(f"GPU {self.gpu_memory:,.0f} MiB peak")
        if self.last_checkpoint:
            detail.append(f"saved {self.last_checkpoint}")
        return detail

    def _add_epoch_row(self, entry: dict[str, Any]) -> None:
        table = self.query_one("#epoch-table", DataTable)
        key = str(entry["epoch"])
        if key in table.rows:
            table.remove_row(key)
        formatted = epoch_cells(entry, percent=False)
        cells = [formatted[k] for k in EPOCH_KEYS]
        sparsity = entry.get("sparsity")
        if sparsity is not None and "sparsity" not in table.columns:
            table.add_column("sparse%", key="sparsity")  # pruned runs only
        if "sparsity" in table.columns:
            cells.append(formatted["sparsity"])
        table.add_row(*cells, key=key)
        table.move_cursor(row=table.row_count - 1)

    def _redraw_charts(self) -> None:
        epochs = [e["epoch"] for e in self.epochs]
        self.query_one(AccuracyChart).set_data(
            epochs, [e["train_acc"] for e in self.epochs], [e["test_acc"] for e in self.epochs]
        )
        self._redraw_loss()

    def _redraw_loss(self) -> None:
        log = joined_losses(self.loss_before, list(self.loss_log))
        self.query_one(LossChart).set_data([s for s, _ in log], [v for _, v in log])

    def _redraw_all(self) -> None:
        table = self.query_one("#epoch-table", DataTable)
        table.clear()
        for entry in self.epochs:
            self._add_epoch_row(entry)
        self._redraw_charts()
        self._show_progress()


def joined_losses(
    before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """A resumed run's whole loss history: the earlier steps up to where `after` starts again
    (a run resumed from an epoch's checkpoint repeats the steps after it), then `after`."""
    if not after:
        return list(before)
    start = after[0][0]
    return [entry for entry in before if entry[0] < start] + after


def resumable_choices(folder: str) -> tuple[str, list[tuple[str, str]]]:
    """(path, `name · model · data · epoch · accuracy`) for each checkpoint in `folder` that
    training can continue, newest first; finished ones say that more epochs are needed."""
    from engine.checkpoints.info import checkpoint_info

    choices = []
    for path in find_checkpoints(folder):
        info = checkpoint_info(path)
        if info.error or not info.resumable:
            continue  # exports and weights-only files cannot be resumed
        note = " (raise epochs to go on)" if info.finished else ""
        choices.append((str(path), f"{path.name} · {info.describe()}{note}"))
    return folder, choices


def _epochs_done(path: str) -> int | None:
    """How many epochs a checkpoint has done (F5 refuses to "resume" a finished one)."""
    from engine.checkpoints.info import checkpoint_info

    return checkpoint_info(path).epoch

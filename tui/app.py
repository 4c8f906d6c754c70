"""The prunelab terminal app: Train, Sweep and Runs screens over the engine.

The app holds no training or pruning logic. It builds a config from a form, calls the engine
function (`train`, `run_sweep`, `export_pruned`) in a Textual thread worker that belongs to the
App (so switching screens never stops a run), posts every engine event back to itself as a
message (`tui.messages`) and hands it to the screen that shows it. One engine job runs at a time.
Stop sets the `threading.Event` the engine checks once per batch (per level for sweeps); the
engine then writes its resumable checkpoint and returns normally.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState, get_current_worker

from engine.config import SEED_LEVELS, SweepConfig
from engine.events import CheckpointSaved, Event
from engine.runtime.device import available_devices
from engine.training.finetune_config import FinetuneConfig
from tui.formatting import fmt_bytes, fmt_pruning
from tui.jobs import JobStarters
from tui.messages import EngineEvent, EngineProgress, JobFinished, wrap
from tui.palette import PrunelabCommands
from tui.safe import printable
from tui.screens.common import NARROW, WIDE, form_words, one_line
from tui.screens.dialogs import ConfirmDialog, ErrorDialog, MessageDialog
from tui.screens.finetune import FinetuneScreen
from tui.screens.help import HelpScreen
from tui.screens.job import JobScreen
from tui.screens.runs import RunsScreen
from tui.screens.sweep import SweepScreen
from tui.screens.train import TrainScreen

JOB_TITLES = {
    "train": "Training",
    "finetune": "Fine-tuning",
    "sweep": "Sweep",
    "sensitivity": "Sensitivity",
    "export": "Export",
}

STOP_TITLES = {
    "train": "Stop training?",
    "finetune": "Stop fine-tuning?",
    "sweep": "Stop the sweep?",
    "sensitivity": "Stop the sensitivity run?",
}


class PrunelabApp(JobStarters, App[None]):
    """Train, sweep and compare from the keyboard; see HelpScreen for the keys."""

    TITLE = "prunelab"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {PrunelabCommands}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        # ctrl+q is left out of the footer (80 columns are few); Help and the palette name it
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False),
        Binding("f1", "field_help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("f2", "switch_mode('train')", "Train"),
        Binding("f3", "switch_mode('sweep')", "Sweep"),
        Binding("f4", "switch_mode('runs')", "Runs"),
        Binding("f7", "switch_mode('finetune')", "Fine-tune"),
    ]

    def notify(self, message: str, *, markup: bool = True, **kwargs: Any) -> None:
        """Every toast is shown as text: messages carry paths, run names and exception text
        (tui.safe), which must never be read as markup or reach the terminal as escapes."""
        del markup
        super().notify(printable(message, one_line=False), markup=False, **kwargs)

    def __init__(
        self,
        run_root: str = "runs",
        checkpoint_dir: str = "checkpoints",
        *,
        train_values: dict[str, Any] | None = None,
        sweep_values: dict[str, Any] | None = None,
        devices: list[str] | None = None,
        mode: str = "train",
    ) -> None:
        super().__init__()
        self.run_root = run_root
        self.checkpoint_dir = checkpoint_dir
        self.start_mode = mode
        self.job: str | None = None  # the engine job running now: train, sweep or export
        self.worker: Worker | None = None
        self.stop_signal = threading.Event()
        self.quit_after_job = False
        devices = devices if devices is not None else available_devices()
        shared = {"run_dir": run_root}  # data settings: each form's own defaults
        self.train_screen = TrainScreen(
            {**shared, "checkpoint_dir": checkpoint_dir, **(train_values or {})},
            devices=devices,
            checkpoint_dir=checkpoint_dir,
        )
        self.sweep_screen = SweepScreen(
            {**shared, "levels": SEED_LEVELS, **(sweep_values or {})},
            devices=devices,
            checkpoint_dir=checkpoint_dir,
        )
        self.finetune_screen = FinetuneScreen(
            {**shared, "checkpoint_dir": checkpoint_dir},
            devices=devices,
            checkpoint_dir=checkpoint_dir,
        )
        self.runs_screen = RunsScreen(run_root)
        self._modes.update(
            {
                "train": lambda: self.train_screen,
                "sweep": lambda: self.sweep_screen,
                "runs": lambda: self.runs_screen,
                "finetune": lambda: self.finetune_screen,
            }
        )

    def on_mount(self) -> None:
        self._fit(self.size.width)
        self.switch_mode(self.start_mode)

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        """Compact layout below WIDE columns, roomier panels above."""
        for screen in (
            self.train_screen,
            self.sweep_screen,
            self.runs_screen,
            self.finetune_screen,
        ):
            screen.set_class(width >= WIDE, "-wide")
            screen.set_class(width < NARROW, "-narrow")

    # -- commands --------------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def run_on(self, mode: str, action: str) -> None:
        """Go to screen `mode` and run its `action` (for the command palette)."""
        self.switch_mode(mode)
        getattr(self.screens_by_mode()[mode], f"action_{action}")()

    def screens_by_mode(self) -> dict[str, Any]:
        return {
            "train": self.train_screen,
            "sweep": self.sweep_screen,
            "runs": self.runs_screen,
            "finetune": self.finetune_screen,
        }

    def finetune_level(self, sweep: SweepConfig, level: float) -> None:
        """The Fine-tune screen, its form filled from a sweep at `level`: the same checkpoint,
        method, score, masks and data (every setting the two configs share, but the run folder)."""
        if self.job == "finetune":
            self.notify("a fine-tuning job is running; stop it first (F6)", severity="warning")
            return
        shared = set(FinetuneConfig.__dataclass_fields__) & set(SweepConfig.__dataclass_fields__)
        values = {k: getattr(sweep, k) for k in shared - {"run_dir"}}
        self.finetune_screen.prefill({**values, "level": level})
        self.switch_mode("finetune")
        self.notify(f"Fine-tune form filled from the sweep at {level:g}%: F5 starts", timeout=5)

    def action_field_help(self) -> None:
        """F1 on a form field: its full help; elsewhere, the keys."""
        screen = self.screen
        if isinstance(screen, MessageDialog) and screen.title_text.startswith("Help on"):
            screen.dismiss(None)  # F1 again: every key
            self.action_help()
            return
        text = screen.field_help() if isinstance(screen, JobScreen) else ""
        if text:
            name = text.split(":", 1)[0]
            text += "\n\nF1 again: every key · Esc closes"
            self.push_screen(MessageDialog(f"Help on {name}", text, kind="info"))
        else:
            self.action_help()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # the footer shows where you can go, not where you are
        here = action == "switch_mode" and bool(parameters) and parameters[0] == self.current_mode
        return not here

    # -- jobs (the starters are tui.jobs.JobStarters) ----------------------------------------

    def _start_job(
        self,
        job: str,
        work: Callable[[Callable[[Event], None], Callable[[], bool]], Any],
        hook: Callable[[Event], None] | None = None,
    ) -> Worker | None:
        if self.job is not None:
            self.notify(f"a {self.job} job is running; stop it first", severity="warning")
            return None
        stop = threading.Event()
        self.stop_signal = stop
        self.job = job

        def on_event(event: Event) -> None:
            if hook is not None:
                hook(event)
            self.post_message(wrap(job, event))

        def run() -> Any:
            # Stop when asked (Stop, quit) or when the app shuts down and cancels its workers:
            # either way the engine finishes its batch and writes what it has.
            worker = get_current_worker()
            return work(on_event, lambda: stop.is_set() or worker.is_cancelled)

        self.worker = self.run_worker(
            run,
            name=job,
            group="engine",
            description=JOB_TITLES[job],
            thread=True,
            exit_on_error=False,
        )
        self._job_changed()
        return self.worker

    def _job_changed(self) -> None:
        for screen in (self.train_screen, self.sweep_screen, self.finetune_screen):
            screen._update_buttons()
        self.refresh_bindings()

    def action_stop_job(self) -> None:
        """Ask, then stop the running job (the engine saves what it has)."""
        if self.job not in ("train", "finetune", "sweep", "sensitivity"):
            return
        job = self.job
        what = {
            "train": "Training stops after the current batch and writes a resumable checkpoint.",
            "finetune": "Fine-tuning stops after the current batch and writes a resumable checkpoint.",
            "sweep": "The sweep stops now: finished levels are kept; the level being measured is "
            "dropped (c on Runs measures it again).",
            "sensitivity": "Sensitivity stops after the current layer and level; done ones are kept.",
        }[job]

        def answer(yes: bool | None) -> None:
            if yes and self.job == job:
                self.request_stop()

        self.push_screen(ConfirmDialog(STOP_TITLES[job], what, yes="Stop", no="Keep going"), answer)

    def request_stop(self) -> None:
        """Stop now, without asking (the confirm dialogs call this)."""
        self.stop_signal.set()
        if self.job == "train":
            self.train_screen.set_stopping()
        elif self.job == "finetune":
            self.finetune_screen.set_stopping()
        elif self.job in ("sweep", "sensitivity"):
            self.sweep_screen.set_stopping()

    async def action_quit(self) -> None:
        if self.job is None:
            self.exit()
            return

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            if self.job is None:
                self.exit()
                return
            self.quit_after_job = True
            self.request_stop()
            self.notify("stopping the run, then quitting…")

        self.push_screen(
            ConfirmDialog(
                "Quit prunelab?",
                f"A {self.job} job is running. Stop it and quit? "
                + (
                    "Training writes a resumable checkpoint first."
                    if self.job in ("train", "finetune")
                    else ""
                ),
                yes="Stop and quit",
                no="Keep running",
            ),
            answer,
        )

    # -- engine events -----------------------------------------------------------------------------

    def on_engine_event(self, message: EngineEvent) -> None:
        self._route(message.job, message.event)

    def on_engine_progress(self, message: EngineProgress) -> None:
        self._route(message.job, message.event)

    def _route(self, job: str, event: Event) -> None:
        if job == "train":
            self.train_screen.apply(event)
            if isinstance(event, CheckpointSaved):
                self.sweep_screen.checkpoint_written(event.path)
        elif job == "finetune":
            self.finetune_screen.apply(event)
            if isinstance(event, CheckpointSaved):
                self.sweep_screen.checkpoint_written(event.path)
        elif job in ("sweep", "sensitivity"):
            self.sweep_screen.apply(event)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "engine" or worker is not self.worker:
            return
        if event.state == WorkerState.SUCCESS:
            self.post_message(JobFinished(worker.name, result=worker.result))
        elif event.state == WorkerState.ERROR:
            self.post_message(
                JobFinished(
                    worker.name,
                    error=one_line(worker.error),
                    title=f"{JOB_TITLES[worker.name]} failed",
                )
            )
        elif event.state == WorkerState.CANCELLED:
            self.post_message(JobFinished(worker.name, error="cancelled"))

    def on_job_finished(self, message: JobFinished) -> None:
        job = message.job
        self.job = None
        self.worker = None
        screen = {
            "train": self.train_screen,
            "finetune": self.finetune_screen,
            "sweep": self.sweep_screen,
            "sensitivity": self.sweep_screen,
        }.get(job)
        if message.error is not None and screen is not None and screen.ready:
            # the fix in the words of the form the user sees, not the CLI's flags
            message.error = form_words(message.error, screen.form.field_kinds())
        if job == "train":
            self.train_screen.finish(message.result, message.error)
        elif job == "finetune":
            self.finetune_screen.finish(message.result, message.error)
        elif job == "sweep":
            self.sweep_screen.finish(message.result, message.error)
        elif job == "sensitivity":
            self.sweep_screen.finish_sensitivity(message.result, message.error)
        self.runs_screen.refresh_runs()
        self._job_changed()
        if self.quit_after_job:
            self.exit()
            return
        if message.error is not None and message.error != "cancelled":
            self.push_screen(ErrorDialog(message.title or "Failed", message.error))
        elif job == "export" and message.result is not None:
            self._show_export(message.result)
        elif message.result is not None:
            status = getattr(message.result, "status", "")
            self.notify(f"{JOB_TITLES[job]} {status}", timeout=4)

    def _show_export(self, result: Any) -> None:
        lines = [
            f"wrote {result.path} ({result.format})",
            f"level {result.level_percent:g}% {fmt_pruning(result)} · measured sparsity "
            f"{result.sparsity_percent:.1f}%",
            f"file {fmt_bytes(result.file_bytes)} vs dense file "
            f"{fmt_bytes(result.dense_file_bytes)} ({100 * result.ratio:.1f}%)",
            f"dense tensors {fmt_bytes(result.dense_parameter_bytes)} · nonzero values "
            f"{fmt_bytes(result.nonzero_bytes)} · sparse encoding "
            f"{fmt_bytes(result.sparse_encoded_bytes)}",
        ]
        self.push_screen(MessageDialog("Exported", "\n".join(lines), kind="info"))

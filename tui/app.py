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
from functools import partial
from typing import Any

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.worker import Worker, WorkerState, get_current_worker

from engine.config import SEED_LEVELS, FinetuneConfig, SweepConfig, TrainConfig
from engine.device import available_devices
from engine.events import BatchProgress, CheckpointSaved, Event
from tui.formatting import fmt_bytes
from tui.messages import EngineEvent, EngineProgress, JobFinished, wrap
from tui.screens.common import WIDE, one_line
from tui.screens.dialogs import ConfirmDialog, ErrorDialog, MessageDialog
from tui.screens.finetune import FinetuneScreen
from tui.screens.help import HelpScreen
from tui.screens.runs import RunsScreen
from tui.screens.sweep import SweepScreen
from tui.screens.train import TrainScreen

JOB_TITLES = {"train": "Training", "finetune": "Fine-tuning", "sweep": "Sweep", "export": "Export"}


class PrunelabCommands(Provider):
    """The main actions by name in the command palette (ctrl+p)."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app = self.app
        assert isinstance(app, PrunelabApp)
        commands = [
            (
                "Train screen",
                "the training form and live panels (F2)",
                partial(app.switch_mode, "train"),
            ),
            (
                "Sweep screen",
                "prune a checkpoint level by level (F3)",
                partial(app.switch_mode, "sweep"),
            ),
            (
                "Runs screen",
                "past runs, overlay sweeps, export (F4)",
                partial(app.switch_mode, "runs"),
            ),
            (
                "Fine-tune screen",
                "prune a checkpoint, then train it with the mask fixed (F7)",
                partial(app.switch_mode, "finetune"),
            ),
            ("Help", "keys and what each screen does (F1)", app.action_help),
        ]
        if app.job is None:
            commands += [
                (
                    "Start training",
                    "start a run with the Train form (F5 on Train)",
                    app.action_start_train,
                ),
                (
                    "Start sweep",
                    "start a sweep with the Sweep form (F5 on Sweep)",
                    app.action_start_sweep,
                ),
            ]
        else:
            commands.append(
                (
                    f"Stop {app.job}",
                    "stop the running job; training writes a resumable checkpoint (F6)",
                    app.action_stop_job,
                )
            )
        commands += [
            (
                "Resume training from a checkpoint",
                "pick a checkpoint (ctrl+o on Train)",
                app.action_pick_resume,
            ),
            ("Quit", "leave prunelab (ctrl+q)", app.action_quit),
        ]
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class PrunelabApp(App[None]):
    """Train, sweep and compare from the keyboard; see HelpScreen for the keys."""

    TITLE = "prunelab"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {PrunelabCommands}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("f2", "switch_mode('train')", "Train"),
        Binding("f3", "switch_mode('sweep')", "Sweep"),
        Binding("f4", "switch_mode('runs')", "Runs"),
        Binding("f7", "switch_mode('finetune')", "Fine-tune", show=False),
    ]

    def __init__(
        self,
        run_root: str = "runs",
        checkpoint_dir: str = "checkpoints",
        data_dir: str = "data",
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
        self.last_error: str | None = None
        devices = devices if devices is not None else available_devices()
        shared = {"run_dir": run_root, "data_dir": data_dir}
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

    # -- commands --------------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_start_train(self) -> None:
        self.switch_mode("train")
        self.train_screen.action_start()

    def action_start_sweep(self) -> None:
        self.switch_mode("sweep")
        self.sweep_screen.action_start()

    def action_pick_resume(self) -> None:
        self.switch_mode("train")
        self.train_screen.action_pick_resume()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # the footer shows where you can go, not where you are
        here = action == "switch_mode" and bool(parameters) and parameters[0] == self.current_mode
        return not here

    # -- jobs --------------------------------------------------------------------------------------

    def start_train(self, config: TrainConfig, resume: str | None = None) -> Worker | None:
        from engine.train import train

        return self._start_training(self.train_screen, train, config, resume)

    def start_finetune(self, config: FinetuneConfig, resume: str | None = None) -> Worker | None:
        from engine.finetune import finetune

        return self._start_training(self.finetune_screen, finetune, config, resume)

    def _start_training(
        self, screen: TrainScreen, entry: Callable[..., Any], config: Any, resume: str | None
    ) -> Worker | None:
        if self.job is not None:
            self.notify(f"a {self.job} job is running; stop it first", severity="warning")
            return None
        screen.begin(config, resume)
        loss_log = screen.loss_log

        def record_loss(event: Event) -> None:  # runs in the worker thread; list.append is atomic
            if isinstance(event, BatchProgress):
                loss_log.append((event.step, event.loss))

        return self._start_job(
            screen.JOB,
            lambda on_event, stop: entry(config, on_event, stop, resume=resume),
            hook=record_loss,
        )

    def start_sweep(self, config: SweepConfig, resume_run: str | None = None) -> Worker | None:
        from engine.sweep import run_sweep

        self.sweep_screen.begin(config)
        return self._start_job(
            "sweep",
            lambda on_event, stop: run_sweep(config, on_event, stop, resume_run=resume_run),
        )

    def start_export(self, checkpoint: str, level_percent: float, **kwargs: Any) -> Worker | None:
        from engine.export import export_pruned

        self.notify(f"exporting {checkpoint} at {level_percent:g}%…")
        return self._start_job(
            "export",
            lambda on_event, stop: export_pruned(
                checkpoint, level_percent, run_dir=self.run_root, **kwargs
            ),
        )

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
        self.last_error = None

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
        if self.job not in ("train", "finetune", "sweep"):
            return
        job = self.job
        what = (
            "The sweep stops after the current level; finished points are kept."
            if job == "sweep"
            else "Training stops after the current batch and writes a resumable checkpoint."
        )

        def answer(yes: bool | None) -> None:
            if yes and self.job == job:
                self.request_stop()

        self.push_screen(
            ConfirmDialog(f"Stop the {job}?", what, yes="Stop", no="Keep going"), answer
        )

    def request_stop(self) -> None:
        """Stop now, without asking (the confirm dialogs call this)."""
        self.stop_signal.set()
        if self.job == "train":
            self.train_screen.set_stopping()
        elif self.job == "finetune":
            self.finetune_screen.set_stopping()
        elif self.job == "sweep":
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
        elif job == "sweep":
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
        if job == "train":
            self.train_screen.finish(message.result, message.error)
        elif job == "finetune":
            self.finetune_screen.finish(message.result, message.error)
        elif job == "sweep":
            self.sweep_screen.finish(message.result, message.error)
        self.runs_screen.refresh_runs()
        self._job_changed()
        if self.quit_after_job:
            self.exit()
            return
        if message.error is not None and message.error != "cancelled":
            self.last_error = message.error
            self.push_screen(ErrorDialog(message.title or "Failed", message.error))
        elif job == "export" and message.result is not None:
            self._show_export(message.result)
        elif message.result is not None:
            status = getattr(message.result, "status", "")
            self.notify(f"{JOB_TITLES[job]} {status}", timeout=4)

    def _show_export(self, result: Any) -> None:
        lines = [
            f"wrote {result.path} ({result.format})",
            f"level {result.level_percent:g}% {result.method} · measured sparsity "
            f"{result.sparsity_percent:.1f}%",
            f"file {fmt_bytes(result.file_bytes)} vs dense file "
            f"{fmt_bytes(result.dense_file_bytes)} ({100 * result.ratio:.1f}%)",
            f"dense tensors {fmt_bytes(result.dense_parameter_bytes)} · nonzero values "
            f"{fmt_bytes(result.nonzero_bytes)} · sparse encoding "
            f"{fmt_bytes(result.sparse_encoded_bytes)}",
        ]
        self.push_screen(MessageDialog("Exported", "\n".join(lines), kind="info"))

"""What the app starts: one method per kind of job, each a single engine call (or, on several
devices, the `prunelab` command under torch's launcher: tui.launched) run by `_start_job` in a
worker. A mixin of PrunelabApp, which owns the screens, the worker and the one-job rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.worker import Worker

from engine.config import SweepConfig, TrainConfig
from engine.events import BatchProgress, Event
from engine.export.config import ExportConfig
from engine.training.finetune_config import FinetuneConfig
from tui.screens.train import TrainScreen
from tui.widgets.text import toast_path


class JobStarters:
    """start_train, start_finetune, start_sweep, start_sensitivity, start_resume, start_export."""

    job: str | None
    train_screen: Any
    finetune_screen: Any
    sweep_screen: Any
    _start_job: Callable[..., Worker | None]  # PrunelabApp's: runs `work` in the job's worker
    notify: Callable[..., None]

    def start_train(self, config: TrainConfig, resume: str | None = None) -> Worker | None:
        from engine.training.train import train

        return self._start_training(self.train_screen, train, config, resume)

    def start_finetune(self, config: FinetuneConfig, resume: str | None = None) -> Worker | None:
        from engine.training.finetune import finetune

        return self._start_training(self.finetune_screen, finetune, config, resume)

    def _start_training(
        self, screen: TrainScreen, entry: Callable[..., Any], config: Any, resume: str | None
    ) -> Worker | None:
        from tui.launched import train_on_devices

        if self.job is not None:
            self.notify(f"a {self.job} job is running; stop it first", severity="warning")
            return None
        screen.begin(config, resume)
        loss_log = screen.loss_log

        def record_loss(event: Event) -> None:  # runs in the worker thread; list.append is atomic
            if isinstance(event, BatchProgress):
                loss_log.append((event.step, event.loss))

        def work(on_event: Callable[[Event], None], stop: Callable[[], bool]) -> Any:
            if config.devices == 1:
                return entry(config, on_event, stop, resume=resume)
            return train_on_devices(screen.JOB, config, resume, on_event, stop)

        return self._start_job(screen.JOB, work, hook=record_loss)

    def start_sweep(self, config: SweepConfig) -> Worker | None:
        from engine.sweep.run import run_sweep
        from tui.launched import sweep_on_devices

        self.sweep_screen.begin(config)

        def work(on_event: Callable[[Event], None], stop: Callable[[], bool]) -> Any:
            if config.devices == 1:
                return run_sweep(config, on_event, stop)
            return sweep_on_devices(config, None, on_event, stop)

        return self._start_job("sweep", work)

    def start_sensitivity(self, config: SweepConfig) -> Worker | None:
        from engine.sweep.sensitivity import run_sensitivity

        if self.job is not None:
            self.notify(f"a {self.job} job is running; stop it first", severity="warning")
            return None
        self.sweep_screen.begin_sensitivity(config)
        return self._start_job(
            "sensitivity", lambda on_event, stop: run_sensitivity(config, on_event, stop)
        )

    def start_resume(self, run_dir: str) -> Worker | None:
        """Continue an interrupted sweep or find run (engine.operations.resume_run: the same
        rule and the same semantics as `prunelab sweep --resume`)."""
        from engine.operations import resume_run
        from engine.sweep.store import saved_config
        from tui.launched import sweep_on_devices

        config = saved_config(Path(run_dir))
        self.sweep_screen.begin(config)

        def work(on_event: Callable[[Event], None], stop: Callable[[], bool]) -> Any:
            if config.devices == 1:
                return resume_run(run_dir, on_event, stop)
            return sweep_on_devices(config, run_dir, on_event, stop)

        return self._start_job("sweep", work)

    def start_export(self, config: ExportConfig, run: str | None = None) -> Worker | None:
        """Export `config`; from the run folder `run` (a sweep's level, a fine-tuned model) it
        goes through engine.operations.export_from_run (the run's own masks and settings)."""
        from engine.export.writer import export_pruned
        from engine.operations import export_run_as

        def work(on_event: Callable[[Event], None], stop: Callable[[], bool]) -> Any:
            if run is None:
                return export_pruned(config, on_event, stop)
            return export_run_as(run, config, on_event, stop)

        self.notify(f"exporting {toast_path(config.checkpoint)} at {config.level:g}%…")
        return self._start_job("export", work)

"""The terminal event renderer: engine events as live bars, plain lines or JSON lines, and Ctrl-C
as the engine's stop signal (a second Ctrl-C aborts at once)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from engine.events import (
    BatchProgress,
    CheckpointSaved,
    EpochEnded,
    Notice,
    RunStarted,
    SensitivityPoint,
    SweepPoint,
    event_to_dict,
)
from tui import render
from tui.cli.output import EXIT_INTERRUPTED, Output, dump_json
from tui.formatting import fmt_level, fmt_pct, fmt_ranks
from tui.safe import plain

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

PLAIN_PROGRESS_EVERY_S = 30.0  # without a TTY, a batch line at most this often


class Reporter:
    """The `on_event` callback: live bars and lines, plain lines, or JSON lines."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.started: RunStarted | None = None
        self.baseline: float | None = None
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self._last_plain = time.monotonic()

    def __enter__(self) -> Reporter:
        if self.out.live:
            # Imported here: live bars exist only in a terminal, not in --help or a pipe.
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=self.out.console,
                transient=True,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _print(self, text: str, style: str | None = None) -> None:
        if self.progress is not None:
            line = plain(text, style or "", one_line=False)
            self.progress.console.print(line, soft_wrap=self.out.soft_wrap)
        else:
            self.out.line(text, style)

    def _task(self, key: str, description: str, total: float) -> TaskID:
        assert self.progress is not None
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=total, info="")
        return self.tasks[key]

    def __call__(self, event: Any) -> None:
        if isinstance(event, RunStarted):
            self.started = event
        if isinstance(event, SweepPoint) and event.level_percent == 0 and event.evaluated:
            self.baseline = event.accuracy
        if self.out.json_lines:
            print(dump_json(event_to_dict(event)), flush=True)
            return
        if not self.out.human:
            return
        if isinstance(event, BatchProgress):
            self._batch(event)
            return
        text = render.event_line(event, self.baseline)
        if isinstance(event, RunStarted):
            self._print(text, "bold")
            if event.synthetic:
                self._print(render.SYNTHETIC_WARNING, "bold yellow")
        elif isinstance(event, Notice):
            self._print(text, "yellow" if event.level == "warning" else None)
        elif isinstance(event, (EpochEnded, CheckpointSaved, SweepPoint, SensitivityPoint)):
            self._print(text)
            self._advance(event)

    def _batch(self, event: BatchProgress) -> None:
        info = f"loss {event.loss:.4f}  {event.images_per_s:,.0f} img/s"
        if event.ranks:
            info += "  " + fmt_ranks(event.ranks)
        if self.progress is None:
            now = time.monotonic()
            if now - self._last_plain >= PLAIN_PROGRESS_EVERY_S:
                self._last_plain = now
                self._print(render.batch_line(event))
            return
        epochs = self._task("epochs", "epochs", event.epochs)
        batches = self._task("batches", f"epoch {event.epoch}", event.batches)
        self.progress.update(epochs, completed=event.epoch - 1 + event.batch / event.batches)
        self.progress.update(
            batches,
            description=f"epoch {event.epoch}",
            total=event.batches,
            completed=event.batch,
            info=info,
        )

    def _advance(self, event: Any) -> None:
        if self.progress is None:
            return
        if isinstance(event, EpochEnded):
            epochs = self._task("epochs", "epochs", event.epochs)
            self.progress.update(
                epochs,
                completed=event.epoch,
                info=f"test acc {fmt_pct(event.test_acc)}  lr {event.lr:.4g}",
            )
        elif isinstance(event, (SweepPoint, SensitivityPoint)) and event.total:
            label = "levels" if isinstance(event, SweepPoint) else "layer x level"
            task = self._task("points", label, event.total)
            info = (
                f"level {fmt_level(event.level_percent)}"
                if isinstance(event, SweepPoint)
                else event.layer
            )
            self.progress.update(task, total=event.total, completed=event.index, info=info)


@contextlib.contextmanager
def stop_on_ctrl_c() -> Iterator[threading.Event]:
    """The first Ctrl-C asks the engine to stop (it saves first); a second one aborts at once."""
    stop = threading.Event()
    installed = False
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.SIG_IGN:

            def on_sigint(signum: int, frame: Any) -> None:
                stop.set()
                signal.signal(signal.SIGINT, signal.default_int_handler)
                print(
                    "\nstopping: saving what is done; press Ctrl-C again to abort at once",
                    file=sys.stderr,
                    flush=True,
                )

            signal.signal(signal.SIGINT, on_sigint)
            installed = True
    try:
        yield stop
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def run_engine(out: Output, entry: Any, config: Any, **kwargs: Any) -> tuple[Any, bool]:
    """Call an engine entry point with `out`'s reporter and Ctrl-C as its stop signal.

    With `--devices N` (N > 1) outside torchrun, this process becomes torch's launcher and runs
    this same command line on N workers instead (and exits with their code). In a worker, SIGINT
    and SIGTERM are the stop signal, and ranks other than 0 print nothing.

    Returns its result and whether the run used synthetic data.
    """
    from engine.runtime.distributed import (
        launch,
        launched_by_torchrun,
        stop_on_signals,
        world_from_env,
    )

    if not launched_by_torchrun() and getattr(config, "devices", 1) > 1:
        raise typer.Exit(launch(config.devices, sys.argv[1:]))
    world = world_from_env()
    reporter = Reporter(out)
    stopper = stop_on_signals(threading.Event()) if world.distributed else stop_on_ctrl_c()
    with stopper as stop, reporter:
        result = entry(config, reporter, stop, **kwargs)
    if not world.writer:
        raise typer.Exit({"completed": 0, "stopped": EXIT_INTERRUPTED}.get(result.status, 1))
    return result, bool(reporter.started and reporter.started.synthetic)

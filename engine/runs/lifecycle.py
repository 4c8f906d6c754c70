"""One run lifecycle for every kind of run (train, finetune, sweep, find, sensitivity, export).

Lightning's Trainer is the model: the loop owns start, end and failure, and the callbacks (the
front ends' `on_event`) only observe. An engine entry point does:

    run = Run("sweep", on_event, stop)
    run.open(root, model=..., config=..., device=..., data=..., synthetic=...)  # + writer lock
    run.start(parameters=...)             # RunStarted
    with run.guard(oom_hint=...):         # any exception: run.json says failed, with the reason
        ...the loop, checking run.stop_requested()...
    run.finish(status, SweepSummary(...)) # run.json + RunFinished, once; the lock is released

`Run` is the only code that emits `RunStarted`/`RunFinished` and writes a run's status. The
summary saved in run.json is a typed dataclass per kind (engine.runs.summaries) with a `headline()`;
`read_run_info(path)` returns it typed, and both front ends show `RunInfo.headline()`.

The run folder's files and the writer lock are engine.runs.record / engine.runs.files: `open` takes the
lock (a second writer gets RunBusyError) and `finish`/`fail`/`release` give it back. Under
torchrun only rank 0 opens the folder; the other ranks `follow` it and write nothing.

A new kind of run: add its summary class to engine.runs.summaries (one line in `SUMMARIES`), its name
to engine.events.RunKind (engine.runs.record.RUN_KINDS reads it), and drive it with a `Run` as above; to make
it resumable, add one entry to engine.operations.RESUMERS.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import PrunelabError
from engine.events import (
    EventCallback,
    Notice,
    RunFinished,
    RunStarted,
    StopSignal,
    no_events,
    stop_requested,
)
from engine.methods import pruning_label
from engine.runs.files import RunFileError, process_start
from engine.runs.record import (
    RunListing,
    RunRecord,
    WriterLock,
    is_run_dir,
    list_runs,
    load_run,
    now_iso,
    read_run,
)
from engine.runs.record import start_run as _start_run
from engine.runs.summaries import Numbers, RunSummary, summary_from_dict


def _cuda_out_of_memory(exc: BaseException) -> bool:
    """torch's CUDA OOM (only possible once torch is imported: this module does not import it,
    so listing runs stays light)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


def failure_reason(exc: BaseException) -> str:
    """One line for run.json and the front ends: expected errors as they are, others typed."""
    if isinstance(exc, PrunelabError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted before the run could save its state"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class Run:
    """The life of one run folder: opened (new or resumed), guarded, finished exactly once."""

    def __init__(self, kind: str, on_event: EventCallback = no_events, stop: StopSignal = None):
        self.kind = kind
        self.on_event = on_event
        self.stop = stop
        self.dir: Path | None = None
        self.record: RunRecord | None = None  # None on a rank that does not write
        self.summary: RunSummary | None = None
        # What the run has done so far, asked when it ends (also when it fails): the summary
        # of a failed run keeps the work that was saved before the failure.
        self.summarize: Callable[[], RunSummary | None] | None = None
        self.finished = False
        self._lock: WriterLock | None = None
        self._started: dict[str, Any] = {}

    def stop_requested(self) -> bool:
        return stop_requested(self.stop)

    def claim(self, run_dir: str | Path) -> None:
        """Take an existing run folder's writer lock now, before reading it to resume it
        (`open(resume=run_dir)` then keeps it)."""
        if self._lock is None:
            self._lock = WriterLock(run_dir).acquire()

    def open(
        self,
        root: str | Path,
        *,
        model: str,
        config: dict[str, Any],
        device: str,
        data: str,
        synthetic: bool,
        resume: str | Path | None = None,
        world_size: int = 1,
        check: Callable[[RunRecord], None] | None = None,
    ) -> Path:
        """Create the run folder (or reopen `resume`, an existing run folder) under its writer
        lock and save run.json as running. `check(record)` runs under the lock before anything
        is written (it raises to refuse the run)."""
        if resume is not None and Path(resume).is_dir():
            self.dir = Path(resume)
            self.claim(self.dir)
            try:
                record = load_run(self.dir)
                if check is not None:
                    check(record)
                record.status, record.reason, record.finished = "running", "", ""
                record.config, record.world_size = config, world_size
                record.name = str(config.get("name") or record.name)
                record.note = str(config.get("note") or record.note)
                record.pid, record.host = os.getpid(), socket.gethostname()
                record.pid_started = process_start(os.getpid()) or 0.0
                record.save(self.dir)
            except BaseException:
                self.release()
                raise
        else:
            if check is not None:
                check(RunRecord(kind=self.kind, model=model, created=""))
            self.dir, record = _start_run(
                root,
                self.kind,
                model,
                config,
                device=device,
                data=data,
                synthetic=synthetic,
                world_size=world_size,
            )
            self._lock = WriterLock(self.dir).acquire()
        self.record = record
        self._started = dict(
            model=model,
            config=config,
            device=device,
            synthetic=synthetic,
            world_size=world_size,
        )
        return self.dir

    def follow(self, run_dir: str | Path) -> Path:
        """A rank that does not write (torchrun): it knows the folder, records and says nothing."""
        self.dir = Path(run_dir)
        return self.dir

    def start(self, *, parameters: int, **changed: Any) -> None:
        """Announce the run (`RunStarted`), with what `open` recorded (`changed` overrides; a
        run that evaluates test images names them with `data=`)."""
        if self.dir is None:
            raise RuntimeError("Run.start before Run.open")
        fields = {**self._started, **changed}
        self.on_event(
            RunStarted(
                kind=self.kind,  # type: ignore[arg-type]
                run_dir=str(self.dir),
                device=fields.get("device", ""),
                model=fields.get("model", ""),
                parameters=parameters,
                config=fields.get("config", {}),
                synthetic=fields.get("synthetic", False),
                world_size=fields.get("world_size", 1),
                data=fields.get("data", ""),
            )
        )

    def notice(self, text: str, level: str = "info") -> None:
        self.on_event(Notice(text, level))  # type: ignore[arg-type]

    def save_record(self) -> None:
        """Write run.json again (e.g. after a checkpoint hash was recorded)."""
        if self.record is not None and self.dir is not None:
            self.record.save(self.dir)

    @contextlib.contextmanager
    def guard(self, *, oom_hint: str | None = None) -> Iterator[Run]:
        """Any exception inside marks the run failed (run.json and `RunFinished`) and goes on up;
        CUDA running out of memory becomes a `PrunelabError` naming the fix (`oom_hint`)."""
        try:
            yield self
        except BaseException as exc:
            if _cuda_out_of_memory(exc):
                reason = "CUDA out of memory" + (f" {oom_hint}" if oom_hint else "")
                self.fail(reason)
                raise PrunelabError(reason) from None
            self.fail(failure_reason(exc))
            raise

    def fail(self, reason: str) -> None:
        self._end("failed", reason)

    def finish(self, status: str, summary: RunSummary | None = None) -> None:
        """The run ended normally: `completed` or `stopped` (what was done is saved)."""
        if summary is not None:
            self.summary = summary
        self._end(status, "")

    def release(self) -> None:
        """Give the writer lock back (idempotent; `finish` and `fail` do it)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _end(self, status: str, reason: str) -> None:
        if self.finished or self.dir is None:
            return
        self.finished = True
        try:
            if self.summary is None and self.summarize is not None:
                self.summary = self.summarize()
            summary = self.summary.to_dict() if self.summary is not None else {}
            if self.record is not None:
                record = self.record
                record.status, record.reason, record.finished = status, reason, now_iso()
                record.summary = summary
                try:
                    record.save(self.dir)
                except RunFileError:
                    if status != "failed":
                        raise  # on a failure the original error says more than this one
            self.on_event(
                RunFinished(
                    kind=self.kind,  # type: ignore[arg-type]
                    status=status,  # type: ignore[arg-type]
                    run_dir=str(self.dir),
                    reason=reason,
                    summary=summary,
                )
            )
        finally:
            self.release()


@dataclass
class RunInfo:
    """A past run as the front ends see it: its folder, its record, its typed summary."""

    path: Path
    record: RunRecord
    summary: RunSummary | None
    damage: str = ""

    @property
    def kind(self) -> str:
        return self.record.kind

    def headline(self) -> str:
        """The one line both front ends show for a run: its result, or why it did not end."""
        if self.damage:
            return f"damaged: {self.damage}"
        if self.record.status in ("failed", "interrupted") and self.record.reason:
            return f"{self.record.status}: {self.record.reason}"
        text = self.summary.headline() if self.summary is not None else ""
        if self.record.status == "running" and not text:
            return "running"
        return text

    def label(self) -> str:
        """What tells the run apart in a list: its name when given one, else its kind and
        start (`sweep 01-02 10:00`)."""
        if self.record.name:
            return self.record.name
        created = self.record.created.replace("T", " ")[5:16]
        return f"{self.kind} {created}" if created else self.path.name

    def pruning(self) -> str:
        """How the run pruned (`layerwise`, `global, taylor`); '' for a run that did not."""
        config = self.record.config if isinstance(self.record.config, dict) else {}
        method = config.get("method")
        if self.kind == "train" or not isinstance(method, str):
            return ""
        if self.kind == "sensitivity":
            method = "per layer"
        score = config.get("score")
        return pruning_label(method, score if isinstance(score, str) else "l1")

    def source(self) -> str:
        """The checkpoint the run read (a training run: the one it wrote last); '' if none."""
        config = self.record.config if isinstance(self.record.config, dict) else {}
        if self.kind == "train":
            checkpoint = getattr(self.summary, "checkpoint", None)
        else:
            checkpoint = config.get("checkpoint")
        return checkpoint if isinstance(checkpoint, str) else ""

    def numbers(self) -> Numbers:
        """The headline's numbers (level, accuracy, dense), for the runs tables' columns."""
        return self.summary.numbers() if self.summary is not None else Numbers()


def _info(listing: RunListing) -> RunInfo:
    record = listing.record
    summary = record.summary if isinstance(record.summary, dict) else {}
    return RunInfo(listing.path, record, summary_from_dict(record.kind, summary), listing.damage)


def read_run_info(path: str | Path) -> RunInfo:
    """A run folder read back (however damaged, see engine.runs.record.read_run), summary typed."""
    if not is_run_dir(Path(path)):
        load_run(path)  # raises the one error for a folder that is not a run
    return _info(read_run(path))


def list_run_infos(root: str | Path) -> list[RunInfo]:
    """Every run under `root`, newest first, damaged ones included."""
    return [_info(listing) for listing in list_runs(root)]

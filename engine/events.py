"""The event stream between the engine and its front ends (docs/ARCHITECTURE.md).

Every long-running engine call takes an `on_event` callback and emits these frozen dataclasses;
the CLI renders them with rich and the TUI turns them into Textual messages, so both show the
same truth. Events carry plain data only (numbers, strings, tuples) so they can be logged as JSON.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

RunKind = Literal["train", "finetune", "sweep", "find", "sensitivity", "export"]
RunStatus = Literal["completed", "stopped", "failed"]


@dataclass(frozen=True)
class RunStarted:
    kind: RunKind
    run_dir: str
    device: str
    model: str
    parameters: int
    config: dict[str, Any]
    synthetic: bool = False  # every output of a run on synthetic data says so
    world_size: int = 1  # ranks of a distributed (torchrun) run; rank 0 reports
    data: str = ""  # where the evaluated images come from (ImageSet.source), when known


@dataclass(frozen=True)
class BatchProgress:
    """Throttled (a few per second at most); `loss` is the mean over the batches since the last one."""

    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    images_per_s: float
    step: int  # global optimiser step, for a loss chart
    ranks: tuple[float, ...] = ()  # distributed: each rank's images/s, in rank order


@dataclass(frozen=True)
class EpochEnded:
    epoch: int
    epochs: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float
    seconds: float
    images_per_s: float
    gpu_memory_mb: float | None = None
    sparsity: float | None = None  # measured percent of prunable weights at 0 (pruned runs)


@dataclass(frozen=True)
class CheckpointSaved:
    path: str
    epoch: int


@dataclass(frozen=True)
class SweepPoint:
    """One evaluated pruning level (see engine.sweep.answer.PointResult for the fields' meaning)."""

    level_percent: float
    sparsity_percent: float
    total_sparsity_percent: float
    nonzero_parameters: int
    accuracy: float | None
    loss: float | None
    dense_bytes: int
    sparse_bytes: int
    seconds: float
    accuracy_bn_recalibrated: float | None = None
    evaluated: bool = True
    refined: bool = False  # a bisection point of the best-sparsity search
    accuracy_finetuned: float | None = None  # recovery sweeps: after masked fine-tuning
    index: int = 0
    total: int = 0
    accuracy_ci95: list[float] | None = None  # Wilson 95% interval
    delta_ci95: list[float] | None = None  # paired 95% interval of the change from dense
    parameters: int | None = None  # of the network the level runs (slim for structured)
    macs: int | None = None
    speedup: float | None = None  # measured, over dense (None when latency was not timed)
    speedup_range: list[float] | None = None  # its spread: [low, high]


@dataclass(frozen=True)
class SweepFinished:
    baseline_accuracy: float | None
    best_level_percent: float | None
    best_accuracy: float | None
    tolerance: float
    points: int
    best_level_ci95: list[float] | None = None  # bootstrap over test images
    note: str = ""  # e.g. the test set is too small for the tolerance


@dataclass(frozen=True)
class SensitivityPoint:
    """Accuracy with one layer pruned to `level_percent` and every other layer dense."""

    layer: str
    level_percent: float
    accuracy: float
    index: int
    total: int


@dataclass(frozen=True)
class Notice:
    """A human-readable line worth showing (resume, fallback, warning)."""

    text: str
    level: Literal["info", "warning"] = "info"


@dataclass(frozen=True)
class RunFinished:
    kind: RunKind
    status: RunStatus
    run_dir: str
    reason: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


Event = (
    RunStarted
    | BatchProgress
    | EpochEnded
    | CheckpointSaved
    | SweepPoint
    | SweepFinished
    | SensitivityPoint
    | Notice
    | RunFinished
)
EventCallback = Callable[[Event], None]
StopSignal = threading.Event | Callable[[], bool] | None


def no_events(event: Event) -> None:
    """The default callback: discard events."""


def stop_requested(stop: StopSignal) -> bool:
    """True once the front end asked the engine to stop; checked at least once per batch."""
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict with the event's type name, for `--json-lines` and logs."""
    return {"event": type(event).__name__, **asdict(event)}


EVENT_TYPES: dict[str, type] = {t.__name__: t for t in Event.__args__}  # type: ignore[attr-defined]


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """The event a `--json-lines` line holds (the inverse of `event_to_dict`); None when the
    line is not an event (e.g. the closing `Result`). Lists become the tuples the fields hold."""
    kind = EVENT_TYPES.get(str(data.get("event")))
    if kind is None:
        return None
    names = {f.name: f for f in fields(kind)}
    values = {
        k: tuple(v) if isinstance(v, list) and "tuple" in str(names[k].type) else v
        for k, v in data.items()
        if k in names
    }
    return kind(**values)

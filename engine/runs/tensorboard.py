"""Optional TensorBoard logging (`--tensorboard DIR`): an event sink beside the front end's.

It sees the same events the CLI and the app draw, so TensorBoard shows the same numbers: the
loss per optimiser step, train/test accuracy, test loss and lr per epoch, a sweep's top-1 (and
its 95% interval) per level, and the run's settings as hparams with its headline numbers as
their metrics. Each run writes `DIR/<run folder name>`, so one `tensorboard --logdir DIR`
compares runs. Needs the `tensorboard` package (the `[tensorboard]` extra); torch's writer is
imported only when a folder is given.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.events import (
    BatchProgress,
    EpochEnded,
    Event,
    EventCallback,
    RunFinished,
    RunStarted,
    SensitivityPoint,
    SweepPoint,
)
from engine.runs.summaries import summary_from_dict


def level_step(level_percent: float) -> int:
    """A level as TensorBoard's integer step: hundredths of a percent (5000 = 50%), so refined
    levels such as 62.5% keep their own step."""
    return round(level_percent * 100)


class TensorBoardSink:
    """Writes a run's events as TensorBoard scalars under `folder/<run folder name>`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.writer: Any = None
        self.config: dict[str, Any] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            from torch.utils.tensorboard import SummaryWriter

            self.close()
            self.writer = SummaryWriter(str(self.folder / Path(event.run_dir).name))
            self.config = {"kind": event.kind, "model": event.model, **event.config}
            self.writer.add_text("settings", _settings_text(self.config))
            return
        if self.writer is None:
            return
        if isinstance(event, BatchProgress):
            self.writer.add_scalar("train/loss_per_step", event.loss, event.step)
        elif isinstance(event, EpochEnded):
            self._epoch(event)
        elif isinstance(event, SweepPoint) and event.accuracy is not None:
            step = level_step(event.level_percent)
            self.writer.add_scalar("sweep/top1", event.accuracy, step)
            if event.accuracy_ci95:
                low, high = event.accuracy_ci95
                self.writer.add_scalar("sweep/top1_ci95_low", low, step)
                self.writer.add_scalar("sweep/top1_ci95_high", high, step)
            if event.accuracy_finetuned is not None:
                self.writer.add_scalar("sweep/top1_finetuned", event.accuracy_finetuned, step)
        elif isinstance(event, SensitivityPoint):
            tag = f"sensitivity/{event.layer}"
            self.writer.add_scalar(tag, event.accuracy, level_step(event.level_percent))
        elif isinstance(event, RunFinished):
            self._hparams(event)
            self.close()

    def _epoch(self, event: EpochEnded) -> None:
        for tag, value in (
            ("accuracy/test", event.test_acc),
            ("accuracy/train", event.train_acc),
            ("loss/test", event.test_loss),
            ("loss/train", event.train_loss),
            ("lr", event.lr),
            ("sparsity", event.sparsity),
        ):
            if value is not None:
                self.writer.add_scalar(tag, value, event.epoch)

    def _hparams(self, event: RunFinished) -> None:
        """The settings as hparams, the headline numbers (engine.runs.summaries) as metrics."""
        summary = summary_from_dict(event.kind, event.summary)
        numbers = summary.numbers() if summary is not None else None
        metrics = {
            f"result/{name}": value
            for name, value in (
                ("level", getattr(numbers, "level", None)),
                ("accuracy", getattr(numbers, "accuracy", None)),
                ("dense", getattr(numbers, "dense", None)),
            )
            if value is not None
        }
        hparams = {k: _hparam(v) for k, v in self.config.items()}
        hparams["status"] = event.status
        self.writer.add_hparams(hparams, metrics or {"result/none": 0.0}, run_name=".")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _hparam(value: Any) -> bool | int | float | str:
    """TensorBoard takes numbers, booleans and strings: lists become their text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


def _settings_text(config: dict[str, Any]) -> str:
    """The settings as a markdown table for TensorBoard's text tab."""
    rows = [f"| {k} | {json.dumps(v)} |" for k, v in sorted(config.items())]
    return "\n".join(["| setting | value |", "|---|---|", *rows])


@contextlib.contextmanager
def tensorboard_events(folder: str, on_event: EventCallback) -> Iterator[EventCallback]:
    """`on_event`, and TensorBoard's sink after it when `folder` is given (closed at the end)."""
    if not folder:
        yield on_event
        return
    sink = TensorBoardSink(folder)

    def both(event: Event) -> None:
        on_event(event)
        sink(event)

    try:
        yield both
    finally:
        sink.close()

"""What a checkpoint says about itself, for choosing one: model, data, epoch, accuracy, and
whether training can resume from it.

Front ends use this to fill a sweep's data fields from the checkpoint it prunes (a synthetic or
image-folder checkpoint is evaluated on the data it was trained on) and to list only the
checkpoints a resume can continue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.checkpoints.io import Checkpoint, read_checkpoint
from engine.errors import CheckpointError

# the config keys that say which data a checkpoint was trained on (a sweep evaluates on them)
DATA_KEYS = ("dataset", "data_dir", "normalization", "image_size")


@dataclass(frozen=True)
class CheckpointInfo:
    path: str
    model: str | None = None
    epoch: int | None = None  # epochs finished
    epochs: int | None = None  # epochs the run was asked for
    accuracy: float | None = None  # test accuracy % at `epoch`, when recorded
    data: dict[str, Any] = field(default_factory=dict)  # DATA_KEYS the checkpoint records
    resumable: bool = False  # optimizer, scheduler and position saved: training can go on
    error: str = ""  # why it cannot be read, when it cannot

    @property
    def finished(self) -> bool:
        """Every epoch asked for is done: resuming needs more epochs to do anything."""
        return self.epoch is not None and self.epochs is not None and self.epoch >= self.epochs

    def describe(self) -> str:
        """One line: `resnet20 · synthetic · epoch 2/2 · 94.20%`."""
        if self.error:
            return f"cannot read it · {self.error}"
        parts = [self.model or "model ?"]
        if self.data.get("dataset"):
            parts.append(str(self.data["dataset"]))
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch}" + (f"/{self.epochs}" if self.epochs else ""))
        if self.accuracy is not None:
            parts.append(f"{self.accuracy:.2f}%")
        if not self.resumable:
            parts.append("weights only")
        elif self.finished:
            parts.append("finished")
        return " · ".join(parts)


def recorded_data(checkpoint: Checkpoint) -> dict[str, Any]:
    """The DATA_KEYS a checkpoint records (its training config's, and the normalisation stored
    beside the weights); empty for files from other tools."""
    extra = checkpoint.extra
    config = extra.get("config") if isinstance(extra.get("config"), dict) else {}
    data = {k: config[k] for k in DATA_KEYS if config.get(k) not in (None, "")}
    if checkpoint.normalization and "normalization" not in data:
        data["normalization"] = checkpoint.normalization
    return data


def checkpoint_info(path: str | Path) -> CheckpointInfo:
    """Read `path`'s metadata (the weights are loaded, then dropped); never raises for a bad
    file: `error` says what is wrong instead."""
    try:
        checkpoint = read_checkpoint(path)
    except CheckpointError as exc:
        return CheckpointInfo(str(path), error=str(exc))
    extra = checkpoint.extra
    config = extra.get("config") if isinstance(extra.get("config"), dict) else {}
    data = recorded_data(checkpoint)
    accuracy = extra.get("acc")
    history = extra.get("history")
    if accuracy is None and isinstance(history, list) and history:
        accuracy = history[-1].get("test_acc") if isinstance(history[-1], dict) else None
    epochs = config.get("epochs")
    return CheckpointInfo(
        path=str(path),
        model=checkpoint.model,
        epoch=checkpoint.epoch,
        epochs=epochs if isinstance(epochs, int) else None,
        accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
        data=data,
        resumable=all(k in extra for k in ("optimizer", "scheduler", "position")) and bool(config),
    )

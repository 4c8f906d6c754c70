"""The smallest real training run: resnet20 on synthetic data on the CPU, in a given folder."""

from __future__ import annotations

import time
from pathlib import Path

from engine.config import TrainConfig


def tiny_train_config(root: str | Path, **changes) -> TrainConfig:
    """Two epochs of 256 images (8 batches each); `changes` override any field."""
    root = Path(root)
    base = dict(
        model="resnet20",
        dataset="synthetic",
        train_subset=256,
        test_subset=64,
        epochs=2,
        batch_size=32,
        device="cpu",
        run_dir=str(root / "runs"),
        checkpoint_dir=str(root / "checkpoints"),
    )
    return TrainConfig(**{**base, **changes})


def next_second() -> None:
    """Runs are listed newest first by their start time, which has whole seconds, and a run's
    folder is named after it: a fixture that makes several runs starts each in a second of its
    own, so their order and their unique name prefixes are the ones they were made with."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.02)

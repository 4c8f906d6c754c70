"""The smallest real training run: resnet20 on synthetic data on the CPU, in a given folder."""

from __future__ import annotations

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

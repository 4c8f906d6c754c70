"""What one fine-tuning run does: prune a checkpoint once, then train with the masks fixed. Kept
apart from `engine.config` (which is at its size limit) and, like it, free of torch."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import DataOptions, SweepConfig, TrainConfig
from engine.errors import ConfigError
from engine.export.config import ExportConfig
from engine.options import option, same_as


@dataclass
class FinetuneConfig(DataOptions):
    """Prune a checkpoint once, then train it with the masks fixed (recovery)."""

    model: str = same_as(SweepConfig, "model")
    dataset: str = same_as(SweepConfig, "dataset")
    data_dir: str = same_as(SweepConfig, "data_dir")
    normalization: str = same_as(SweepConfig, "normalization")
    checkpoint: str = same_as(SweepConfig, "checkpoint")
    level: float = same_as(ExportConfig, "level", default=70.0)
    method: str = same_as(SweepConfig, "method")
    score: str = same_as(SweepConfig, "score")
    include_classifier: bool = same_as(SweepConfig, "include_classifier")
    min_density: float = same_as(SweepConfig, "min_density")
    epochs: int = same_as(TrainConfig, "epochs", default=1)
    batch_size: int = same_as(TrainConfig, "batch_size")
    lr: float = option(
        0.01,
        "initial learning rate (SGD), annealed to 0 by a per-step cosine",
        minimum=0.0,
        maximum=10.0,
        group="Training",
    )
    momentum: float = same_as(TrainConfig, "momentum")
    weight_decay: float = same_as(TrainConfig, "weight_decay")
    lr_rewind: bool = same_as(SweepConfig, "lr_rewind", group="Training")
    compile: bool = same_as(TrainConfig, "compile")
    sync_bn: bool = same_as(TrainConfig, "sync_bn")
    checkpoint_every: int = same_as(TrainConfig, "checkpoint_every", default=1)
    checkpoint_minutes: float = same_as(TrainConfig, "checkpoint_minutes")
    checkpoint_dir: str = same_as(TrainConfig, "checkpoint_dir")

    def problems(self) -> list[ConfigError]:
        found = super().problems()
        if not str(self.checkpoint).strip():
            found.append(ConfigError("checkpoint", "a checkpoint file is required"))
        if not str(self.checkpoint_dir).strip():
            found.append(ConfigError("checkpoint_dir", "must not be empty"))
        return found

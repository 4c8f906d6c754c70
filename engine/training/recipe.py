"""What a kind of training run adds to the shared loop of engine.training.train.

The base `Recipe` is plain training as the seed did it, with gradual pruning (engine.pruning.gradual) when
`prune_to` > 0; fine-tuning (engine.training.finetune) is another recipe. Every recipe gets the same
checkpoints, stop/resume, events, metrics and run folder from the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.config import TrainConfig
from engine.data.imageset import ImageSet
from engine.data.loader import BatchLoader
from engine.errors import CheckpointError
from engine.events import EventCallback, StopSignal
from engine.pruning.gradual import CubicSchedule, GradualPruning
from engine.pruning.pruner import measure_sparsity, prunable_layers
from engine.runs.record import folder_label
from engine.runtime.device import Placement


def checkpoint_name(config: TrainConfig, epoch: int | None = None) -> str:
    """The seed's naming: `cifar10_resnet50_ckpt_epoch60.pth`; a stopped run writes `..._stopped.pth`."""
    tag = f"epoch{epoch}" if epoch is not None else "stopped"
    return f"{config.dataset}_{folder_label(config.model)}_ckpt_{tag}.pth"


class Recipe:
    """What a kind of training run adds to the loop; this base is plain training (with gradual
    pruning when `config.prune_to` > 0). Fine-tuning (engine.training.finetune) is another recipe, so
    checkpoints, stop/resume, events, metrics and the run folder are the same code for both."""

    kind = "train"
    per_step_schedule = False  # step the scheduler after every batch instead of every epoch

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.gradual: GradualPruning | None = None
        self.model: nn.Module | None = None

    def scheduler(self, optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
        config = self.config
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.t_max, eta_min=config.eta_min
        )

    def bind(self, model: nn.Module, steps_per_epoch: int) -> None:
        """Called once the model is on its device and the epoch length is known."""
        self.model = model
        config = self.config
        if config.prune_to > 0:
            first, last = config.prune_epochs()
            schedule = CubicSchedule.for_epochs(
                config.prune_to, first, last, steps_per_epoch, config.prune_every
            )
            self.gradual = GradualPruning(model, schedule, config.prune_method)

    def begin(self, ctx: RunContext) -> bool:
        """A fresh run's first work before the first step; False = stopped meanwhile."""
        return True

    def after_step(self, step: int) -> None:
        if self.gradual is not None:
            self.gradual.after_step(step)

    def epoch_fields(self) -> dict[str, Any]:
        """Extra columns of an epoch's metrics (and EpochEnded event)."""
        return {"sparsity": self.sparsity()} if self.gradual is not None else {}

    def sparsity(self) -> float | None:
        if self.model is None:
            return None
        return measure_sparsity(self.model, prunable_layers(self.model)).percent

    def state(self) -> dict[str, Any]:
        """What a checkpoint must hold beyond the loop's own state."""
        return {"gradual": self.gradual.state()} if self.gradual is not None else {}

    def restore(self, extra: dict[str, Any], source: str) -> None:
        """Take back `state()` from a checkpoint's extra keys (after `bind`)."""
        if extra.get("kind", "train") != self.kind:
            raise CheckpointError(
                f"{source} is a {extra['kind']} checkpoint; resume it with prunelab {extra['kind']}"
            )
        if self.gradual is not None and extra.get("gradual"):
            self.gradual.load_state(extra["gradual"], source)

    def checkpoint_name(self, epoch: int | None) -> str:
        return checkpoint_name(self.config, epoch)

    def summary(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        """Extra fields of the run's summary (run.json) and result."""
        return {"sparsity": self.sparsity()} if self.gradual is not None else {}


@dataclass
class RunContext:
    """What a recipe's `begin` may use: the model on its device and the test batches."""

    model: nn.Module
    placement: Placement
    test_loader: BatchLoader
    on_event: EventCallback
    stop: StopSignal
    run_dir: Path
    train_data: ImageSet

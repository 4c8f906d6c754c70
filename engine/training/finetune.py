"""Masked fine-tuning: prune a trained checkpoint once, then let it recover with the mask fixed.

The pruned model trains with the training loop of engine.training.train (same checkpoints, stop/resume,
events, metrics.jsonl and run folder); this module only adds a recipe: load and prune the source
weights, hold the pruned weights at exactly 0 after every optimizer step (engine.pruning.masks), and
anneal the learning rate per step, by default cosine from `lr` to 0 over the fine-tuning steps,
or with `lr_rewind` the source's own schedule over its last epochs (Renda et al. 2020).
BatchNorm trains as usual. The result says what pruning cost and what fine-tuning won back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.checkpoints.io import Checkpoint, load_state, read_checkpoint
from engine.checkpoints.source import resolve_source
from engine.config import TrainConfig
from engine.errors import ConfigError, PrunelabError
from engine.events import EventCallback, Notice, StopSignal, no_events
from engine.measure.evaluate import evaluate
from engine.methods import pruning_label
from engine.pruning.masks import MaskSet
from engine.pruning.scores import ScoreInputs, make_score, training_batch
from engine.training.finetune_config import FinetuneConfig
from engine.training.train import Recipe, RunContext, TrainResult, run_training


class FunctionLR(torch.optim.lr_scheduler.LRScheduler):
    """The learning rate as a function of the step count (`last_epoch` counts steps here).

    The function is not part of the state dict, so checkpoints stay plain tensors and numbers."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr_at: Callable[[int], float]) -> None:
        self.lr_at = lr_at
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [self.lr_at(self.last_epoch) for _ in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_at")}


def cosine_to_zero(lr: float, total_steps: int) -> Callable[[int], float]:
    """lr at step 0, annealed by a half cosine to 0 at `total_steps`."""
    return lambda step: 0.5 * lr * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


@dataclass(frozen=True)
class Rewind:
    """The source's per-epoch CosineAnnealingLR, replayed from epoch index `first_epoch`."""

    lr: float
    eta_min: float
    t_max: int
    first_epoch: int

    def lr_at(self, steps_per_epoch: int) -> Callable[[int], float]:
        def at(step: int) -> float:
            epoch = self.first_epoch + step // steps_per_epoch
            cosine = 1.0 + math.cos(math.pi * epoch / self.t_max)
            return self.eta_min + (self.lr - self.eta_min) * cosine / 2.0

        return at

    @classmethod
    def of(cls, source: Checkpoint, epochs: int) -> Rewind:
        """The last `epochs` epochs of the schedule `source` was trained with."""
        saved = source.extra.get("config")
        if not isinstance(saved, dict) or source.epoch is None:
            raise ConfigError(
                "lr_rewind",
                f"{source.path} records no training schedule to rewind; leave out --lr-rewind",
            )
        trained = TrainConfig.from_dict(saved)
        return cls(trained.lr, trained.eta_min, trained.t_max, max(0, source.epoch - epochs))


@dataclass
class FinetuneResult(TrainResult):
    """A training result plus what pruning cost and fine-tuning recovered (top-1 %)."""

    level_percent: float = 0.0
    method: str = ""
    score: str = "l1"
    dense_accuracy: float | None = None
    oneshot_accuracy: float | None = None
    recovered_accuracy: float | None = None  # after the last epoch
    best_epoch: int | None = None
    pruned_weights: int = 0  # weights the mask holds at 0
    prunable_weights: int = 0

    def sentence(self) -> str:
        """'70% global: 91.2% dense, 38.5% one-shot, 89.9% after 1 epoch of fine-tuning'."""
        epochs = self.epochs_completed
        parts = [
            f"{self.level_percent:g}% {pruning_label(self.method, self.score)}:",
            f"{_pct(self.dense_accuracy)} dense,",
            f"{_pct(self.oneshot_accuracy)} one-shot,",
            f"{_pct(self.recovered_accuracy)} after {epochs} epoch{'s' * (epochs != 1)} "
            "of fine-tuning",
        ]
        return " ".join(parts)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


class FinetuneRecipe(Recipe):
    """Load and prune the source (a fresh run), keep the mask, anneal per step."""

    kind = "finetune"
    per_step_schedule = True

    def __init__(
        self, config: FinetuneConfig, source: Checkpoint | None, rewind: Rewind | None
    ) -> None:
        super().__init__(config)  # type: ignore[arg-type]
        self.config: FinetuneConfig = config  # type: ignore[assignment]
        self.source = source
        self.rewind = rewind
        self.masks: MaskSet | None = None
        self.dense_accuracy: float | None = None
        self.oneshot_accuracy: float | None = None

    def scheduler(self, optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
        if self.rewind is not None:
            return FunctionLR(optimizer, self.rewind.lr_at(steps_per_epoch))
        total = max(1, self.config.epochs * steps_per_epoch)
        return FunctionLR(optimizer, cosine_to_zero(self.config.lr, total))

    def bind(self, model: nn.Module, steps_per_epoch: int) -> None:
        self.model = model

    def begin(self, ctx: RunContext) -> bool:
        assert self.source is not None and self.model is not None
        config = self.config
        load_state(self.model, self.source, self.source.path)
        ctx.on_event(  # two test passes before the first batch: say what takes the time
            Notice(
                f"measuring the dense accuracy, then pruning {config.level:g}% "
                f"({pruning_label(config.method, config.score)}) and measuring it one-shot, "
                "before fine-tuning starts"
            )
        )
        dense = evaluate(self.model, ctx.test_loader, ctx.placement, stop=ctx.stop)
        if dense is None:
            return False
        self.dense_accuracy = dense.accuracy
        batch = lambda: training_batch(  # noqa: E731 - read only by a score that needs it
            config,
            config.batch_size,
            device=ctx.placement.device,
            channels_last=ctx.placement.channels_last,
        )
        self.masks = MaskSet.prune(
            self.model,
            config.level,
            config.method,
            config.include_classifier,
            config.min_density,
            score=make_score(config.score, ScoreInputs(config.seed, batch)),
        )
        oneshot = evaluate(self.model, ctx.test_loader, ctx.placement, stop=ctx.stop)
        if oneshot is None:
            return False
        self.oneshot_accuracy = oneshot.accuracy
        ctx.on_event(
            Notice(
                f"pruned {config.level:g}% ({pruning_label(config.method, config.score)}): "
                f"{dense.accuracy:.2f}% dense, "
                f"{oneshot.accuracy:.2f}% one-shot; fine-tuning {config.epochs} epoch(s) on "
                f"{len(ctx.train_data)} images"
            )
        )
        return True

    def after_step(self, step: int) -> None:
        if self.masks is not None:
            self.masks.apply()

    def epoch_fields(self) -> dict[str, Any]:
        return {"sparsity": self.sparsity()}

    def state(self) -> dict[str, Any]:
        assert self.masks is not None
        info = {"dense_accuracy": self.dense_accuracy, "oneshot_accuracy": self.oneshot_accuracy}
        if self.rewind is not None:
            info["rewind"] = dataclasses.asdict(self.rewind)
        return {"masks": self.masks.state(), "finetune": info}

    def restore(self, extra: dict[str, Any], source: str) -> None:
        super().restore(extra, source)
        assert self.model is not None
        if not extra.get("masks"):
            raise PrunelabError(f"{source} holds no pruning masks to fine-tune with")
        self.masks = MaskSet.from_state(self.model, extra["masks"], source)
        self.masks.apply()
        info = extra.get("finetune") or {}
        self.dense_accuracy = info.get("dense_accuracy")
        self.oneshot_accuracy = info.get("oneshot_accuracy")

    def checkpoint_name(self, epoch: int | None) -> str:
        """`<source file's stem>_ft<level><method>_ckpt_<epoch>.pth`: named after the file it
        fine-tunes, so two sources fine-tuned at one level never claim one file."""
        config = self.config
        tag = f"epoch{epoch}" if epoch is not None else "stopped"
        how = config.method if config.score == "l1" else f"{config.method}-{config.score}"
        stem = Path(config.checkpoint).name.removesuffix(".pth").removesuffix(".pt")
        return f"{stem}_ft{config.level:g}{how}_ckpt_{tag}.pth"

    def summary(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        accs = [h["test_acc"] for h in history]
        best = max(range(len(accs)), key=accs.__getitem__) if accs else None
        return {
            "level_percent": self.config.level,
            "method": self.config.method,
            "score": self.config.score,
            "dense_accuracy": self.dense_accuracy,
            "oneshot_accuracy": self.oneshot_accuracy,
            "recovered_accuracy": accs[-1] if accs else None,
            "best_epoch": history[best]["epoch"] if best is not None else None,
            "sparsity": self.sparsity(),
            "pruned_weights": sum(int(p.sum()) for p in self.masks.pruned) if self.masks else 0,
            "prunable_weights": sum(p.numel() for p in self.masks.pruned) if self.masks else 0,
        }


def finetune_resume_config(path: str | Path, **overrides: Any) -> FinetuneConfig:
    """The config a fine-tuning checkpoint was written with, updated by `overrides`."""
    checkpoint = read_checkpoint(path)
    if checkpoint.extra.get("kind") != "finetune":
        raise PrunelabError(
            f"{path} is not a fine-tuning checkpoint (prunelab finetune writes them)"
        )
    return FinetuneConfig.from_dict({**(checkpoint.extra.get("config") or {}), **overrides})


def finetune(
    config: FinetuneConfig,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    resume: str | Path | None = None,
) -> FinetuneResult:
    """Prune `config.checkpoint` to `config.level` and fine-tune it with the mask fixed; with
    `resume`, go on from a fine-tuning checkpoint (its mask, optimizer and position)."""
    config.validate()
    if resume is None:
        config, source = resolve_source(config, on_event)
        rewind = Rewind.of(source, config.epochs) if config.lr_rewind else None
    else:
        source = None
        saved = (read_checkpoint(resume).extra.get("finetune") or {}).get("rewind")
        rewind = Rewind(**saved) if saved else None
    recipe = FinetuneRecipe(config, source, rewind)
    trained = run_training(config, recipe, on_event, stop, resume)
    info = recipe.summary(trained.history)
    return FinetuneResult(
        **dataclasses.asdict(trained) | {"sparsity": info["sparsity"]},
        **{k: v for k, v in info.items() if k != "sparsity"},
    )

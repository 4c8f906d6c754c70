"""Recovery sweeps: each level is measured one-shot, then fine-tuned with its mask fixed.

A level's fine-tuning is a run of the training loop (engine.training.train.fit_model with the fine-tuning
recipe) inside the sweep's run folder, under `finetune/level-<L>/`: its metrics.jsonl, its
one-shot point (`oneshot.json`) and, if stopped, its resumable checkpoint, so a stopped sweep
resumes inside the level it was fine-tuning and loses at most one batch. Each level starts from
the dense weights, or with `cumulative` from the previous level's fine-tuned weights (iterative
magnitude pruning, re-ranked on those weights; the chain lives in `finetune/chain.pth`). Level 0
fine-tuned is the control: the dense model trained with the same recipe, so a level's recovery
is measured against what fine-tuning alone does.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, fields
from pathlib import Path

from engine.checkpoints.io import load_state, read_checkpoint
from engine.config import DataOptions, SweepConfig
from engine.data.sources import load_split
from engine.events import EventCallback, StopSignal
from engine.methods import mask_settings
from engine.pruning.masks import MaskSet
from engine.runs.record import read_json, write_json
from engine.sweep.answer import PointResult
from engine.sweep.setup import Evaluator, Setup
from engine.training.finetune import FinetuneRecipe, Rewind
from engine.training.finetune_config import FinetuneConfig
from engine.training.train import fit_model, training_loader

ONESHOT_FILE = "oneshot.json"
CHAIN_FILE = "chain.pth"


class Recovery:
    """Fine-tunes the sweep's model level by level; see the module docstring."""

    def __init__(self, setup: Setup, run_dir: Path, on_event: EventCallback, stop: StopSignal):
        self.setup, self.on_event, self.stop = setup, on_event, stop
        config: SweepConfig = setup.config
        self.config = config
        self.root = run_dir / "finetune"
        train_data = load_split(config, train=True)
        self.train_images = len(train_data)
        self.train_loader = training_loader(train_data, config, setup.placement)
        self.dense = {k: v.detach().clone() for k, v in setup.model.state_dict().items()}
        source = read_checkpoint(config.checkpoint) if config.lr_rewind else None
        self.rewind = Rewind.of(source, config.finetune_epochs) if source else None

    def folder(self, level: float) -> Path:
        return self.root / f"level-{level:g}"

    def point(
        self, level: float, evaluator: Evaluator, *, refined: bool = False
    ) -> PointResult | None:
        """The level's one-shot point with `accuracy_finetuned`; None when stopped (its state
        is on disk and the next run goes on from it)."""
        config, model = self.config, self.setup.model
        folder = self.folder(level)
        chained = config.cumulative and level > 0
        stopped = next(iter(sorted(folder.glob("*_stopped.pth"))), None)
        saved = folder / ONESHOT_FILE
        masks: MaskSet | None = None
        if stopped is not None and saved.is_file():
            point = PointResult(**read_json(saved))
        else:
            stopped = None
            if chained:
                self._load_chain()
                evaluator = Evaluator(self.setup, self.setup.pruner(), self.stop)
            point = evaluator.point(level, refined=refined)
            folder.mkdir(parents=True, exist_ok=True)
            write_json(saved, asdict(point))
            masks = MaskSet.from_pruner(evaluator.pruner)
        if level == 0 and not config.control:
            return point
        status, accuracy, checkpoint = self._finetune(level, masks, stopped)
        if status != "completed":
            return None
        point = dataclasses.replace(point, accuracy_finetuned=accuracy)
        for leftover in folder.glob("*_stopped.pth"):
            leftover.unlink()
        if chained and checkpoint:
            os.replace(checkpoint, self.root / CHAIN_FILE)  # the next level starts here
        else:
            if checkpoint:
                Path(checkpoint).unlink(missing_ok=True)
            model.load_state_dict(self.dense)  # every parameter and BatchNorm statistic
            evaluator.pruner.restore()
        return point

    def _finetune(
        self, level: float, masks: MaskSet | None, resume: Path | None
    ) -> tuple[str, float | None, str | None]:
        folder = self.folder(level)
        config = self._level_config(level, folder)
        recipe = FinetuneRecipe(config, None, self.rewind)
        recipe.masks = masks
        status, history, checkpoint = fit_model(
            config,
            recipe,
            self.setup.model,
            self.setup.placement,
            (self.train_loader, self.setup.test_loader),
            folder,
            self.on_event,
            self.stop,
            resume,
        )
        accuracy = history[-1]["test_acc"] if status == "completed" and history else None
        return status, accuracy, checkpoint

    def _level_config(self, level: float, folder: Path) -> FinetuneConfig:
        """The sweep's recovery options as one fine-tuning run's config (recorded with it)."""
        config = self.config
        shared = {f.name: getattr(config, f.name) for f in fields(DataOptions)}
        return FinetuneConfig(
            **{**shared, **mask_settings(config)},
            checkpoint=config.checkpoint,
            level=level,
            epochs=config.finetune_epochs,
            batch_size=config.batch_size,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            lr_rewind=config.lr_rewind,
            checkpoint_every=config.finetune_epochs,
            checkpoint_dir=str(folder),
        )

    def _load_chain(self) -> None:
        """The weights the next cumulative level starts from: the last fine-tuned level's,
        or the dense ones before the first."""
        chain = self.root / CHAIN_FILE
        if chain.is_file():
            load_state(self.setup.model, read_checkpoint(chain), str(chain))
        else:
            self.setup.model.load_state_dict(self.dense)

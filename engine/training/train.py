"""Training as the seed did it (SGD + CosineAnnealingLR per epoch), streaming events, resumable.

This module sets a training run up (data, model, optimizer, run folder under engine.runs.lifecycle's
`Run`, torchrun ranks) and hands it to the epoch loop (engine.training.loop). Every random choice of
an epoch depends on (seed, epoch) only; with the model, optimizer and scheduler states in the
checkpoint, a resumed run continues exactly where the stopped one left off, even mid-epoch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.checkpoints.io import check_finite, ignored_keys_notice, load_state, read_checkpoint
from engine.config import TrainConfig
from engine.data.imageset import ImageSet
from engine.data.loader import BatchLoader
from engine.data.sources import load_split
from engine.errors import PrunelabError
from engine.events import EventCallback, Notice, StopSignal, no_events
from engine.models.resnets import count_parameters
from engine.models.spec import build_model
from engine.runs.lifecycle import Run
from engine.runs.record import write_jsonl
from engine.runs.summaries import TrainSummary, summary_from_dict
from engine.runs.tensorboard import tensorboard_events
from engine.runtime.device import Placement, resolve_placement
from engine.runtime.distributed import (
    Group,
    SharedStop,
    describe_batch,
    rank_device,
    world_from_env,
)
from engine.training.loop import EpochLoop, make_sgd, move_optimizer_state, train_step
from engine.training.recipe import Recipe, RunContext
from engine.training.resume import Position, resume_config
from engine.training.resume import preflight as _preflight
from engine.training.resume import restore as _restore
from engine.training.run_checkpoints import RunCheckpoints

__all__ = ["TrainResult", "make_sgd", "resume_config", "run_training", "train", "train_step"]


@dataclass
class TrainResult:
    status: str  # completed | stopped | failed
    run_dir: str
    epochs_completed: int
    checkpoint: str | None
    final_test_acc: float | None
    best_test_acc: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    synthetic: bool = False
    sparsity: float | None = None  # measured percent of prunable weights at 0, when pruned
    train_images: int = 0  # images per epoch: what each epoch cost
    data: str = ""  # where they came from


def train(
    config: TrainConfig,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    resume: str | Path | None = None,
) -> TrainResult:
    """Train `config.model` on `config.dataset`; see the module docstring for the guarantees."""
    config.validate()
    return run_training(config, Recipe(config), on_event, stop, resume)


def run_training(
    config: Any,
    recipe: Recipe,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    resume: str | Path | None = None,
) -> TrainResult:
    """The training lifecycle shared by every recipe: data, model, optimizer, run folder, loop,
    failures mapped to one line. `config` has TrainConfig's training fields.

    Under torchrun every rank calls this: DDP over the ranks, each rank trains on its share of
    every global batch, rank 0 alone writes and reports (engine.runtime.distributed)."""
    world = world_from_env()
    placement = resolve_placement(config)
    placement = dataclasses.replace(placement, device=rank_device(placement.device, world))
    if config.sync_bn and world.distributed and placement.device.type != "cuda":
        raise PrunelabError("--sync-bn needs CUDA ranks (SyncBatchNorm runs on GPUs only)")
    group = Group(world, placement.device)
    events = tensorboard_events(config.tensorboard if world.writer else "", on_event)
    with events as on_event:
        run = Run(recipe.kind, on_event if world.writer else no_events, stop)
        try:
            return _run(config, recipe, run, resume, group, placement)
        finally:
            run.release()
            group.close()


def training_loader(
    data: ImageSet, config: Any, placement: Placement, part: tuple[int, int] = (0, 1)
) -> BatchLoader:
    """The one training loader: the seed's augmentation, shuffled by (seed, epoch), this rank's
    `part` of every global batch."""
    return BatchLoader(
        data,
        config.batch_size,
        device=placement.device,
        normalization=config.normalization,
        augment=True,
        shuffle=True,
        seed=config.seed,
        channels_last=placement.channels_last,
        part=part,
    )


@dataclass
class Loaders:
    """A training run's batches: `test` is this rank's share of every test batch (the counts are
    summed over ranks); `whole_test` the whole test set, for a recipe's own evaluations before
    training (e.g. the dense accuracy), the same loader on one rank."""

    train: BatchLoader
    test: BatchLoader
    whole_test: BatchLoader


def _loaders(config: Any, train_data, test_data, placement: Placement, world) -> Loaders:
    part = (world.rank, world.world_size)
    common = dict(
        device=placement.device,
        normalization=config.normalization,
        channels_last=placement.channels_last,
    )
    eval_batch = placement.eval_batch_size(config.eval_batch_size)
    test = BatchLoader(test_data, eval_batch * world.world_size, part=part, **common)
    whole = test if not world.distributed else BatchLoader(test_data, eval_batch, **common)
    return Loaders(training_loader(train_data, config, placement, part), test, whole)


@dataclass
class Start:
    """Where a training run starts: fresh, or restored from a checkpoint (`extra` is the
    recipe's saved state, `run_dir` the folder the checkpoint names)."""

    position: Position = field(default_factory=Position)
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path | None = None
    extra: dict[str, Any] | None = None


def _restore_into(config, model, optimizer, scheduler, resume, fused, world, on_event) -> Start:
    """The checkpoint's weights, optimizer, schedule and position, when resuming."""
    if resume is None:
        return Start()
    start = Start(*_restore(resume, config, model, optimizer, scheduler))
    position = start.position
    on_event(Notice(f"resuming {resume} at epoch {position.epoch}, batch {position.batch}"))
    for param_group in optimizer.param_groups:  # a saved group brings its run's kernel
        param_group["fused"], param_group["foreach"] = fused, None
    if not world.writer:  # rank 0 carries the epoch's sums so far; the ranks add theirs
        position.loss_sum, position.correct, position.seen = 0.0, 0, 0
    return start


def _run(config, recipe: Recipe, run: Run, resume, group: Group, placement) -> TrainResult:
    world, on_event, stop = group.world, run.on_event, run.stop
    torch.manual_seed(config.seed)
    train_data = load_split(config, train=True)
    test_data = load_split(config, train=False)
    _preflight(config)
    loaders = _loaders(config, train_data, test_data, placement, world)
    model = build_model(config.model, num_classes=len(train_data.classes))
    if getattr(config, "init", "") and resume is None:  # train's --init (not fine-tuning)
        _load_init(model, config, on_event)
    # On the device before the optimizer exists: CUDA's fused SGD checks where the weights are.
    model.to(placement.device, memory_format=placement.memory_format)
    optimizer, fused = make_sgd(model, config, placement.device)
    scheduler = recipe.scheduler(optimizer, len(loaders.train))
    start = _restore_into(config, model, optimizer, scheduler, resume, fused, world, on_event)
    model = _synced(model, config, world, placement)
    move_optimizer_state(optimizer, placement.device)
    recipe.bind(model, len(loaders.train))
    if start.extra is not None:
        recipe.restore(start.extra, str(resume))
    files = None
    if world.writer:
        opened = (resume, start.run_dir, start.position, world.world_size)
        files = _open_run(run, config, recipe, opened, placement, train_data)
    run_dir = run.follow(group.broadcast_object(str(run.dir)))
    if world.distributed:
        on_event(Notice(describe_batch(config.batch_size, config.lr, world)))
        stop = SharedStop(group, stop)
    history = start.history
    if history and world.writer:  # the checkpoint's history is the truth: no epoch twice
        write_jsonl(run_dir / "metrics.jsonl", history)
    run.start(parameters=count_parameters(model))
    loop: EpochLoop | None = None  # built once the recipe has begun (late-bound below)

    def last_checkpoint() -> str | None:
        return loop.last_checkpoint if loop is not None else None

    # a failed run keeps what the shared loop knows; the recipe's extras only when it ended well
    run.summarize = lambda: training_summary(recipe.kind, history, last_checkpoint())
    batch = config.batch_size
    with run.guard(oom_hint=f"at batch size {batch}; try --batch-size {max(1, batch // 2)}"):
        context = RunContext(
            model, placement, loaders.whole_test, on_event, stop, run_dir, train_data
        )
        if resume is None and not recipe.begin(context):
            status = "stopped"
        else:
            forward = _maybe_compile(model, config, loaders.test, placement, on_event)
            loop = EpochLoop(
                config, placement, model, forward, optimizer, scheduler, run_dir, recipe,
                on_event, stop=stop, files=files, record=run.record,
            )  # fmt: skip
            loop.distribute(group)
            status = loop.run(loaders.train, loaders.test, start.position, history)
        extra = recipe.summary(history)
        summary = training_summary(recipe.kind, history, last_checkpoint(), extra)
    run.finish(status, summary)
    return _result(status, run_dir, summary, history, train_data)


def _synced(model: nn.Module, config, world, placement: Placement) -> nn.Module:
    """With several ranks and --sync-bn: BatchNorm statistics over the global batch."""
    if not (config.sync_bn and world.distributed):
        return model
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model.to(placement.device, memory_format=placement.memory_format)


def _result(status, run_dir, summary: TrainSummary, history, train_data) -> TrainResult:
    return TrainResult(
        status=status,
        run_dir=str(run_dir),
        epochs_completed=summary.epochs_completed,
        checkpoint=summary.checkpoint,
        final_test_acc=summary.final_test_acc,
        best_test_acc=summary.best_test_acc,
        history=history,
        synthetic=train_data.synthetic,
        sparsity=summary.sparsity,
        train_images=len(train_data),
        data=train_data.source,
    )


def _open_run(run: Run, config, recipe, opened, placement, train_data) -> RunCheckpoints:
    """The run folder (resumed or new) under its writer lock, and its checkpoint files.

    A checkpoint name another run owns stops the run here, before anything is trained."""
    resume, run_dir, position, world_size = opened
    resuming = run_dir is not None and run_dir.is_dir()
    files = RunCheckpoints(config, recipe.checkpoint_name, "", None)

    def check(record) -> None:
        nonlocal files
        if not resuming:
            files.check_free(position.epoch, {})
            return
        files = RunCheckpoints(config, recipe.checkpoint_name, run_dir.name, record)
        if resume is not None:
            files.adopt(resume)  # it names this run's folder: its own file
        files.check_free(position.epoch, record.checkpoints)

    run.open(
        config.run_dir,
        model=config.model,
        config=config.to_dict(),
        device=placement.describe(),
        data=train_data.source,
        synthetic=train_data.synthetic,
        resume=run_dir if resuming else None,
        world_size=world_size,
        check=check,
    )
    if resuming:
        return files
    return RunCheckpoints(config, recipe.checkpoint_name, run.dir.name, run.record)


def training_summary(
    kind: str,
    history: list[dict[str, Any]],
    checkpoint: str | None,
    extra: dict[str, Any] | None = None,
) -> TrainSummary:
    """The typed summary of a training-loop run (train, finetune): the shared numbers plus the
    recipe's own (`extra`)."""
    accs = [h["test_acc"] for h in history]
    shared = {
        "epochs_completed": history[-1]["epoch"] if history else 0,
        "final_test_acc": accs[-1] if accs else None,
        "best_test_acc": max(accs) if accs else None,
        "checkpoint": checkpoint,
    }
    summary = summary_from_dict(kind, {**shared, **(extra or {})})
    assert isinstance(summary, TrainSummary), f"{kind} runs need a TrainSummary subclass"
    return summary


def _load_init(model: nn.Module, config: TrainConfig, on_event: EventCallback) -> None:
    """--init: the user's own weights, read as data (weights_only) and loaded strictly."""
    checkpoint = read_checkpoint(config.init)
    if not config.allow_nonfinite:
        check_finite(checkpoint.state_dict, config.init)
    ignored = load_state(model, checkpoint, config.init)
    if ignored:
        on_event(Notice(ignored_keys_notice(config.init, ignored)))
    on_event(Notice(f"starting from the weights in {config.init}"))


def fit_model(
    config: Any,
    recipe: Recipe,
    model: nn.Module,
    placement: Placement,
    loaders: tuple[BatchLoader, BatchLoader],
    folder: Path,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    resume: str | Path | None = None,
) -> tuple[str, list[dict[str, Any]], str | None]:
    """Train a model already on its device inside another run (a recovery sweep's level): the
    same optimizer, recipe and loop as `run_training`, with metrics.jsonl in `folder` and
    checkpoints in `config.checkpoint_dir`. Returns (status, history, last checkpoint)."""
    train_loader, test_loader = loaders
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = recipe.scheduler(optimizer, len(train_loader))
    recipe.bind(model, len(train_loader))
    position, history = Position(), []
    if resume is not None:
        position, history, _, extra = _restore(resume, config, model, optimizer, scheduler)
        move_optimizer_state(optimizer, placement.device)
        recipe.restore(extra, str(resume))
    loop = EpochLoop(
        config, placement, model, model, optimizer, scheduler, folder, recipe, on_event, stop=stop
    )
    status = loop.run(train_loader, test_loader, position, history)
    return status, history, loop.last_checkpoint


def _maybe_compile(model, config, test_loader, placement, on_event) -> nn.Module:
    """torch.compile when asked, kept only if it matches eager on one batch."""
    if not config.compile:
        return model
    compiled = torch.compile(model)
    images, _ = next(iter(test_loader))
    model.eval()
    with torch.no_grad(), placement.autocast():
        eager_out = model(images).float()
        compiled_out = compiled(images).float()
    model.train()
    tol = 1e-2 if placement.precision == "bf16" else 1e-3
    if not torch.allclose(eager_out, compiled_out, atol=tol, rtol=tol):
        on_event(Notice("torch.compile output differs from eager; training eagerly", "warning"))
        return model
    return compiled

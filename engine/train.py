"""Training as the seed did it (SGD + CosineAnnealingLR per epoch), streaming events, resumable.

The loop keeps the data on the device (engine.loader.BatchLoader), accumulates loss and accuracy
on the device, and reads values back only when it reports (throttled batch events, epoch ends),
so there is no `.item()` per step. Every random choice of an epoch depends on (seed, epoch) only;
with the model, optimizer and scheduler states in the checkpoint, a resumed run continues
exactly where the stopped one left off, even mid-epoch.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import TrainConfig
from engine.data import load_split
from engine.device import Placement, gpu_memory_mb, resolve_placement
from engine.distributed import (
    Group,
    SharedStop,
    World,
    describe_batch,
    fingerprint,
    rank_device,
    reduce_eval,
    world_from_env,
)
from engine.errors import PrunelabError
from engine.evaluate import evaluate
from engine.events import (
    BatchProgress,
    CheckpointSaved,
    EpochEnded,
    EventCallback,
    Notice,
    RunFinished,
    RunStarted,
    StopSignal,
    no_events,
    stop_requested,
)
from engine.loader import BatchLoader
from engine.models import build_model, count_parameters
from engine.recipe import Recipe, RunContext
from engine.run_checkpoints import RunCheckpoints
from engine.runfiles import RunFileError
from engine.runs import (
    RunRecord,
    WriterLock,
    append_jsonl,
    load_run,
    now_iso,
    start_run,
    write_jsonl,
)
from engine.train_resume import Position as _Position
from engine.train_resume import preflight as _preflight
from engine.train_resume import restore as _restore
from engine.train_resume import resume_config

__all__ = ["TrainResult", "resume_config", "run_training", "train"]
PROGRESS_INTERVAL_S = 0.25  # at most four batch events a second
now_s = time.monotonic  # the rolling checkpoint's clock (tests replace it)


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
    every global batch, rank 0 alone writes and reports (engine.distributed)."""
    world = world_from_env()
    placement = resolve_placement(config)
    placement = dataclasses.replace(placement, device=rank_device(placement.device, world))
    if config.sync_bn and world.distributed and placement.device.type != "cuda":
        raise PrunelabError("--sync-bn needs CUDA ranks (SyncBatchNorm runs on GPUs only)")
    group = Group(world, placement.device)
    on_event = on_event if world.writer else no_events
    try:
        return _run(config, recipe, on_event, stop, resume, group, placement)
    finally:
        group.close()


def _run(config, recipe: Recipe, on_event, stop, resume, group: Group, placement) -> TrainResult:
    world = group.world
    torch.manual_seed(config.seed)
    train_data = load_split(config, train=True)
    test_data = load_split(config, train=False)
    _preflight(config)
    part = (world.rank, world.world_size)
    train_loader = BatchLoader(
        train_data,
        config.batch_size,
        device=placement.device,
        normalization=config.normalization,
        augment=True,
        shuffle=True,
        seed=config.seed,
        channels_last=placement.channels_last,
        part=part,
    )
    loader_args = dict(
        device=placement.device,
        normalization=config.normalization,
        channels_last=placement.channels_last,
    )
    eval_batch = placement.eval_batch_size(config.eval_batch_size)
    # each rank tests its share of every batch and the counts are summed; a recipe's own
    # evaluations before training (e.g. the dense accuracy) see the whole test set on every rank
    test_loader = BatchLoader(test_data, eval_batch * world.world_size, part=part, **loader_args)
    whole_test = (
        test_loader if not world.distributed else BatchLoader(test_data, eval_batch, **loader_args)
    )

    model = build_model(config.model, num_classes=len(train_data.classes))
    # On the device before the optimizer exists: CUDA's fused SGD checks where the weights are.
    model.to(placement.device, memory_format=placement.memory_format)
    optimizer, fused = make_sgd(model, config, placement.device)
    scheduler = recipe.scheduler(optimizer, len(train_loader))
    position = _Position()
    history: list[dict[str, Any]] = []
    run_dir: Path | None = None
    extra: dict[str, Any] | None = None
    if resume is not None:
        position, history, run_dir, extra = _restore(resume, config, model, optimizer, scheduler)
        on_event(Notice(f"resuming {resume} at epoch {position.epoch}, batch {position.batch}"))
        for param_group in optimizer.param_groups:  # a saved group brings its run's kernel
            param_group["fused"], param_group["foreach"] = fused, None
        if not world.writer:  # rank 0 carries the epoch's sums so far; the ranks add theirs
            position.loss_sum, position.correct, position.seen = 0.0, 0, 0
    if config.sync_bn and world.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(placement.device, memory_format=placement.memory_format)
    _move_optimizer_state(optimizer, placement.device)
    recipe.bind(model, len(train_loader))
    if extra is not None:
        recipe.restore(extra, str(resume))

    record, lock = None, None
    if world.writer:
        run_dir, record, lock, files = _open_run(
            config, recipe, resume, run_dir, position, placement, train_data
        )
        record.world_size = world.world_size
    run_dir = Path(group.broadcast_object(str(run_dir)))
    if not world.writer:
        files = RunCheckpoints(config, recipe.checkpoint_name, run_dir.name, None)
    if world.distributed:
        on_event(Notice(describe_batch(config.batch_size, config.lr, world)))
        stop = SharedStop(group, stop)
    try:
        return _train_in(
            config, recipe, placement, model, optimizer, scheduler, position, history, resume,
            run_dir, record, files, train_data, (test_loader, whole_test), train_loader,
            on_event, stop, group,
        )  # fmt: skip
    finally:
        if lock is not None:
            lock.release()


def _open_run(config, recipe, resume, run_dir, position, placement, train_data):
    """The run folder (resumed or new) under its writer lock, and its checkpoint files.

    A checkpoint name another run owns stops the run here, before anything is trained."""
    files = RunCheckpoints(config, recipe.checkpoint_name, "", None)
    if run_dir is not None and run_dir.is_dir():
        lock = WriterLock(run_dir).acquire()
        try:
            record = load_run(run_dir)
            files = RunCheckpoints(config, recipe.checkpoint_name, run_dir.name, record)
            if resume is not None:
                files.adopt(resume)  # it names this run's folder: its own file
            files.check_free(position.epoch, record.checkpoints)
            record.status, record.config, record.reason = "running", config.to_dict(), ""
            record.pid, record.host = os.getpid(), socket.gethostname()
            record.save(run_dir)
        except BaseException:
            lock.release()
            raise
        return run_dir, record, lock, files
    files.check_free(position.epoch, {})
    run_dir, record = start_run(
        config.run_dir,
        recipe.kind,
        config.model,
        config.to_dict(),
        device=placement.describe(),
        data=train_data.source,
        synthetic=train_data.synthetic,
    )
    lock = WriterLock(run_dir).acquire()
    return (
        run_dir,
        record,
        lock,
        RunCheckpoints(config, recipe.checkpoint_name, run_dir.name, record),
    )


def _train_in(
    config, recipe, placement, model, optimizer, scheduler, position, history, resume,
    run_dir, record, files, train_data, test_loaders, train_loader, on_event, stop, group,
) -> TrainResult:  # fmt: skip
    test_loader, whole_test = test_loaders
    if history and group.world.writer:  # the checkpoint's history is the truth: no epoch twice
        write_jsonl(run_dir / "metrics.jsonl", history)
    on_event(
        RunStarted(
            kind=recipe.kind,  # type: ignore[arg-type]
            run_dir=str(run_dir),
            device=placement.describe(),
            model=config.model,
            parameters=count_parameters(model),
            config=config.to_dict(),
            synthetic=train_data.synthetic,
            world_size=group.world.world_size,
        )
    )
    finish = _Finisher(record, run_dir, recipe, history, on_event)
    loop = None
    try:
        context = RunContext(model, placement, whole_test, on_event, stop, run_dir, train_data)
        if resume is None and not recipe.begin(context):
            status = "stopped"
        else:
            forward = _maybe_compile(model, config, test_loader, placement, on_event)
            loop = _Loop(
                config, placement, model, forward, optimizer, scheduler, run_dir, recipe, on_event
            )
            loop.stop = stop
            loop.files, loop.record = files, record
            loop.distribute(group)
            status = loop.run(train_loader, test_loader, position, history)
    except torch.cuda.OutOfMemoryError:
        reason = (
            f"CUDA out of memory at batch size {config.batch_size}; "
            f"try --batch-size {max(1, config.batch_size // 2)}"
        )
        finish("failed", reason)
        raise PrunelabError(reason) from None
    except PrunelabError as exc:
        finish("failed", str(exc))
        raise
    except KeyboardInterrupt:
        finish("failed", "interrupted before a checkpoint could be written")
        raise
    except BaseException as exc:
        finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    accs = [h["test_acc"] for h in history]
    checkpoint = loop.last_checkpoint if loop is not None else None
    result = TrainResult(
        status=status,
        run_dir=str(run_dir),
        epochs_completed=history[-1]["epoch"] if history else 0,
        checkpoint=checkpoint,
        final_test_acc=accs[-1] if accs else None,
        best_test_acc=max(accs) if accs else None,
        history=history,
        synthetic=train_data.synthetic,
        sparsity=recipe.summary(history).get("sparsity"),
        train_images=len(train_data),
        data=train_data.source,
    )
    finish(status, "", checkpoint=checkpoint)
    return result


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
    position, history = _Position(), []
    if resume is not None:
        position, history, _, extra = _restore(resume, config, model, optimizer, scheduler)
        _move_optimizer_state(optimizer, placement.device)
        recipe.restore(extra, str(resume))
    loop = _Loop(config, placement, model, model, optimizer, scheduler, folder, recipe, on_event)
    loop.stop = stop
    status = loop.run(train_loader, test_loader, position, history)
    return status, history, loop.last_checkpoint


class _Loop:
    """The epoch loop; kept in a class so stop-and-save sees the same state as the loop."""

    def __init__(
        self, config, placement, model, forward, optimizer, scheduler, run_dir, recipe, on_event
    ):
        self.config: TrainConfig = config
        self.placement: Placement = placement
        self.model: nn.Module = model
        self.forward: nn.Module = forward
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.run_dir: Path = run_dir
        self.recipe: Recipe = recipe
        self.on_event: EventCallback = on_event
        self.stop: StopSignal = None
        self.files = RunCheckpoints(config, recipe.checkpoint_name, run_dir.name, None)
        self.record: RunRecord | None = None
        self.rolling_s = getattr(config, "checkpoint_minutes", 0.0) * 60.0
        self.saved_at = now_s()
        self.train_forward: nn.Module = forward  # DDP around `forward` when distributed
        self.world = World()
        self.group: Group | None = None
        self.last_checkpoint: str | None = None

    def distribute(self, group: Group) -> None:
        """Train through DDP; the stop (a SharedStop) is decided together at every step."""
        self.world, self.group = group.world, group
        if not self.world.distributed:
            return
        device = self.placement.device
        self.train_forward = nn.parallel.DistributedDataParallel(
            self.forward, device_ids=[device.index] if device.type == "cuda" else None
        )
        if self.rolling_s:  # a time-based save would need the ranks to agree on the clock
            self.rolling_s = 0.0
            self.on_event(Notice("--checkpoint-minutes is off with several ranks", "warning"))

    def _stop_now(self, images_per_s: float) -> tuple[bool, tuple[float, ...]]:
        """Whether to stop before this step, and every rank's images/s (distributed)."""
        if not isinstance(self.stop, SharedStop):
            return stop_requested(self.stop), ()
        table = self.stop.sync(images_per_s)
        return self.stop(), tuple(float(v) for v in table[:, 1])

    def run(self, train_loader, test_loader, position: _Position, history) -> str:
        config = self.config
        device = self.placement.device
        ranks = self.world.world_size
        step = (position.epoch - 1) * len(train_loader) + position.batch
        for epoch in range(position.epoch, config.epochs + 1):
            start_batch = position.batch if epoch == position.epoch else 0
            lr = self.optimizer.param_groups[0]["lr"]
            loss_sum = torch.tensor(position.loss_sum if start_batch else 0.0, device=device)
            correct = torch.tensor(position.correct if start_batch else 0, device=device)
            seen = position.seen if start_batch else 0
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            train_loader.set_epoch(epoch)
            self.model.train()
            started = last_report = time.perf_counter()
            report_loss = torch.zeros((), device=device)
            report_batches = 0
            batches = len(train_loader)
            rate = 0.0
            for batch, (images, labels) in enumerate(
                itertools.islice(train_loader, start_batch, None), start=start_batch + 1
            ):
                stopping, rates = self._stop_now(rate)
                if stopping:
                    done = _Position(epoch, batch - 1, float(loss_sum), int(correct), seen)
                    self._save(self._summed(done), history, stopped=True)
                    return "stopped"
                # DDP averages the ranks' gradients, so each rank's loss is its share of the
                # global-batch mean (a last global batch smaller than the ranks is skipped)
                total = min(
                    config.batch_size, train_loader.num_images - (batch - 1) * config.batch_size
                )
                if total < ranks:
                    continue
                with self.placement.autocast():
                    logits = self.train_forward(images)
                    if ranks == 1:
                        loss = F.cross_entropy(logits.float(), labels)
                        images_loss = loss.detach() * labels.numel()
                    else:
                        summed = F.cross_entropy(logits.float(), labels, reduction="sum")
                        loss, images_loss = summed * (ranks / total), summed.detach()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if self.recipe.per_step_schedule:
                    self.scheduler.step()
                step += 1
                self.recipe.after_step(step)
                loss_sum += images_loss
                report_loss += images_loss / max(labels.numel(), 1)
                report_batches += 1
                correct += (logits.argmax(dim=1) == labels).sum()
                seen += labels.numel()
                now = time.perf_counter()
                rate = (seen - (position.seen if start_batch else 0)) / max(now - started, 1e-9)
                if now - last_report >= PROGRESS_INTERVAL_S or batch == batches:
                    self.on_event(
                        BatchProgress(
                            epoch=epoch,
                            epochs=config.epochs,
                            batch=batch,
                            batches=batches,
                            loss=float(report_loss) / report_batches,
                            images_per_s=rate * ranks,
                            step=step,
                            ranks=rates,
                        )
                    )
                    report_loss.zero_()
                    report_batches, last_report = 0, now
                if self.rolling_s and now_s() - self.saved_at >= self.rolling_s and batch < batches:
                    done = _Position(epoch, batch, float(loss_sum), int(correct), seen)
                    self._save(done, history, stopped=False, rolling=True)
            train_seconds = time.perf_counter() - started
            ended = self._summed(_Position(epoch, batches, float(loss_sum), int(correct), seen))
            trained_images = ended.seen - (position.seen if start_batch else 0) * ranks
            tested = self._evaluate(test_loader)
            if tested is None:  # stopped during the test pass: resuming re-runs only the test pass
                self._save(ended, history, stopped=True)
                return "stopped"
            seconds = time.perf_counter() - started
            if not self.recipe.per_step_schedule:
                self.scheduler.step()
            entry = {
                "epoch": epoch,
                "train_loss": ended.loss_sum / max(ended.seen, 1),
                "train_acc": 100.0 * ended.correct / max(ended.seen, 1),
                "test_loss": tested.loss,
                "test_acc": tested.accuracy,
                "lr": lr,
                "seconds": seconds,
                "images_per_s": trained_images / max(train_seconds, 1e-9),
                "gpu_memory_mb": gpu_memory_mb(device),
                **self.recipe.epoch_fields(),
            }
            history.append(entry)
            # The checkpoint first: a full run folder must not cost the epoch it just trained.
            due = epoch % config.checkpoint_every == 0 or epoch == config.epochs
            if due:
                self._save(_Position(epoch + 1), history, stopped=False)
            try:
                if self.world.writer:
                    append_jsonl(self.run_dir / "metrics.jsonl", entry)
            except RunFileError:
                if not due:  # keep the epoch in this run's own rolling file, then fail
                    self._save(_Position(epoch + 1), history, stopped=False, rolling=True)
                raise
            self.on_event(EpochEnded(epochs=config.epochs, **entry))
        return "completed"

    def _summed(self, position: _Position) -> _Position:
        """The epoch's loss/accuracy sums over all ranks (the position itself is shared)."""
        if self.group is None or not self.world.distributed:
            return position
        sums = torch.tensor(
            [position.loss_sum, position.correct, position.seen],
            dtype=torch.float64,
            device=self.placement.device,
        )
        loss_sum, correct, seen = self.group.sum_(sums).tolist()
        return _Position(position.epoch, position.batch, loss_sum, round(correct), round(seen))

    def _evaluate(self, test_loader):
        """The test pass on one model: rank 0's BatchNorm statistics, every rank's share summed."""
        if self.group is None or not self.world.distributed:
            return evaluate(self.forward, test_loader, self.placement, stop=self.stop)
        self.group.broadcast_buffers(self.model)
        tested = evaluate(self.forward, test_loader, self.placement, stop=self.stop)
        return None if tested is None else reduce_eval(tested, self.group)

    def _save(self, position: _Position, history, *, stopped: bool, rolling: bool = False) -> None:
        """Write a resumable checkpoint the seed's code can also read (`net`, `epoch`).

        `rolling` writes the run's own rolling file (--checkpoint-minutes); any other save
        supersedes it. The hash of what was written goes into run.json. Every rank comes here
        together: they compare fingerprints of their weights (they must be equal) and rank 0
        writes them into the checkpoint with the world size."""
        completed = position.epoch - 1
        if self.group is not None:
            self.group.broadcast_buffers(self.model)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        ranks: dict[str, Any] = {"world_size": self.world.world_size}
        if self.group is not None and self.world.distributed:
            prints = self.group.gather_objects(fingerprint(state))
            if len(set(prints)) != 1:
                raise PrunelabError(f"the ranks' weights differ at epoch {completed}: {prints}")
            ranks["fingerprints"] = prints
        if not self.world.writer:
            self.last_checkpoint = str(self.files.path(None if stopped else completed))
            return
        payload = {
            "net": state,
            "epoch": completed,
            "acc": history[-1]["test_acc"] if history else None,
            "model": self.config.model,
            "normalization": self.config.normalization,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
            "position": position.__dict__,
            "config": self.config.to_dict(),
            "history": history,
            "run_dir": str(self.run_dir),
            "kind": self.recipe.kind,
            "ranks": ranks,
            **self.recipe.state(),
        }
        if rolling:
            path = self.files.save_rolling(payload)
        else:
            target = self.files.path(None if stopped else completed)
            warn = lambda text: self.on_event(Notice(text, "warning"))  # noqa: E731
            path = self.files.save(target, payload, warn)
            self.files.drop_rolling()
        self.saved_at = now_s()
        if self.record is not None:
            self.record.save(self.run_dir)
        self.last_checkpoint = str(path)
        self.on_event(CheckpointSaved(path=str(path), epoch=completed))


def make_sgd(
    model: nn.Module, config: Any, device: torch.device
) -> tuple[torch.optim.SGD, bool | None]:
    """The seed's SGD (same hyper-parameters, same update). On CUDA the fused kernel, one launch
    for every parameter instead of several per tensor (a ResNet50 step at batch 128 is
    launch-bound), where this torch has it; elsewhere torch's default (foreach on CUDA, the
    per-tensor loop on CPU). Returns the optimizer and its `fused` setting."""
    params = list(model.parameters())
    kwargs = dict(lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if device.type == "cuda":
        try:
            return torch.optim.SGD(params, **kwargs, fused=True), True
        except (TypeError, RuntimeError, ValueError):  # an older torch, or unsupported parameters
            pass
    return torch.optim.SGD(params, **kwargs), None


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value):
                state[key] = value.to(device)


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


class _Finisher:
    """Records the run's end in run.json and announces it (every path out of a run)."""

    def __init__(self, record, run_dir, recipe: Recipe, history, on_event) -> None:
        self.record, self.run_dir, self.recipe = record, run_dir, recipe
        self.history, self.on_event = history, on_event

    def __call__(self, status: str, reason: str, checkpoint: str | None = None) -> None:
        record = self.record
        if record is None:  # a rank other than 0 of a distributed run: nothing to record
            return
        accs = [h["test_acc"] for h in self.history]
        record.status, record.reason, record.finished = status, reason, now_iso()
        summary = {
            "epochs_completed": self.history[-1]["epoch"] if self.history else 0,
            "final_test_acc": accs[-1] if accs else None,
            "best_test_acc": max(accs) if accs else None,
            "checkpoint": checkpoint,
        }
        if status != "failed":
            summary.update(self.recipe.summary(self.history))
        record.summary = summary
        try:
            record.save(self.run_dir)
        except RunFileError:
            if status != "failed":
                raise  # on a failure the original error says more than this one
        self.on_event(
            RunFinished(
                kind=self.recipe.kind,  # type: ignore[arg-type]
                status=status,  # type: ignore[arg-type]
                run_dir=str(self.run_dir),
                reason=reason,
                summary=record.summary,
            )
        )

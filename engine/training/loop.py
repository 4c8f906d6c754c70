"""The training epoch loop shared by every training run (engine.training.train) and a recovery sweep's
fine-tuning (engine.sweep.recovery), and the one SGD step it takes (`train_step`, which the benchmarks
import instead of copying).

The loop keeps loss and accuracy on the device and reads them back only when it reports
(throttled batch events, epoch ends), so there is no `.item()` per step. It saves resumable
checkpoints at epoch ends, on a stop (mid-epoch too) and on the rolling clock
(--checkpoint-minutes); under torchrun every rank runs it and rank 0 writes.
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import TrainConfig
from engine.errors import PrunelabError
from engine.events import (
    BatchProgress,
    CheckpointSaved,
    EpochEnded,
    EventCallback,
    Notice,
    StopSignal,
    stop_requested,
)
from engine.measure.evaluate import evaluate, reduce_eval
from engine.runs.files import RunFileError
from engine.runs.record import RunRecord, append_jsonl
from engine.runtime.device import Placement, gpu_memory_mb
from engine.runtime.distributed import Group, SharedStop, World, fingerprint
from engine.training.recipe import Recipe
from engine.training.resume import Position
from engine.training.run_checkpoints import RunCheckpoints

PROGRESS_INTERVAL_S = 0.25  # at most four batch events a second
now_s = time.monotonic  # the rolling checkpoint's clock (tests replace it)


def train_step(
    forward: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    placement: Placement,
    *,
    share: tuple[int, int] = (1, 0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step as the seed took it: forward (under the placement's autocast), cross-entropy
    in fp32, backward, optimizer step. Returns the logits and the batch's summed loss, both left
    on the device (no `.item()`).

    `share` = (ranks, global batch size) under DDP: DDP averages the ranks' gradients, so each
    rank's loss is its share of the global-batch mean."""
    ranks, total = share
    with placement.autocast():
        logits = forward(images)
        if ranks == 1:
            loss = F.cross_entropy(logits.float(), labels)
            images_loss = loss.detach() * labels.numel()
        else:
            summed = F.cross_entropy(logits.float(), labels, reduction="sum")
            loss, images_loss = summed * (ranks / total), summed.detach()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return logits, images_loss


@dataclass
class EpochTally:
    """One epoch's running sums, kept on the device and read back only when reported. A resumed
    epoch starts from the position's sums; `resumed_seen` is what it had seen before."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int
    resumed_seen: int
    lr: float  # at the epoch's start: what the epoch row reports
    batches: int
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def at(cls, start: Position, device: torch.device, lr: float, batches: int) -> EpochTally:
        loss_sum = torch.tensor(start.loss_sum, device=device)
        correct = torch.tensor(start.correct, device=device)
        return cls(loss_sum, correct, start.seen, start.seen, lr, batches)

    def add(self, logits: torch.Tensor, labels: torch.Tensor, images_loss: torch.Tensor) -> None:
        self.loss_sum += images_loss
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.seen += labels.numel()

    def position(self, epoch: int, batch: int) -> Position:
        return Position(epoch, batch, float(self.loss_sum), int(self.correct), self.seen)

    def images_per_s(self, now: float) -> float:
        """This process's training rate since the epoch (or its resumed part) began."""
        return (self.seen - self.resumed_seen) / max(now - self.started, 1e-9)


class ProgressThrottle:
    """Batch events at most every PROGRESS_INTERVAL_S and at an epoch's last batch. Throttled
    here, not in the event sink: the loss is averaged on the device over the batches since the
    last event and read back only when one is sent (a sink would need a host sync per batch)."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.batches = 0
        self.last = time.perf_counter()

    def add(self, images_loss: torch.Tensor, images: int) -> None:
        self.loss += images_loss / max(images, 1)
        self.batches += 1

    def due(self, now: float, last_batch: bool) -> bool:
        return now - self.last >= PROGRESS_INTERVAL_S or last_batch

    def take(self, now: float) -> float:
        """The mean batch loss since the last event; starts the next interval."""
        loss = float(self.loss) / self.batches
        self.loss.zero_()
        self.batches, self.last = 0, now
        return loss


@dataclass
class CheckpointPolicy:
    """When the loop saves: every `checkpoint_every` epochs and the last one, and (rolling, not
    at an epoch's end) every `rolling_s` seconds of the clock `now_s`."""

    every: int
    epochs: int
    rolling_s: float
    saved_at: float = field(default_factory=lambda: now_s())

    def epoch_due(self, epoch: int) -> bool:
        return epoch % self.every == 0 or epoch == self.epochs

    def rolling_due(self, mid_epoch: bool) -> bool:
        return bool(self.rolling_s) and mid_epoch and now_s() - self.saved_at >= self.rolling_s

    def saved(self) -> None:
        self.saved_at = now_s()


class EpochLoop:
    """The epoch loop; kept in a class so stop-and-save sees the same state as the loop."""

    def __init__(
        self,
        config: TrainConfig,
        placement: Placement,
        model: nn.Module,
        forward: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        run_dir: Path,
        recipe: Recipe,
        on_event: EventCallback,
        *,
        stop: StopSignal = None,
        files: RunCheckpoints | None = None,
        record: RunRecord | None = None,
    ) -> None:
        self.config = config
        self.placement = placement
        self.model = model
        self.forward = forward
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.run_dir = run_dir
        self.recipe = recipe
        self.on_event = on_event
        self.stop = stop
        self.files = files or RunCheckpoints(config, recipe.checkpoint_name, run_dir.name, None)
        self.record = record
        self.policy = CheckpointPolicy(
            config.checkpoint_every, config.epochs, getattr(config, "checkpoint_minutes", 0.0) * 60
        )
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
        if self.policy.rolling_s:  # a time-based save would need the ranks to agree on the clock
            self.policy.rolling_s = 0.0
            self.on_event(Notice("--checkpoint-minutes is off with several ranks", "warning"))

    def _stop_now(self, images_per_s: float) -> tuple[bool, tuple[float, ...]]:
        """Whether to stop before this step, and every rank's images/s (distributed)."""
        if not isinstance(self.stop, SharedStop):
            return stop_requested(self.stop), ()
        table = self.stop.sync(images_per_s)
        return self.stop(), tuple(float(v) for v in table[:, 1])

    def run(self, train_loader, test_loader, position: Position, history: list[dict]) -> str:
        """Train from `position` to the last epoch: 'completed', or 'stopped' with a resumable
        checkpoint written."""
        step = (position.epoch - 1) * len(train_loader) + position.batch
        for epoch in range(position.epoch, self.config.epochs + 1):
            resumed = epoch == position.epoch and position.batch > 0
            start = position if resumed else Position(epoch)
            tally, step = self._train_epoch(train_loader, epoch, start, step, history)
            if tally is None or not self._end_epoch(epoch, tally, test_loader, history):
                return "stopped"
        return "completed"

    def _train_epoch(
        self, loader, epoch: int, start: Position, step: int, history: list[dict]
    ) -> tuple[EpochTally | None, int]:
        """One epoch's batches from `start`; None when stopped (after saving where it stood)."""
        device = self.placement.device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        loader.set_epoch(epoch)
        self.model.train()
        batches, rate = len(loader), 0.0
        lr = self.optimizer.param_groups[0]["lr"]
        tally, throttle = EpochTally.at(start, device, lr, batches), ProgressThrottle(device)
        batched = itertools.islice(loader, start.batch, None)
        for batch, (images, labels) in enumerate(batched, start=start.batch + 1):
            stopping, rates = self._stop_now(rate)
            if stopping:
                self._save(self._summed(tally.position(epoch, batch - 1)), history, stopped=True)
                return None, step
            stepped = self._step(loader, batch, images, labels)
            if stepped is None:
                continue
            step += 1
            self.recipe.after_step(step)
            tally.add(labels=labels, logits=stepped[0], images_loss=stepped[1])
            throttle.add(stepped[1], labels.numel())
            now = time.perf_counter()
            rate = tally.images_per_s(now)
            if throttle.due(now, batch == batches):
                progress = BatchProgress(
                    epoch=epoch, epochs=self.config.epochs, batch=batch, batches=batches,
                    loss=throttle.take(now), images_per_s=rate * self.world.world_size,
                    step=step, ranks=rates,
                )  # fmt: skip
                self.on_event(progress)
            if self.policy.rolling_due(mid_epoch=batch < batches):
                self._save(tally.position(epoch, batch), history, stopped=False, rolling=True)
        return tally, step

    def _step(self, loader, batch: int, images, labels) -> tuple[torch.Tensor, torch.Tensor] | None:
        """One optimizer step (and the per-step schedule); None for a last global batch smaller
        than the ranks, which is skipped. DDP averages the ranks' gradients, so each rank's loss
        is its share of the global-batch mean."""
        size, ranks = self.config.batch_size, self.world.world_size
        total = min(size, loader.num_images - (batch - 1) * size)
        if total < ranks:
            return None
        stepped = train_step(
            self.train_forward, self.optimizer, images, labels, self.placement,
            share=(ranks, total),
        )  # fmt: skip
        if self.recipe.per_step_schedule:
            self.scheduler.step()
        return stepped

    def _end_epoch(self, epoch: int, tally: EpochTally, test_loader, history: list[dict]) -> bool:
        """Test, step the per-epoch schedule, record the epoch, save when due, report. False
        when stopped during the test pass (resuming re-runs only the test pass)."""
        train_seconds = time.perf_counter() - tally.started
        ended = self._summed(tally.position(epoch, tally.batches))
        trained_images = ended.seen - tally.resumed_seen * self.world.world_size
        tested = self._evaluate(test_loader)
        if tested is None:
            self._save(ended, history, stopped=True)
            return False
        seconds = time.perf_counter() - tally.started
        self._step_epoch_schedule()
        entry = {
            "epoch": epoch,
            "train_loss": ended.loss_sum / max(ended.seen, 1),
            "train_acc": 100.0 * ended.correct / max(ended.seen, 1),
            "test_loss": tested.loss,
            "test_acc": tested.accuracy,
            "lr": tally.lr,
            "seconds": seconds,
            "images_per_s": trained_images / max(train_seconds, 1e-9),
            "gpu_memory_mb": gpu_memory_mb(self.placement.device),
            **self.recipe.epoch_fields(),
        }
        history.append(entry)
        self._record_epoch(epoch, entry, history)
        self.on_event(EpochEnded(epochs=self.config.epochs, **entry))
        return True

    def _step_epoch_schedule(self) -> None:
        if self.recipe.per_step_schedule:
            return
        with warnings.catch_warnings():
            # A resumed epoch whose batches all ran before the stop (only its test pass was
            # left) steps the restored schedule with no optimizer step in this process:
            # torch's per-process order check would warn, wrongly.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler")
            self.scheduler.step()

    def _record_epoch(self, epoch: int, entry: dict, history: list[dict]) -> None:
        """The checkpoint first (when due), then the metrics line: a full run folder must not
        cost the epoch it just trained."""
        due = self.policy.epoch_due(epoch)
        if due:
            self._save(Position(epoch + 1), history, stopped=False)
        try:
            if self.world.writer:
                append_jsonl(self.run_dir / "metrics.jsonl", entry)
        except RunFileError:
            if not due:  # keep the epoch in this run's own rolling file, then fail
                self._save(Position(epoch + 1), history, stopped=False, rolling=True)
            raise

    def _summed(self, position: Position) -> Position:
        """The epoch's loss/accuracy sums over all ranks (the position itself is shared)."""
        if self.group is None or not self.world.distributed:
            return position
        sums = torch.tensor(
            [position.loss_sum, position.correct, position.seen],
            dtype=torch.float64,
            device=self.placement.device,
        )
        loss_sum, correct, seen = self.group.sum_(sums).tolist()
        return Position(position.epoch, position.batch, loss_sum, round(correct), round(seen))

    def _evaluate(self, test_loader):
        """The test pass on one model: rank 0's BatchNorm statistics, every rank's share summed."""
        if self.group is None or not self.world.distributed:
            return evaluate(self.forward, test_loader, self.placement, stop=self.stop)
        self.group.broadcast_buffers(self.model)
        tested = evaluate(self.forward, test_loader, self.placement, stop=self.stop)
        return None if tested is None else reduce_eval(tested, self.group)

    def _save(self, position: Position, history, *, stopped: bool, rolling: bool = False) -> None:
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
        self.policy.saved()
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


def move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value):
                state[key] = value.to(device)

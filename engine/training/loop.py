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
from engine.measure.evaluate import evaluate
from engine.runs.files import RunFileError
from engine.runs.record import RunRecord, append_jsonl
from engine.runtime.device import Placement, gpu_memory_mb
from engine.runtime.distributed import Group, SharedStop, World, fingerprint, reduce_eval
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


class EpochLoop:
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

    def run(self, train_loader, test_loader, position: Position, history) -> str:
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
                    done = Position(epoch, batch - 1, float(loss_sum), int(correct), seen)
                    self._save(self._summed(done), history, stopped=True)
                    return "stopped"
                # DDP averages the ranks' gradients, so each rank's loss is its share of the
                # global-batch mean (a last global batch smaller than the ranks is skipped)
                total = min(
                    config.batch_size, train_loader.num_images - (batch - 1) * config.batch_size
                )
                if total < ranks:
                    continue
                logits, images_loss = train_step(
                    self.train_forward, self.optimizer, images, labels, self.placement,
                    share=(ranks, total),
                )  # fmt: skip
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
                    done = Position(epoch, batch, float(loss_sum), int(correct), seen)
                    self._save(done, history, stopped=False, rolling=True)
            train_seconds = time.perf_counter() - started
            ended = self._summed(Position(epoch, batches, float(loss_sum), int(correct), seen))
            trained_images = ended.seen - (position.seen if start_batch else 0) * ranks
            tested = self._evaluate(test_loader)
            if tested is None:  # stopped during the test pass: resuming re-runs only the test pass
                self._save(ended, history, stopped=True)
                return "stopped"
            seconds = time.perf_counter() - started
            if not self.recipe.per_step_schedule:
                with warnings.catch_warnings():
                    # A resumed epoch whose batches all ran before the stop (only its test pass
                    # was left) steps the restored schedule with no optimizer step in this
                    # process: torch's per-process order check would warn, wrongly.
                    warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler")
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
                self._save(Position(epoch + 1), history, stopped=False)
            try:
                if self.world.writer:
                    append_jsonl(self.run_dir / "metrics.jsonl", entry)
            except RunFileError:
                if not due:  # keep the epoch in this run's own rolling file, then fail
                    self._save(Position(epoch + 1), history, stopped=False, rolling=True)
                raise
            self.on_event(EpochEnded(epochs=config.epochs, **entry))
        return "completed"

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


def move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value):
                state[key] = value.to(device)

"""Measuring a pruned model: the setup a sweep or a sensitivity run needs once (model on the
device, test batches, optional BatchNorm recalibration batches) and the per-level evaluator
(sparsity, sizes, accuracy)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.checkpoints.io import ignored_keys_notice, load_state
from engine.checkpoints.source import resolve_data, resolve_source
from engine.checkpoints.sparse_format import MIN_ZERO_FRACTION, bitmask_bytes
from engine.config import SweepConfig
from engine.data.imageset import ImageSet
from engine.data.loader import BatchLoader
from engine.data.sources import load_split
from engine.events import EventCallback, Notice, StopSignal, SweepPoint
from engine.measure.cost import LevelCoster, cost_fields, running_parameters
from engine.measure.evaluate import EvalResult, evaluate
from engine.measure.fold import fold_batchnorm
from engine.measure.fuse import can_fuse, fuse_conv_activations
from engine.measure.stats import wilson_ci95
from engine.models.spec import build_model
from engine.pruning.pruner import Pruner, make_pruner
from engine.pruning.scores import Score, ScoreInputs, make_score, needs_batch, training_batch
from engine.runs.files import file_sha256
from engine.runs.lifecycle import Run
from engine.runtime.device import Placement, resolve_placement
from engine.runtime.distributed import rank_device, world_from_env
from engine.sweep.answer import PointResult, per_class_accuracy


class Stopped(Exception):
    """The stop signal fired in the middle of evaluating a level; that level is dropped."""


def checked(result: EvalResult | None) -> EvalResult:
    if result is None:
        raise Stopped
    return result


BN_BATCH_SIZE = 128  # batch size for re-estimating BatchNorm statistics (the seed's training batch)


@dataclass
class Setup:
    """Everything a sweep needs once: model on the device, test batches, the pruner."""

    config: SweepConfig
    placement: Placement
    model: nn.Module
    test_data: ImageSet
    test_loader: BatchLoader
    train_loader: BatchLoader | None
    parameters: int
    score: Score  # what ranks the weights (config.score)

    def pruner(self) -> Pruner:
        """A pruner of the model as it is now, with the run's method and score."""
        c = self.config
        return make_pruner(
            self.model, c.method, c.include_classifier, c.min_density, score=self.score
        )


def prepare(config: SweepConfig, model: nn.Module | None, on_event: EventCallback) -> Setup:
    config.validate()
    placement = resolve_placement(config)
    placement = dataclasses.replace(
        placement, device=rank_device(placement.device, world_from_env())
    )
    if model is None:
        config, checkpoint = resolve_source(config, on_event)
    else:  # a model in memory (tests, benchmarks): no checkpoint to take settings from
        if config.model == "auto":
            config = dataclasses.replace(config, model=type(model).__name__)
        config = resolve_data(config, {}, on_event)
    test_data = load_split(config, train=False)
    batch = None
    if needs_batch(config.score):  # read now: a missing training split fails before the run
        batch = training_batch(
            config,
            config.batch_size,
            device=placement.device,
            channels_last=placement.channels_last,
        )
    score = make_score(config.score, ScoreInputs(config.seed, batch and (lambda: batch)))
    if model is None:
        model = build_model(config.model, num_classes=len(test_data.classes))
        ignored = load_state(model, checkpoint, config.checkpoint)
        if ignored:
            on_event(Notice(ignored_keys_notice(config.checkpoint, ignored)))
    model.to(placement.device, memory_format=placement.memory_format).eval()
    loader_args = dict(
        device=placement.device,
        normalization=config.normalization,
        channels_last=placement.channels_last,
    )
    test_loader = BatchLoader(
        test_data, placement.eval_batch_size(config.eval_batch_size), **loader_args
    )
    train_loader = None
    if config.bn_recalibrate > 0:
        train_data = load_split(config, train=True)
        train_loader = BatchLoader(
            train_data, BN_BATCH_SIZE, shuffle=True, seed=config.seed, **loader_args
        )
    parameters = running_parameters(model)  # a slim file's, not its dense shapes'
    return Setup(config, placement, model, test_data, test_loader, train_loader, parameters, score)


def open_run(
    setup: Setup, run: Run, *, resume: str | Path | None = None, world_size: int = 1
) -> Path:
    """Open `run`'s folder (new, or `resume`) recording the config, the device, the data and
    the ranks."""
    run_dir = run.open(
        setup.config.run_dir,
        model=setup.config.model,
        config=setup.config.to_dict(),
        device=setup.placement.describe(),
        data=setup.test_data.source,
        synthetic=setup.test_data.synthetic,
        resume=resume,
        world_size=world_size,
    )
    _record_source(run, setup.config.checkpoint)
    return run_dir


def _record_source(run: Run, checkpoint: str) -> None:
    """The SHA-256 of the checkpoint the sweep measures, kept in run.json's `sources`: an export
    of one of its levels warns when the file has changed since (so does a resume)."""
    if run.record is None or not Path(checkpoint).is_file():
        return
    try:
        digest = file_sha256(checkpoint)
    except OSError:
        return
    recorded = run.record.sources.get(checkpoint)
    if recorded is None:
        run.record.sources[checkpoint] = digest
        run.save_record()
    elif recorded != digest:
        run.notice(
            f"{checkpoint} has changed since this sweep began (its SHA-256 differs): the levels "
            "measured before and after come from different weights",
            "warning",
        )


def state_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


class Evaluator:
    """Measures one level: sparsity, sizes, accuracy (and with re-estimated BatchNorm)."""

    def __init__(self, setup: Setup, pruner: Pruner, stop: StopSignal = None) -> None:
        self.setup = setup
        self.pruner = pruner
        self.stop = stop
        self.dense_bytes = state_bytes(setup.model)
        self.prunable_bytes = sum(w.numel() * w.element_size() for w in pruner.weights)
        self.last_correct: torch.Tensor | None = None  # per-image right/wrong of the last level
        # Plain evaluations run on a BatchNorm-folded copy (same numbers, less work per image),
        # on a CPU in fp32 with each conv's ReLU (and residual add) fused into it; the BatchNorm
        # recalibration needs the real BatchNorm layers and uses the model.
        self.folded = fold_batchnorm(setup.model)
        placement = setup.placement
        if self.folded is not None and can_fuse(placement.device, placement.precision):
            fuse_conv_activations(self.folded.graph_module)
        self._coster: LevelCoster | None = None

    @property
    def coster(self) -> LevelCoster:
        """Measures the dense network's cost once, when the first level asks for it (before any
        level is set: the pruner starts dense)."""
        if self._coster is None:
            setup = self.setup
            self._coster = LevelCoster(
                setup.model, self.pruner.method, setup.placement, setup.config.latency_batch
            )
        return self._coster

    def point(
        self, level: float, *, evaluate_it: bool = True, refined: bool = False
    ) -> PointResult:
        started = time.perf_counter()
        coster = self.coster
        self.pruner.set_level(level)
        sparsity = self.pruner.sparsity()  # the pruner's own counts: no scan of every tensor
        cost = coster.dense if level == 0 else coster.at_level()
        result: EvalResult | None = None
        recalibrated = None
        self.last_correct = None
        if evaluate_it:
            result = self.run_eval()
            self.last_correct = result.per_image
            if self.setup.train_loader is not None:
                recalibrated = self._recalibrated_accuracy()
        return PointResult(
            level_percent=level,
            sparsity_percent=sparsity.percent,
            total_sparsity_percent=sparsity.total_percent,
            nonzero_parameters=sparsity.nonzero_parameters,
            accuracy=result.accuracy if result else None,
            loss=result.loss if result else None,
            accuracy_bn_recalibrated=recalibrated,
            dense_bytes=self.dense_bytes,
            sparse_bytes=self._sparse_bytes(sparsity.layer_nonzero),
            seconds=time.perf_counter() - started,
            evaluated=evaluate_it,
            refined=refined,
            confusion=result.confusion if result else None,
            per_layer=sparsity.per_layer,
            accuracy_ci95=_listed(wilson_ci95(result.correct, result.total)) if result else None,
            per_class_accuracy=(
                per_class_accuracy(result.confusion, self.setup.test_data.classes)
                if result
                else None
            ),
            **cost_fields(cost, coster.dense),
        )

    def _sparse_bytes(self, layer_nonzero: dict[str, int]) -> int:
        """Pruned tensors as bitmask + kept values, the rest dense (the compact file's layout
        before compression; `prunelab export` reports the compressed file's real size)."""
        total = self.dense_bytes - self.prunable_bytes
        for (name, _), weight in zip(self.pruner.layers, self.pruner.weights, strict=True):
            nonzero = layer_nonzero[name]
            encoded = bitmask_bytes(weight.numel(), nonzero, weight.element_size())
            dense = weight.numel() * weight.element_size()
            zero_fraction = 1 - nonzero / max(weight.numel(), 1)
            total += encoded if zero_fraction >= MIN_ZERO_FRACTION else dense
        return total

    @torch.no_grad()
    def _recalibrated_accuracy(self) -> float:
        """Re-estimate BatchNorm running statistics on K training batches (train mode, no
        gradient steps), evaluate, then put the original statistics back."""
        model, setup = self.setup.model, self.setup
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [
            (m.momentum, {k: v.clone() for k, v in m._buffers.items() if v is not None})
            for m in norms
        ]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the recalibration batches
        model.train()
        assert setup.train_loader is not None
        setup.train_loader.set_epoch(0)
        with setup.placement.autocast():
            for i, (images, _) in enumerate(setup.train_loader):
                if i >= setup.config.bn_recalibrate:
                    break
                model(images)
        model.eval()
        try:
            return self.run_eval(folded=False).accuracy
        finally:
            for m, (momentum, buffers) in zip(norms, saved, strict=True):
                m.momentum = momentum
                for k, v in buffers.items():
                    m._buffers[k].copy_(v)

    def run_eval(self, *, folded: bool = True) -> EvalResult:
        """The test pass at the current weights, on the folded copy unless `folded` is False."""
        setup, model = self.setup, self.setup.model
        if folded and self.folded is not None:
            self.folded.refresh()
            model = self.folded
        classes = len(setup.test_data.classes)
        return checked(evaluate(model, setup.test_loader, setup.placement, classes, stop=self.stop))


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return list(interval) if interval is not None else None


def emit_point(on_event: EventCallback, point: PointResult, index: int, total: int) -> None:
    """The point as an event: every field they share, plus its place in the sweep."""
    shared = {f.name for f in dataclasses.fields(SweepPoint)} & set(point.__dataclass_fields__)
    on_event(SweepPoint(**{k: getattr(point, k) for k in shared}, index=index, total=total))


def chance_warning(accuracy: float, chance: float) -> str:
    """What to say when the dense baseline is no better than guessing."""
    return (
        f"the dense model scores {accuracy:.1f}% (chance is {chance:.0f}%): is this the right "
        "checkpoint, data and normalisation? Every pruned level is compared with this baseline"
    )

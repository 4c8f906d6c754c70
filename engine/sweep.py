"""Pruning sweeps: accuracy against sparsity, the best-sparsity answer, per-layer sensitivity.

A sweep loads the weights once, ranks them once (engine.pruning.Pruner) and visits each level by
changing only the weights between two ranks, evaluating the test set kept on the device. Each
point is appended to `sweep.jsonl` as soon as it is known, so an interrupted sweep keeps its
points and a resumed one computes only the missing levels.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.checkpoints import load_state, read_checkpoint
from engine.config import (
    FIND_COARSE_STEP,
    SweepConfig,
    parse_levels,
)
from engine.data import BatchLoader, ImageSet, load_split
from engine.device import Placement, resolve_placement
from engine.errors import PrunelabError
from engine.evaluate import EvalResult, evaluate
from engine.events import (
    EventCallback,
    Notice,
    RunFinished,
    RunStarted,
    SensitivityPoint,
    StopSignal,
    SweepFinished,
    SweepPoint,
    no_events,
    stop_requested,
)
from engine.models import build_model, count_parameters
from engine.pruning import METHOD_CAVEATS, Pruner, measure_sparsity
from engine.runs import (
    RunRecord,
    append_jsonl,
    load_run,
    now_iso,
    read_json,
    read_jsonl,
    start_run,
    write_csv,
    write_json,
)
from engine.sparse_format import MIN_ZERO_FRACTION, bitmask_bytes


class _Stopped(Exception):
    """The stop signal fired in the middle of evaluating a level; that level is dropped."""


def _checked(result: EvalResult | None) -> EvalResult:
    if result is None:
        raise _Stopped
    return result


BN_BATCH_SIZE = 128  # batch size for re-estimating BatchNorm statistics (the seed's training batch)
CSV_COLUMNS = (
    "level_percent",
    "sparsity_percent",
    "total_sparsity_percent",
    "nonzero_parameters",
    "accuracy",
    "accuracy_bn_recalibrated",
    "loss",
    "dense_bytes",
    "sparse_bytes",
    "seconds",
    "evaluated",
    "refined",
)


@dataclass
class PointResult:
    """One pruning level. Sparsities are measured zeros, not the requested level."""

    level_percent: float
    sparsity_percent: float  # zeros among the prunable weights
    total_sparsity_percent: float  # zeros among all parameters
    nonzero_parameters: int
    accuracy: float | None  # top-1 %, None when not evaluated
    loss: float | None
    accuracy_bn_recalibrated: float | None
    dense_bytes: int  # every tensor stored densely
    sparse_bytes: int  # pruned tensors as bitmask + kept values (before compression)
    seconds: float
    evaluated: bool = True
    refined: bool = False
    confusion: list[list[int]] | None = None
    per_layer: dict[str, float] = field(default_factory=dict)


@dataclass
class SweepResult:
    status: str
    run_dir: str
    model: str
    method: str
    points: list[PointResult]
    baseline_accuracy: float | None
    tolerance: float
    best_level_percent: float | None
    best_accuracy: float | None
    synthetic: bool = False
    reason: str = ""

    def sentence(self) -> str:
        """The answer in words, e.g. "62% of weights removed within 1.0 point of 93.1%"."""
        if self.baseline_accuracy is None:
            return "no baseline accuracy yet"
        if self.best_level_percent is None:
            return (
                f"no pruned level stays within {_points(self.tolerance)} of "
                f"{self.baseline_accuracy:.1f}%"
            )
        answer = (
            f"{self.best_level_percent:g}% of weights removed within {_points(self.tolerance)} "
            f"of {self.baseline_accuracy:.1f}%"
        )
        caveat = METHOD_CAVEATS.get(self.method)
        return f"{answer} ({caveat})" if caveat else answer

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "points"}
        data["sentence"] = self.sentence()
        data["levels"] = len(self.points)
        return data


def _points(tolerance: float) -> str:
    """'1.0 point', '0.25 points', '2.0 points'."""
    text = f"{tolerance:.1f}" if round(tolerance, 1) == tolerance else f"{tolerance:g}"
    return f"{text} point" if tolerance == 1 else f"{text} points"


def within(accuracy: float | None, baseline: float, tolerance: float) -> bool:
    return accuracy is not None and accuracy >= baseline - tolerance - 1e-9


def best_level(
    points: list[PointResult], baseline: float | None, tolerance: float
) -> PointResult | None:
    """The highest level such that it and every evaluated level below it stay within
    `tolerance` points of `baseline` (a lucky point past the first miss does not count)."""
    if baseline is None:
        return None
    best = None
    for point in sorted(points, key=lambda p: p.level_percent):
        if not point.evaluated:
            continue
        if not within(point.accuracy, baseline, tolerance):
            break
        best = point
    return best


def _bracket(
    points: list[PointResult], baseline: float, tolerance: float
) -> tuple[float, float] | None:
    """(last level within tolerance, first level outside it), or None when no miss was seen."""
    best = best_level(points, baseline, tolerance)
    above = [
        p.level_percent
        for p in points
        if p.evaluated and best is not None and p.level_percent > best.level_percent
    ]
    if best is None or not above:
        return None
    return best.level_percent, min(above)


@dataclass
class _Setup:
    """Everything a sweep needs once: model on the device, test batches, the pruner."""

    config: SweepConfig
    placement: Placement
    model: nn.Module
    test_data: ImageSet
    test_loader: BatchLoader
    train_loader: BatchLoader | None
    parameters: int


def _prepare(config: SweepConfig, model: nn.Module | None, on_event: EventCallback) -> _Setup:
    config.validate()
    placement = resolve_placement(config)
    if model is None:
        checkpoint = read_checkpoint(config.checkpoint)
        if config.model == "auto":
            if checkpoint.model is None:
                raise PrunelabError(
                    f"cannot tell which architecture {config.checkpoint} holds; pass --model"
                )
            config = dataclasses.replace(config, model=checkpoint.model)
        if checkpoint.normalization and checkpoint.normalization != config.normalization:
            on_event(
                Notice(
                    f"using the normalisation the checkpoint was trained with: {checkpoint.normalization}"
                )
            )
            config = dataclasses.replace(config, normalization=checkpoint.normalization)
    elif config.model == "auto":
        config = dataclasses.replace(config, model=type(model).__name__)
    test_data = load_split(config, train=False)
    if model is None:
        model = build_model(config.model, num_classes=len(test_data.classes))
        load_state(model, checkpoint.state_dict, config.checkpoint)
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
    return _Setup(
        config, placement, model, test_data, test_loader, train_loader, count_parameters(model)
    )


def _start(setup: _Setup, kind: str) -> tuple[Path, RunRecord]:
    """A new run folder recording the config, the device and the data."""
    return start_run(
        setup.config.run_dir,
        kind,
        setup.config.model,
        setup.config.to_dict(),
        device=setup.placement.describe(),
        data=setup.test_data.source,
        synthetic=setup.test_data.synthetic,
    )


def _announce(setup: _Setup, kind: str, run_dir: Path, on_event: EventCallback) -> None:
    on_event(
        RunStarted(
            kind=kind,  # type: ignore[arg-type]
            run_dir=str(run_dir),
            device=setup.placement.describe(),
            model=setup.config.model,
            parameters=setup.parameters,
            config=setup.config.to_dict(),
            synthetic=setup.test_data.synthetic,
        )
    )


def _state_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


class _Evaluator:
    """Measures one level: sparsity, sizes, accuracy (and with re-estimated BatchNorm)."""

    def __init__(self, setup: _Setup, pruner: Pruner, stop: StopSignal = None) -> None:
        self.setup = setup
        self.pruner = pruner
        self.stop = stop
        self.dense_bytes = _state_bytes(setup.model)
        self.prunable_bytes = sum(w.numel() * w.element_size() for w in pruner.weights)

    def point(
        self, level: float, *, evaluate_it: bool = True, refined: bool = False
    ) -> PointResult:
        started = time.perf_counter()
        self.pruner.set_level(level)
        sparsity = measure_sparsity(self.setup.model, self.pruner.layers)
        result: EvalResult | None = None
        recalibrated = None
        if evaluate_it:
            result = self.run_eval()
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
            return self.run_eval().accuracy
        finally:
            for m, (momentum, buffers) in zip(norms, saved, strict=True):
                m.momentum = momentum
                for k, v in buffers.items():
                    m._buffers[k].copy_(v)

    def run_eval(self) -> EvalResult:
        setup = self.setup
        return _checked(evaluate(setup.model, setup.test_loader, setup.placement, stop=self.stop))


def _emit_point(on_event: EventCallback, point: PointResult, index: int, total: int) -> None:
    """The point as an event: every field they share, plus its place in the sweep."""
    shared = {f.name for f in dataclasses.fields(SweepPoint)} & set(point.__dataclass_fields__)
    on_event(SweepPoint(**{k: getattr(point, k) for k in shared}, index=index, total=total))


def run_sweep(
    config: SweepConfig,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    *,
    model: nn.Module | None = None,
    resume_run: str | Path | None = None,
) -> SweepResult:
    """Evaluate every level of `config.levels` (plus 0%, the baseline), optionally refine the
    best-sparsity answer by bisection; see the module docstring."""
    return _sweep(config, on_event, stop, model=model, resume_run=resume_run, kind="sweep")


def find_best(
    config: SweepConfig,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    *,
    coarse_step: float = FIND_COARSE_STEP,
) -> SweepResult:
    """The adaptive search alone: scan 0, step, 2*step, ... until the first level outside the
    tolerance, then bisect down to `config.resolution`."""
    config = dataclasses.replace(config, levels=parse_levels(f"0:100:{coarse_step:g}"), refine=True)
    return _sweep(config, on_event, stop, kind="find", stop_at_first_miss=True)


def _sweep(
    config: SweepConfig,
    on_event: EventCallback,
    stop: StopSignal,
    *,
    kind: str,
    model: nn.Module | None = None,
    resume_run: str | Path | None = None,
    stop_at_first_miss: bool = False,
) -> SweepResult:
    done: dict[float, PointResult] = {}
    if resume_run is not None:
        config, done = _resume_state(resume_run, config)
    setup = _prepare(config, model, on_event)
    config = setup.config
    if resume_run is not None:
        run_dir = Path(resume_run)
        record = load_run(run_dir)
        record.status = "running"
        record.save(run_dir)
        on_event(Notice(f"resuming {run_dir}: {len(done)} level(s) already done"))
    else:
        run_dir, record = _start(setup, kind)
    _announce(setup, kind, run_dir, on_event)
    pruner = Pruner(setup.model, config.method, config.include_classifier, config.min_density)
    evaluator = _Evaluator(setup, pruner, stop)
    points = list(done.values())
    status = "completed"

    def record_point(point: PointResult, index: int, total: int) -> None:
        points.append(point)
        append_jsonl(run_dir / "sweep.jsonl", asdict(point))
        _emit_point(on_event, point, index, total)

    try:
        levels = sorted(set(config.levels) | {0.0})
        chance = 100.0 / len(setup.test_data.classes) + 1.0
        at_chance = 0
        for index, level in enumerate(levels, start=1):
            if level in done:
                _emit_point(on_event, done[level], index, len(levels))
                continue
            if stop_requested(stop):
                status = "stopped"
                break
            skip = config.early_stop > 0 and at_chance >= config.early_stop
            point = evaluator.point(level, evaluate_it=not skip)
            record_point(point, index, len(levels))
            if point.evaluated:
                at_chance = at_chance + 1 if point.accuracy <= chance else 0
            baseline = _baseline(points)
            if (
                stop_at_first_miss
                and baseline is not None
                and not within(point.accuracy, baseline, config.tolerance)
            ):
                break
        if status == "completed" and config.refine:
            status = _refine(config, evaluator, points, record_point, stop)
    except _Stopped:
        status = "stopped"
    except torch.cuda.OutOfMemoryError:
        reason = (
            f"CUDA out of memory at eval batch size {setup.test_loader.batch_size}; "
            f"try --eval-batch-size {max(1, setup.test_loader.batch_size // 2)}"
        )
        _finish_failed(record, run_dir, kind, reason, on_event)
        raise PrunelabError(reason) from None
    except BaseException as exc:
        _finish_failed(record, run_dir, kind, str(exc) or type(exc).__name__, on_event)
        raise
    finally:
        pruner.release()

    result = _result(config, str(run_dir), points, status, setup.test_data.synthetic)
    _write_outputs(run_dir, result)
    on_event(
        SweepFinished(
            baseline_accuracy=result.baseline_accuracy,
            best_level_percent=result.best_level_percent,
            best_accuracy=result.best_accuracy,
            tolerance=result.tolerance,
            points=len(result.points),
        )
    )
    record.status, record.finished, record.summary = status, now_iso(), result.summary()
    record.save(run_dir)
    on_event(RunFinished(kind=kind, status=status, run_dir=str(run_dir), summary=record.summary))  # type: ignore[arg-type]
    return result


def _refine(
    config: SweepConfig,
    evaluator: _Evaluator,
    points: list[PointResult],
    record_point: Callable[[PointResult, int, int], None],
    stop: StopSignal,
) -> str:
    """Bisect between the last level within tolerance and the first outside it."""
    baseline = _baseline(points)
    if baseline is None:
        return "completed"
    while True:
        bracket = _bracket(points, baseline, config.tolerance)
        if bracket is None or bracket[1] - bracket[0] <= config.resolution + 1e-9:
            return "completed"
        if stop_requested(stop):
            return "stopped"
        low, high = bracket
        middle = round((low + high) / 2, 4)
        record_point(evaluator.point(middle, refined=True), len(points) + 1, len(points) + 1)


def _baseline(points: list[PointResult]) -> float | None:
    for point in points:
        if point.level_percent == 0.0 and point.evaluated:
            return point.accuracy
    return None


def _result(
    config: SweepConfig, run_dir: str, points: list[PointResult], status: str, synthetic: bool
) -> SweepResult:
    points = sorted(points, key=lambda p: p.level_percent)
    baseline = _baseline(points)
    best = best_level(points, baseline, config.tolerance)
    return SweepResult(
        status=status,
        run_dir=run_dir,
        model=config.model,
        method=config.method,
        points=points,
        baseline_accuracy=baseline,
        tolerance=config.tolerance,
        best_level_percent=best.level_percent if best else None,
        best_accuracy=best.accuracy if best else None,
        synthetic=synthetic,
    )


def _write_outputs(run_dir: Path, result: SweepResult) -> None:
    write_csv(run_dir / "sweep.csv", [asdict(p) for p in result.points], CSV_COLUMNS)
    write_json(run_dir / "summary.json", result.summary())


def _finish_failed(
    record: RunRecord, run_dir: Path, kind: str, reason: str, on_event: EventCallback
) -> None:
    record.status, record.reason, record.finished = "failed", reason, now_iso()
    record.save(run_dir)
    on_event(RunFinished(kind=kind, status="failed", run_dir=str(run_dir), reason=reason))  # type: ignore[arg-type]


def _points_from_jsonl(run_dir: Path) -> list[PointResult]:
    names = {f.name for f in dataclasses.fields(PointResult)}
    points: dict[float, PointResult] = {}
    for record in read_jsonl(run_dir / "sweep.jsonl"):
        point = PointResult(**{k: v for k, v in record.items() if k in names})
        points[point.level_percent] = point
    return list(points.values())


def _resume_state(
    resume_run: str | Path, config: SweepConfig
) -> tuple[SweepConfig, dict[float, PointResult]]:
    """The saved sweep's config (keeping this call's device settings) and its finished points."""
    run_dir = Path(resume_run)
    if not (run_dir / "config.json").is_file():
        raise PrunelabError(f"cannot resume {run_dir}: it holds no config.json of a sweep run")
    kind = load_run(run_dir).kind
    if kind not in ("sweep", "find"):
        raise PrunelabError(f"cannot resume {run_dir}: it is a {kind} run, not a sweep")
    saved = SweepConfig.from_dict(read_json(run_dir / "config.json"))
    keep = ("device", "precision", "channels_last", "eval_batch_size", "data_dir")
    saved = dataclasses.replace(saved, **{k: getattr(config, k) for k in keep})
    done = {p.level_percent: p for p in _points_from_jsonl(run_dir)}
    return saved, done


def read_sweep(run_dir: str | Path) -> SweepResult:
    """A finished or interrupted sweep run, read back from its files."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise PrunelabError(f"{run_dir} is not a sweep run (no config.json)")
    config = SweepConfig.from_dict(read_json(run_dir / "config.json"))
    record = load_run(run_dir)
    return _result(
        config, str(run_dir), _points_from_jsonl(run_dir), record.status, record.synthetic
    )


@dataclass
class SensitivityResult:
    run_dir: str
    layers: list[str]
    levels: list[float]
    baseline_accuracy: float | None
    accuracy: dict[str, dict[float, float]]  # layer -> level -> top-1 %
    status: str = "completed"


def read_sensitivity(run_dir: str | Path) -> SensitivityResult:
    """A sensitivity run read back from its files (finished or interrupted)."""
    run_dir = Path(run_dir)
    summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    table: dict[str, dict[float, float]] = {}
    for row in read_jsonl(run_dir / "sensitivity.jsonl"):
        table.setdefault(row["layer"], {})[float(row["level_percent"])] = row["accuracy"]
    levels = sorted({level for row in table.values() for level in row})
    status = load_run(run_dir).status if (run_dir / "run.json").is_file() else "unknown"
    return SensitivityResult(
        str(run_dir), list(table), levels, summary.get("baseline_accuracy"), table, status
    )


def run_sensitivity(
    config: SweepConfig,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    *,
    layers: list[str] | None = None,
) -> SensitivityResult:
    """Prune one layer at a time (layerwise L1) at each level, the others dense, and evaluate:
    which layers tolerate pruning and which do not."""
    setup = _prepare(config, None, on_event)
    config = setup.config
    pruner = Pruner(setup.model, "layerwise", config.include_classifier)
    names = layers or pruner.names
    unknown = [n for n in names if n not in pruner.names]
    if unknown:
        raise PrunelabError(
            f"unknown layer(s): {', '.join(unknown)}; prunable layers are e.g. {', '.join(pruner.names[:5])}"
        )
    run_dir, record = _start(setup, "sensitivity")
    _announce(setup, "sensitivity", run_dir, on_event)
    levels = [level for level in config.levels if level > 0]
    evaluator = _Evaluator(setup, pruner, stop)
    try:
        baseline = evaluator.run_eval().accuracy
    except _Stopped:
        pruner.release()
        raise PrunelabError("stopped before the dense baseline was measured") from None
    table: dict[str, dict[float, float]] = {}
    total, index, status = len(names) * len(levels), 0, "completed"
    try:
        for name in names:
            for level in levels:
                if stop_requested(stop):
                    status = "stopped"
                    break
                pruner.set_layer_level(name, level)
                try:
                    accuracy = evaluator.run_eval().accuracy
                except _Stopped:
                    status = "stopped"
                    break
                table.setdefault(name, {})[level] = accuracy
                index += 1
                append_jsonl(
                    run_dir / "sensitivity.jsonl",
                    {"layer": name, "level_percent": level, "accuracy": accuracy},
                )
                on_event(
                    SensitivityPoint(
                        layer=name, level_percent=level, accuracy=accuracy, index=index, total=total
                    )
                )
            if status == "stopped":
                break
    except BaseException as exc:
        _finish_failed(record, run_dir, "sensitivity", str(exc) or type(exc).__name__, on_event)
        raise
    finally:
        pruner.release()
    result = SensitivityResult(str(run_dir), list(table), levels, baseline, table, status)
    columns = ["layer"] + [f"{level:g}" for level in levels]
    rows = [{"layer": n, **{f"{lv:g}": acc for lv, acc in row.items()}} for n, row in table.items()]
    write_csv(run_dir / "sensitivity.csv", rows, columns)
    write_json(
        run_dir / "summary.json",
        {
            "baseline_accuracy": baseline,
            "levels": levels,
            "accuracy": {n: {f"{k:g}": v for k, v in r.items()} for n, r in table.items()},
        },
    )
    record.status, record.finished = status, now_iso()
    record.summary = {"baseline_accuracy": baseline, "layers": len(table), "levels": levels}
    record.save(run_dir)
    on_event(
        RunFinished(kind="sensitivity", status=status, run_dir=str(run_dir), summary=record.summary)
    )
    return result

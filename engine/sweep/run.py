"""Pruning sweeps: accuracy against sparsity, the best-sparsity answer, per-layer sensitivity.

A sweep loads the weights once, ranks them once (engine.pruning.pruner.Pruner) and visits each level by
changing only the weights between two ranks, evaluating the test set kept on the device. Each
point is appended to `sweep.jsonl` as soon as it is known (and which images it got right to
`correct.jsonl`, for the paired intervals), so an interrupted sweep keeps its points and a
resumed one computes only the missing levels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from engine.config import DEFAULT_LATENCY_BATCH, FIND_COARSE_STEP, SweepConfig
from engine.events import (
    EventCallback,
    Notice,
    StopSignal,
    SweepFinished,
    no_events,
    stop_requested,
)
from engine.measure.stats import paired_delta_ci95
from engine.options import parse_levels
from engine.pruning.pruner import Pruner
from engine.runs.lifecycle import Run
from engine.runs.record import append_jsonl, load_run
from engine.runs.tensorboard import tensorboard_events
from engine.runtime.device import resolve_device
from engine.runtime.distributed import Group, SharedStop, rank_device, world_from_env
from engine.sweep.answer import (
    PointResult,
    SweepResult,
    baseline_of,
    bracket_of,
    control_of,
    make_result,
    reaches,
    recovered_view,
    speed_bracket,
    within,
)
from engine.sweep.ranks import SpreadLevels
from engine.sweep.recovery import Recovery
from engine.sweep.rules import find_problems, raise_first
from engine.sweep.setup import Evaluator, Stopped, chance_warning, emit_point, open_run, prepare
from engine.sweep.store import (
    append_correct,
    keep_valid_points,
    read_correct,
    resume_state,
    saved_config,
    timed_on,
    write_outputs,
)


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
    config = _with_timing(config)
    return _sweep(config, on_event, stop, model=model, resume_run=resume_run, kind="sweep")


def find_best(
    config: SweepConfig,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    *,
    coarse_step: float = FIND_COARSE_STEP,
    model: nn.Module | None = None,
) -> SweepResult:
    """The adaptive search alone: scan 0, step, 2*step, ... until the first level outside the
    tolerance, then bisect down to `config.resolution`.

    With `config.target_speedup`: scan until the first level measured at least that many times
    faster (the low end of its speedup's range; latency measured at every level), bisect down to
    the lowest such level, and answer with the most accurate level that reaches the speedup."""
    raise_first(find_problems(coarse_step))
    config = dataclasses.replace(config, levels=parse_levels(f"0:100:{coarse_step:g}"), refine=True)
    return _sweep(
        _with_timing(config), on_event, stop, kind="find", stop_at_first_miss=True, model=model
    )


def _with_timing(config: SweepConfig) -> SweepConfig:
    """An answer in speed (--x latency, find --target-speedup) needs every level timed: at
    DEFAULT_LATENCY_BATCH unless --latency-batch says otherwise."""
    if (config.x == "latency" or config.target_speedup) and not config.latency_batch:
        return dataclasses.replace(config, latency_batch=DEFAULT_LATENCY_BATCH)
    return config


def resume_sweep(
    run_dir: str | Path, on_event: EventCallback = no_events, stop: StopSignal = None, **device: Any
) -> SweepResult:
    """Finish an interrupted sweep or find run with its saved settings (`device` may override
    the machine settings, see engine.operations); a find run still stops at its first miss."""
    kind = load_run(run_dir).kind
    config = dataclasses.replace(saved_config(Path(run_dir)), **device)
    return _sweep(
        config, on_event, stop, kind=kind, resume_run=run_dir, stop_at_first_miss=kind == "find"
    )


def _sweep(config: SweepConfig, on_event: EventCallback, stop: StopSignal, **kwargs) -> SweepResult:
    """Under torchrun the ranks share out the levels (engine.sweep.ranks); rank 0 writes and
    holds the run folder's writer lock (a second resume is refused)."""
    world = world_from_env()
    # under torchrun the launcher's world size is the device count the config's rules judge
    config = dataclasses.replace(config, devices=max(config.devices, world.world_size))
    config.validate()
    group = Group(world, rank_device(resolve_device(config.device), world))
    with tensorboard_events(config.tensorboard if world.writer else "", on_event) as on_event:
        run = Run(kwargs["kind"], on_event if world.writer else no_events, stop)
        try:
            return _sweep_in(group, run, config, **kwargs)
        finally:
            run.release()
            group.close()


@dataclass
class Progress:
    """A sweep's points so far: `done` (read back on resume), every point in the order
    measured, and which test images each level got right (for the paired intervals)."""

    done: dict[float, PointResult] = field(default_factory=dict)
    points: list[PointResult] = field(default_factory=list)
    correct: dict[float, np.ndarray] = field(default_factory=dict)


def _sweep_in(
    group: Group,
    run: Run,
    config: SweepConfig,
    *,
    kind: str,
    model: nn.Module | None = None,
    resume_run: str | Path | None = None,
    stop_at_first_miss: bool = False,
) -> SweepResult:
    world = group.world
    config, progress = _resumed(run, config, resume_run, world.writer)
    setup = prepare(config, model, run.on_event)
    config = setup.config
    if world.writer:
        open_run(setup, run, resume=resume_run, world_size=world.world_size)
        if resume_run is not None:
            keep_valid_points(Path(resume_run))  # torn lines go before new ones are appended
            run.notice(f"resuming {resume_run}: {len(progress.done)} level(s) already done")
    run_dir = run.follow(group.broadcast_object(str(run.dir)))
    run.start(parameters=setup.parameters, data=setup.test_data.source)
    batch = setup.test_loader.batch_size
    status = "completed"
    with run.guard(
        oom_hint=f"at eval batch size {batch}; try --eval-batch-size {max(1, batch // 2)}"
    ):
        pruner = setup.pruner()
        for layer, reason in getattr(pruner, "left_whole", []):
            run.notice(f"{layer} keeps all its channels: {reason}", "warning")
        try:
            status = LevelWalk(setup, run, pruner, group, progress).run(stop_at_first_miss)
        finally:
            pruner.release()
        result = _result(setup, str(run_dir), progress, status)
        if world.writer:
            write_outputs(run_dir, result)
    run.on_event(_finished_event(result))
    run.finish(status, result.run_summary())
    return result


def _resumed(run: Run, config: SweepConfig, resume_run, writer: bool):
    """The saved config and points of a resumed sweep (a second resume is refused before
    anything is read); a fresh sweep's config and no points."""
    if resume_run is None:
        return config, Progress()
    if writer:
        run.claim(resume_run)
    config, done, damage = resume_state(resume_run, config)
    if damage:
        run.on_event(Notice(f"{damage}; those levels are computed again", "warning"))
    progress = Progress(done, list(done.values()), read_correct(Path(resume_run)))
    return config, progress


def _result(setup, run_dir: str, progress: Progress, status: str) -> SweepResult:
    selection = setup.test_data.selection
    return make_result(
        setup.config,
        run_dir,
        progress.points,
        status,
        setup.test_data.synthetic,
        progress.correct,
        selection.to_dict() if selection else None,
        timed_on(setup.config, setup.placement.describe()),
    )


def _finished_event(result: SweepResult) -> SweepFinished:
    return SweepFinished(
        baseline_accuracy=result.baseline_accuracy,
        best_level_percent=result.best_level_percent,
        best_accuracy=result.best_accuracy,
        tolerance=result.tolerance,
        points=len(result.points),
        best_level_ci95=result.best_level_ci95,
        note=result.note,
    )


class LevelWalk:
    """Measures every level not yet done, in order (and refines): one-shot, or fine-tuned on a
    recovery sweep; under torchrun the levels are shared out (SpreadLevels)."""

    def __init__(self, setup, run: Run, pruner: Pruner, group: Group, progress: Progress) -> None:
        self.config: SweepConfig = setup.config
        self.setup, self.run_dir, self.on_event = setup, run.dir, run.on_event
        self.writer = group.world.writer
        self.shared = SharedStop(group, run.stop) if group.world.distributed else None
        self.stop: StopSignal = self.shared or run.stop
        self.progress = progress
        self.evaluator = Evaluator(setup, pruner, self.stop)
        recovering = bool(self.config.finetune_epochs)
        self.recovery = Recovery(setup, run.dir, run.on_event, self.stop) if recovering else None
        self.levels = sorted(set(self.config.levels) | {0.0})
        missing = [v for v in self.levels if v not in progress.done]
        capture = lambda: self.evaluator.last_correct  # noqa: E731
        self.spread = SpreadLevels(self.measure, missing, group, self.shared, capture=capture)

    def measure(self, level: float, *, evaluate_it: bool = True, refined: bool = False):
        """One level: one-shot, and fine-tuned on a recovery sweep (None = stopped in it)."""
        if self.recovery is not None and evaluate_it:
            return self.recovery.point(level, self.evaluator, refined=refined)
        return self.evaluator.point(level, evaluate_it=evaluate_it, refined=refined)

    def record(self, point: PointResult, index: int, total: int) -> None:
        """Keep a point (with its per-image bits and paired interval), write it, report it."""
        progress = self.progress
        if self.spread.last_capture is not None:  # the point's own per-image bits, any rank
            bits = self.spread.last_capture.numpy()
            progress.correct[point.level_percent] = bits
            append_correct(self.run_dir, point.level_percent, bits)
            dense = progress.correct.get(0.0)
            if dense is not None:
                found = paired_delta_ci95(dense, bits)
                point.delta_ci95 = list(found) if found else None
        progress.points.append(point)
        if self.writer:
            append_jsonl(self.run_dir / "sweep.jsonl", asdict(point))
        emit_point(self.on_event, point, index, total)

    def run(self, stop_at_first_miss: bool) -> str:
        """'completed' or 'stopped'."""
        try:
            status = self._scan(stop_at_first_miss)
            if status == "completed" and self.config.refine:
                recovered = self.recovery is not None
                points = self.progress.points
                return _refine(
                    self.config, self.spread.point, points, self.record, self.stop, recovered
                )
            return status
        except Stopped:
            return "stopped"

    def _scan(self, stop_at_first_miss: bool) -> str:
        config, levels, done = self.config, self.levels, self.progress.done
        chance = 100.0 / len(self.setup.test_data.classes) + 1.0
        at_chance = 0
        for index, level in enumerate(levels, start=1):
            if level in done:
                emit_point(self.on_event, done[level], index, len(levels))
                continue
            if stop_requested(self.stop):
                return "stopped"
            skip = config.early_stop > 0 and at_chance >= config.early_stop
            point = self.spread.point(level, evaluate_it=not skip)
            if point is None:
                return "stopped"
            self.record(point, index, len(levels))
            if point.evaluated:
                at_chance = at_chance + 1 if point.accuracy <= chance else 0
            if level == 0.0 and point.evaluated and point.accuracy <= chance:
                self.on_event(Notice(chance_warning(point.accuracy, chance - 1.0), "warning"))
            recovered = self.recovery is not None
            if stop_at_first_miss and _search_done(config, point, self.progress.points, recovered):
                break
        return "completed"


def _search_done(
    config: SweepConfig, point: PointResult, points: list[PointResult], recovered: bool
) -> bool:
    """find's scan stops at the first pruned level outside the tolerance (judged on the
    recovered accuracy when recovering), or with a target speedup at the first level reaching
    it."""
    if config.target_speedup:
        return reaches(point, config.target_speedup)
    _, baseline = _answer_view(points, recovered)
    judged = point.accuracy_finetuned if recovered else point.accuracy
    return (
        point.level_percent > 0
        and baseline is not None
        and not within(judged, baseline, config.tolerance)
    )


def _answer_view(
    points: list[PointResult], recovered: bool
) -> tuple[list[PointResult], float | None]:
    """The points the answer is judged on and their baseline: one-shot accuracy against the
    dense model, or on a recovery sweep the fine-tuned accuracy against the control (the dense
    model fine-tuned alike) when there is one."""
    if not recovered:
        return points, baseline_of(points)
    control = control_of(points)
    return recovered_view(points), control if control is not None else baseline_of(points)


def _refine(
    config: SweepConfig,
    measure: Callable[..., PointResult | None],
    points: list[PointResult],
    record_point: Callable[[PointResult, int, int], None],
    stop: StopSignal,
    recovered: bool,
) -> str:
    """Bisect between the last level within tolerance and the first outside it (with a target
    speedup: between the last level slower than the target and the first reaching it)."""
    while True:
        view, baseline = _answer_view(points, recovered)
        if baseline is None:
            return "completed"
        if config.target_speedup:
            bracket = speed_bracket(points, config.target_speedup)
        else:
            bracket = bracket_of(view, baseline, config.tolerance)
        if bracket is None or bracket[1] - bracket[0] <= config.resolution + 1e-9:
            return "completed"
        if stop_requested(stop):
            return "stopped"
        low, high = bracket
        middle = round((low + high) / 2, 4)
        point = measure(middle, refined=True)
        if point is None:
            return "stopped"
        record_point(point, len(points) + 1, len(points) + 1)

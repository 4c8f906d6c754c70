"""Per-layer sensitivity: prune one layer at a time (layerwise, ranked by the run's score: |w| by
default) at each level, the others dense, and evaluate."""

from __future__ import annotations

import time

from engine.config import SweepConfig
from engine.errors import PrunelabError
from engine.events import (
    EventCallback,
    SensitivityPoint,
    StopSignal,
    no_events,
)
from engine.pruning.pruner import Pruner
from engine.runs.lifecycle import Run
from engine.runs.record import append_jsonl
from engine.runs.summaries import SensitivitySummary
from engine.runs.tensorboard import tensorboard_events
from engine.sweep.rules import raise_first, sensitivity_problems
from engine.sweep.setup import Evaluator, Stopped, open_run, prepare
from engine.sweep.store import SensitivityResult, write_sensitivity


def run_sensitivity(
    config: SweepConfig,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    *,
    layers: list[str] | None = None,
) -> SensitivityResult:
    """Prune one layer at a time (layerwise, by `config.score`) at each level, the others dense,
    and evaluate: which layers tolerate pruning and which do not."""
    raise_first(sensitivity_problems(config))
    with tensorboard_events(config.tensorboard, on_event) as events:
        return _sensitivity(config, events, stop, layers)


def _sensitivity(
    config: SweepConfig, on_event: EventCallback, stop: StopSignal, layers: list[str] | None
) -> SensitivityResult:
    setup = prepare(config, None, on_event)
    config = setup.config
    pruner = Pruner(setup.model, "layerwise", config.include_classifier, score=setup.score)
    names = _layer_names(pruner, layers)
    run = Run("sensitivity", on_event, stop)
    run_dir = open_run(setup, run)
    run.start(parameters=setup.parameters, data=setup.test_data.source)
    levels = [level for level in config.levels if level > 0]
    table: dict[str, dict[float, float]] = {}
    status, baseline = "completed", None
    images = len(setup.test_data)
    batch = setup.test_loader.batch_size
    with run.guard(
        oom_hint=f"at eval batch size {batch}, try --eval-batch-size {max(1, batch // 2)}"
    ):
        evaluator = Evaluator(setup, pruner, stop)
        try:
            began = time.monotonic()
            baseline = evaluator.run_eval().accuracy
            total = len(names) * len(levels)
            run.notice(evaluations_notice(total, images, time.monotonic() - began))
            _measure_layers(run, evaluator, pruner, names, levels, table)
        except Stopped:
            status = "stopped"
        finally:
            pruner.release()
        result = SensitivityResult(
            str(run_dir), list(table), levels, baseline, table, status, config.score, images
        )
        write_sensitivity(run_dir, result)
    summary = SensitivitySummary(
        baseline_accuracy=baseline, layers=len(table), levels=levels, score=config.score
    )
    run.finish(status, summary)
    return result


def _layer_names(pruner: Pruner, layers: list[str] | None) -> list[str]:
    names = layers or pruner.names
    unknown = [n for n in names if n not in pruner.names]
    if unknown:
        example = ", ".join(pruner.names[:5])
        raise PrunelabError(
            f"unknown layer(s): {', '.join(unknown)}; prunable layers are e.g. {example}"
        )
    return names


def _measure_layers(run: Run, evaluator, pruner: Pruner, names, levels, table) -> None:
    """Each layer alone at each level (the others dense), appended and reported as measured."""
    total, index = len(names) * len(levels), 0
    for name in names:
        for level in levels:
            if run.stop_requested():
                raise Stopped
            pruner.set_layer_level(name, level)
            accuracy = evaluator.run_eval().accuracy
            table.setdefault(name, {})[level] = accuracy
            index += 1
            append_jsonl(
                run.dir / "sensitivity.jsonl",
                {"layer": name, "level_percent": level, "accuracy": accuracy},
            )
            point = SensitivityPoint(
                layer=name, level_percent=level, accuracy=accuracy, index=index, total=total
            )
            run.on_event(point)


def evaluations_notice(total: int, images: int, seconds: float) -> str:
    """What a sensitivity run is about to do and roughly how long it takes: one evaluation of
    the test set (the dense one, just timed) per layer and level."""
    left = total * seconds
    rough = f"{left / 60:.0f} min" if left >= 90 else f"{left:.0f} s"
    return (
        f"{total} evaluations to go (one per layer and level) of {images:,} test images; the "
        f"dense one took {seconds:.1f} s, so about {rough} in all"
    )

"""Per-layer sensitivity: prune one layer at a time (layerwise, ranked by the run's score: |w| by
default) at each level, the others dense, and evaluate."""

from __future__ import annotations

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
    batch = setup.test_loader.batch_size
    with run.guard(
        oom_hint=f"at eval batch size {batch}, try --eval-batch-size {max(1, batch // 2)}"
    ):
        evaluator = Evaluator(setup, pruner, stop)
        try:
            baseline = evaluator.run_eval().accuracy
            _measure_layers(run, evaluator, pruner, names, levels, table)
        except Stopped:
            status = "stopped"
        finally:
            pruner.release()
        result = SensitivityResult(
            str(run_dir), list(table), levels, baseline, table, status, config.score
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

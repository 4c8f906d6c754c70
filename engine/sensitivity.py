"""Per-layer sensitivity: prune one layer at a time (layerwise L1) at each level, the others
dense, and evaluate."""

from __future__ import annotations

from engine.config import SweepConfig
from engine.errors import PrunelabError
from engine.events import (
    EventCallback,
    RunFinished,
    SensitivityPoint,
    StopSignal,
    no_events,
    stop_requested,
)
from engine.measure import Evaluator, Stopped, announce, finish_failed, prepare, start_run_folder
from engine.pruning import Pruner
from engine.runs import append_jsonl, now_iso, write_csv, write_json
from engine.sweep_store import SensitivityResult


def run_sensitivity(
    config: SweepConfig,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    *,
    layers: list[str] | None = None,
) -> SensitivityResult:
    """Prune one layer at a time (layerwise L1) at each level, the others dense, and evaluate:
    which layers tolerate pruning and which do not."""
    setup = prepare(config, None, on_event)
    config = setup.config
    pruner = Pruner(setup.model, "layerwise", config.include_classifier)
    names = layers or pruner.names
    unknown = [n for n in names if n not in pruner.names]
    if unknown:
        raise PrunelabError(
            f"unknown layer(s): {', '.join(unknown)}; prunable layers are e.g. {', '.join(pruner.names[:5])}"
        )
    run_dir, record = start_run_folder(setup, "sensitivity")
    announce(setup, "sensitivity", run_dir, on_event)
    levels = [level for level in config.levels if level > 0]
    evaluator = Evaluator(setup, pruner, stop)
    try:
        baseline = evaluator.run_eval().accuracy
    except Stopped:
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
                except Stopped:
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
        finish_failed(record, run_dir, "sensitivity", str(exc) or type(exc).__name__, on_event)
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

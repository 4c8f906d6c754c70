"""Operations on past runs: resume one, export a level of a sweep or a fine-tuned model.

The front ends call these instead of rebuilding a run's settings themselves, so the CLI and the
app cannot disagree about what a run folder means.

What can be resumed (one rule): a run that did not complete (stopped, failed, or interrupted:
still marked running but its process was killed) of a kind listed in `RESUMERS`, keeping that kind's
semantics (a `find` run goes on as a find: it still stops at the first level outside the
tolerance). A new resumable kind adds one entry to `RESUMERS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import SweepConfig
from engine.errors import ConfigError, PrunelabError
from engine.events import EventCallback, Notice, StopSignal, no_events
from engine.export.config import ExportConfig
from engine.methods import mask_settings
from engine.runs.lifecycle import RunInfo, read_run_info
from engine.runs.record import SWEEP_KINDS, source_warning
from engine.runs.summaries import FinetuneSummary, TrainSummary

if TYPE_CHECKING:  # torch: only when something is exported or resumed, so listing stays light
    from engine.export.writer import ExportResult

# Settings of the machine, not of the run: a resumed run may use another device.
DEVICE_SETTINGS = ("device", "precision", "channels_last", "eval_batch_size", "data_dir")
TRAINING_KINDS = ("train", "finetune")  # they go on from a checkpoint
RESUMABLE_STATUSES = ("stopped", "failed", "interrupted")


def _resume_sweep(info: RunInfo, on_event: EventCallback, stop: StopSignal, **device: Any) -> Any:
    from engine.sweep.run import resume_sweep

    return resume_sweep(info.path, on_event, stop, **device)


def resume_checkpoint(info: RunInfo) -> str:
    """The checkpoint a training-loop run (train, finetune) goes on from: the one its summary
    names, or, for a run killed before it could write one, the last one it recorded writing."""
    checkpoint = info.summary.checkpoint if isinstance(info.summary, TrainSummary) else None
    if not checkpoint and info.record.checkpoints:
        checkpoint = list(info.record.checkpoints)[-1]
    if not checkpoint or not Path(checkpoint).is_file():
        raise PrunelabError(
            f"cannot resume {info.path}: it wrote no checkpoint to continue from"
            + (f" ({checkpoint} is gone)" if checkpoint else "")
        )
    return checkpoint


def _resume_train(info: RunInfo, on_event: EventCallback, stop: StopSignal, **device: Any) -> Any:
    from engine.training.train import resume_config, train

    checkpoint = resume_checkpoint(info)
    config = resume_config(checkpoint, **device)
    return train(config, on_event, stop, resume=checkpoint)


def _resume_finetune(
    info: RunInfo, on_event: EventCallback, stop: StopSignal, **device: Any
) -> Any:
    from engine.training.finetune import finetune, finetune_resume_config

    checkpoint = resume_checkpoint(info)
    config = finetune_resume_config(checkpoint, **device)
    return finetune(config, on_event, stop, resume=checkpoint)


RESUMERS: dict[str, Callable[..., Any]] = {
    "train": _resume_train,
    "finetune": _resume_finetune,
    "sweep": _resume_sweep,
    "find": _resume_sweep,
}


def why_not_resumable(info: RunInfo) -> str | None:
    """None when `resume_run` can continue this run, else the one-line reason."""
    if info.kind not in RESUMERS:
        return f"a {info.kind} run cannot be resumed; start it again"
    status = info.record.status
    if status == "completed" and not _needs_repair(info):
        return f"{info.path.name} already completed"
    if status == "running":  # its writer lives (a dead one's run reads interrupted)
        return f"{info.path.name} is still running (PID {info.record.pid}); stop it first"
    if status not in (*RESUMABLE_STATUSES, "completed"):  # damaged, unknown
        return f"{info.path.name} is {status}" + (f": {info.damage}" if info.damage else "")
    if info.kind in TRAINING_KINDS:
        try:
            resume_checkpoint(info)
        except PrunelabError as exc:
            return str(exc).removeprefix(f"cannot resume {info.path}: ")
    return None


def _needs_repair(info: RunInfo) -> bool:
    """A completed sweep whose sweep.jsonl lost a level (a torn or damaged line): resuming it
    computes that level again and rewrites the file with valid lines only."""
    if info.kind not in SWEEP_KINDS:
        return False
    from engine.sweep.store import points_from_jsonl  # numpy: only for sweeps

    return bool(points_from_jsonl(info.path)[1])


def resume_run(
    path: str | Path, on_event: EventCallback = no_events, stop: StopSignal = None, **device: Any
) -> Any:
    """Continue an interrupted run with its own settings (only `DEVICE_SETTINGS` may change).

    Returns what the kind's entry point returns (a SweepResult, a TrainResult)."""
    unknown = set(device) - set(DEVICE_SETTINGS)
    if unknown:
        raise PrunelabError(f"a resumed run keeps its settings; cannot change {sorted(unknown)}")
    info = read_run_info(path)
    reason = why_not_resumable(info)
    if reason is not None:
        raise PrunelabError(f"cannot resume {info.path}: {reason}")
    return RESUMERS[info.kind](info, on_event, stop, **device)


EXPORTABLE_KINDS = (*SWEEP_KINDS, "finetune")  # run folders `export` takes a level from


def export_config_from_run(
    path: str | Path,
    level: float | None = None,
    fmt: str | None = None,
    output: str = "",
    **run: str,
) -> ExportConfig:
    """The export of a run's pruned model (`run`: its name and note, `--name`/`--note`).

    A sweep or find run: `level` (its best level when None) pruned exactly as the sweep pruned
    it: its checkpoint, method, score (and seed), classifier choice, minimum density and model.
    A fine-tuning run: its last checkpoint at its own level. Its pruned weights are exactly 0, so
    pruning it again by magnitude with its method picks those same weights, whatever score
    chose them first; the file holds the fine-tuned weights as they are."""
    info = read_run_info(path)
    if info.kind not in EXPORTABLE_KINDS:
        raise PrunelabError(
            f"{info.path} is a {info.kind} run; export a level of a sweep or a fine-tuning run"
        )
    if info.kind == "finetune":
        config = _finetune_export(info, level, output)
    else:
        saved = saved_sweep_config(info.path)
        if level is None:
            level = getattr(info.summary, "best_level_percent", None) or 0.0
        config = ExportConfig(
            checkpoint=saved.checkpoint,
            level=level,
            **mask_settings(saved),
            model=info.record.model if saved.model == "auto" else saved.model,
            output=output,
            run_dir=str(info.path.parent),
            allow_nonfinite=saved.allow_nonfinite,
        )
    config = dataclasses.replace(config, **run)
    config = config if fmt is None else dataclasses.replace(config, format=fmt)
    # what the run's file decides is the file's problem, not an option typed wrong
    typed = ("level", "format", "output", "name", "note")
    damaged = [p for p in config.problems() if p.field not in typed]
    if damaged:
        raise PrunelabError(
            f"{info.path / 'config.json'} is damaged: {damaged[0].field} {damaged[0].message}"
        )
    return config


def saved_sweep_config(run_dir: Path) -> SweepConfig:
    """A sweep run's config.json; a damaged one is a PrunelabError naming the file."""
    from engine.sweep.store import saved_config  # numpy: only when exporting

    return saved_config(run_dir)


def _finetune_export(info: RunInfo, level: float | None, output: str) -> ExportConfig:
    """A fine-tuning run's export (see `export_config_from_run`)."""
    summary = info.summary
    if not isinstance(summary, FinetuneSummary) or not summary.method:
        raise PrunelabError(f"{info.path} did not finish pruning; nothing to export")
    if level is not None and level != summary.level_percent:
        raise ConfigError(
            "level",
            f"{info.path.name} fine-tuned {summary.level_percent:g}% pruned weights; "
            f"its model exports at that level only (not {level:g})",
        )
    checkpoint = resume_checkpoint(info)
    saved = info.record.config
    return ExportConfig(
        checkpoint=checkpoint,
        level=summary.level_percent,
        method=summary.method,
        score="l1",  # the zeros themselves: see export_config_from_run
        include_classifier=bool(saved.get("include_classifier", False)),
        min_density=float(saved.get("min_density", 0.0)),
        model=info.record.model,
        output=output,
        run_dir=str(info.path.parent),
    )


def export_from_run(
    path: str | Path,
    level: float | None = None,
    fmt: str | None = None,
    *,
    output: str = "",
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    **run: str,
) -> ExportResult:
    """Export the pruned model of the run at `path` (see `export_config_from_run`); a gradient
    sweep's score is taken on its own training batch (its data settings, on the CPU)."""
    from engine.export.writer import export_pruned
    from engine.pruning.scores import training_batch

    config = export_config_from_run(path, level, fmt, output, **run)
    if read_run_info(path).kind == "finetune":
        return export_pruned(config, on_event, stop)
    changed = source_warning(path, config.checkpoint)
    if changed:
        on_event(Notice(changed, "warning"))
    saved = saved_sweep_config(Path(path))
    batch = lambda: training_batch(saved, saved.batch_size)  # noqa: E731 - read when needed
    return export_pruned(config, on_event, stop, batch=batch)


def export_run_as(
    run: str | Path,
    config: ExportConfig,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
) -> ExportResult:
    """`export_from_run` with the level, format, output, name and note of `config`: what the
    CLI's `export RUN` and the app's export dialog both build."""
    return export_from_run(
        run,
        config.level,
        config.format,
        output=config.output,
        on_event=on_event,
        stop=stop,
        name=config.name,
        note=config.note,
    )

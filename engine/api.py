"""The Python API: prunelab's questions asked of a network and data you hold in memory.

    from engine import api
    result = api.sweep(model, test_set, levels="0:90:10", method="global", run_dir="runs")
    print(result.best_level_percent, result.points[3].accuracy_ci95)

`model` is any `nn.Module` (it is copied: yours is never changed); data is a Dataset of
(image, label), a DataLoader of (images, labels) batches or an (images, labels) pair of tensors.
Float images are taken as the model's input as they are (your transforms already normalised
them); uint8 (N, 3, H, W) images are normalised by `normalization=` like the CLI's data.

Each call runs the engine function the CLI runs (the same config dataclasses, the same checks:
a bad value raises engine.errors.ConfigError naming the option) and returns the result the CLI
prints: SweepResult (points with 95% intervals, the answer, costs), FinetuneResult,
ExportResult. With `run_dir=` the run folder is written there, so `prunelab runs`, `report` and
the app show it; without it the run lives in a temporary folder that is removed afterwards
(`result.run_dir` is then ""). `progress=True` prints one line per level or epoch (plain print:
works in Jupyter, no tqdm); a callable gets every engine event (engine.events).
Any other keyword is a config field of the matching command (SweepConfig, FinetuneConfig,
ExportConfig), e.g. `tolerance=0.5, latency_batch=64, include_classifier=True`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import nn

from engine.config import FIND_COARSE_STEP, SweepConfig
from engine.data import memory
from engine.errors import ConfigError
from engine.events import EpochEnded, EventCallback, Notice, SweepPoint, no_events
from engine.export.config import ExportConfig
from engine.export.writer import ExportResult
from engine.export.writer import export_pruned as export_checkpoint
from engine.models.spec import register_module, release_module
from engine.sweep.answer import SweepResult
from engine.sweep.run import find_best, run_sweep
from engine.training.finetune import FinetuneResult
from engine.training.finetune import finetune as finetune_checkpoint
from engine.training.finetune_config import FinetuneConfig

Progress = bool | Callable[[Any], None] | None
DEFAULT_LEVELS = "0:90:10"


def sweep(
    model: nn.Module,
    test_data: Any,
    *,
    levels: str = DEFAULT_LEVELS,
    method: str = "layerwise",
    score: str = "l1",
    train_data: Any = None,
    run_dir: str | Path | None = None,
    progress: Progress = None,
    **options: Any,
) -> SweepResult:
    """Accuracy (with its 95% interval), sparsity, parameters and MACs at every level; the
    answer is the highest level within `tolerance` of the dense model (as `prunelab sweep`)."""
    with _session(model, test_data, train_data, run_dir) as (common, net):
        config = _config(SweepConfig, common, levels=levels, method=method, score=score, **options)
        result = run_sweep(config, _callback(progress), model=net)
    return _placed(result, run_dir)


def find(
    model: nn.Module,
    test_data: Any,
    *,
    method: str = "layerwise",
    coarse_step: float = FIND_COARSE_STEP,
    train_data: Any = None,
    run_dir: str | Path | None = None,
    progress: Progress = None,
    **options: Any,
) -> SweepResult:
    """The best level alone: scan by `coarse_step`, then bisect to `resolution` (as `prunelab
    find`); `target_speedup=S` answers in measured speed instead."""
    with _session(model, test_data, train_data, run_dir) as (common, net):
        config = _config(SweepConfig, common, method=method, **options)
        result = find_best(config, _callback(progress), coarse_step=coarse_step, model=net)
    return _placed(result, run_dir)


def finetune(
    model: nn.Module,
    train_data: Any,
    test_data: Any,
    *,
    level: float = 70.0,
    method: str = "layerwise",
    epochs: int = 1,
    run_dir: str | Path | None = None,
    progress: Progress = None,
    **options: Any,
) -> FinetuneResult:
    """Prune once to `level`, then train with the mask fixed (as `prunelab finetune`): dense,
    one-shot and recovered accuracy. The fine-tuned weights are in `result.checkpoint` (give
    `run_dir=` to keep them)."""
    with _session(model, test_data, train_data, run_dir) as (common, net):
        source = _weights_file(net, common)
        config = _config(
            FinetuneConfig,
            common,
            checkpoint=source,
            level=level,
            method=method,
            epochs=epochs,
            checkpoint_dir=str(Path(common["run_dir"]) / "checkpoints"),
            **options,
        )
        result = finetune_checkpoint(config, _callback(progress))
    return _placed(result, run_dir)


def export(
    model: nn.Module,
    output: str | Path,
    *,
    level: float,
    method: str = "layerwise",
    format: str = "sparse",
    run_dir: str | Path | None = None,
    progress: Progress = None,
    **options: Any,
) -> ExportResult:
    """Write the model pruned to `level` as a really smaller file (as `prunelab export`): the
    sparse format, dense zeros, slim (channels removed) or ONNX."""
    with _session(model, None, None, run_dir) as (common, net):
        common = {k: common[k] for k in ("model", "run_dir")}
        config = _config(
            ExportConfig,
            common,
            checkpoint=_weights_file(net, common),
            level=level,
            method=method,
            format=format,
            output=str(output),
            **options,
        )
        result = export_checkpoint(config, _callback(progress))
    return _placed(result, run_dir)


@contextlib.contextmanager
def _session(
    model: nn.Module, test_data: Any, train_data: Any, run_dir: str | Path | None
) -> Iterator[tuple[dict[str, Any], nn.Module]]:
    """The model and data registered for the engine (and released after), the run folder's
    root (a temporary one when none is given), the settings every command shares."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    net = _copy(model)
    key = register_module(net)
    data_key = memory.register(test_data, train_data) if test_data is not None else None
    temporary = tempfile.TemporaryDirectory(prefix="prunelab-api-") if run_dir is None else None
    root = temporary.name if temporary is not None else str(run_dir)
    common: dict[str, Any] = {"model": key, "run_dir": root, "device": "cpu"}
    if data_key is not None:
        common.update(dataset=memory.MEMORY, data_dir=data_key)
    try:
        yield common, net
    finally:
        release_module(key)
        if data_key is not None:
            memory.release(data_key)
        if temporary is not None:
            temporary.cleanup()


def _copy(model: nn.Module) -> nn.Module:
    """A CPU copy in eval mode: pruning and training never touch the caller's module."""
    import copy

    return copy.deepcopy(model).cpu().eval()


def _config(cls: type, common: dict[str, Any], **values: Any) -> Any:
    """The command's config from the call's keywords; invalid values raise ConfigError."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TypeError(f"unknown option(s) for {cls.__name__}: {', '.join(unknown)}")
    given = {k: v for k, v in common.items() if k in names}
    if "levels" in values and isinstance(values["levels"], str):
        from engine.options import parse_levels

        try:
            values["levels"] = parse_levels(values["levels"])
        except ValueError as exc:
            raise ConfigError("levels", str(exc)) from None
    if cls is SweepConfig and "checkpoint" not in values:
        values["checkpoint"] = "(in memory)"
    config = cls(**{**given, **values})
    config.validate()
    return config


def _weights_file(net: nn.Module, common: dict[str, Any]) -> str:
    """The model's weights as a checkpoint the commands read (in the run folder's root)."""
    from engine.checkpoints.io import write_checkpoint

    folder = Path(common["run_dir"]) / ".api"
    path = folder / f"{common['model'].replace(':', '-')}.pth"
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    write_checkpoint(path, {"net": state, "model": common["model"]})
    return str(path)


def _placed(result: Any, run_dir: str | Path | None) -> Any:
    """A result whose run folder was temporary says so (run_dir ""), not a removed path."""
    if run_dir is None and hasattr(result, "run_dir"):
        gone = {"run_dir": ""} | ({"checkpoint": None} if hasattr(result, "checkpoint") else {})
        return dataclasses.replace(result, **gone)
    return result


def _callback(progress: Progress) -> EventCallback:
    if callable(progress):
        return progress
    return print_progress if progress else no_events


def print_progress(event: Any) -> None:
    """One plain line per evaluated level or finished epoch, and every warning."""
    if isinstance(event, SweepPoint) and event.accuracy is not None:
        low, high = event.accuracy_ci95 or (event.accuracy, event.accuracy)
        print(
            f"level {event.level_percent:g}%: {event.accuracy:.2f}% (95% {low:.1f}-{high:.1f})",
            flush=True,
        )
    elif isinstance(event, EpochEnded):
        print(f"epoch {event.epoch}: test {event.test_acc:.2f}%", flush=True)
    elif isinstance(event, Notice) and event.level == "warning":
        print(f"warning: {event.text}", flush=True)


__all__ = ["export", "find", "finetune", "print_progress", "sweep"]

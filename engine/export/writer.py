"""Export a pruned model that is really smaller, and say by how much.

`torch.nn.utils.prune` leaves `weight_orig` + `weight_mask` behind, so a "pruned" checkpoint is
twice the size of the dense one. Our Pruner writes zeros into plain weights, so the dense export
is the plain architecture's state dict (loads into the seed's code too), and the compact export
(`engine.checkpoints.sparse_format`) stores only a compressed bitmask and the kept values. Both are
checkpoints every prunelab command accepts. The slim export (`engine.pruning.slim`, structured only) takes
the removed channels physically out: fewer parameters and MACs, and a faster network; the file
records the channel spec that rebuilds it. The ONNX export (`engine.export.onnx_graph`, the `[onnx]`
extra) writes the network the level runs (slim when channels are dead) as a graph checked against
PyTorch's logits; it is for other runtimes, not a checkpoint prunelab reads.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from engine.checkpoints import sparse_format
from engine.checkpoints.io import check_finite, load_state, read_checkpoint, write_checkpoint
from engine.errors import CheckpointError, ConfigError
from engine.events import EventCallback, StopSignal, no_events
from engine.export.config import ExportConfig, output_path, read_only_note
from engine.measure.cost import alive_channels
from engine.models.resnets import count_parameters
from engine.models.spec import build_for_state
from engine.pruning.graph import check_slim
from engine.pruning.graph_files import GRAPH_SLIM_FORMAT, kept_from_removed
from engine.pruning.group_pruner import GroupPruner
from engine.pruning.pruner import make_pruner, measure_sparsity
from engine.pruning.scores import Batch, ScoreInputs, make_score, needs_batch
from engine.pruning.slim import SLIM_FORMAT, kept_channels, slim_model
from engine.runs.lifecycle import Run
from engine.runs.summaries import ExportSummary


@dataclass
class ExportResult:
    path: str
    format: str
    level_percent: float
    method: str
    sparsity_percent: float  # measured zeros among the prunable weights
    dense_parameter_bytes: int  # every tensor stored densely
    nonzero_bytes: int  # the nonzero values alone: what no encoding can go below
    sparse_encoded_bytes: int  # compressed bitmasks + kept values + the small dense tensors
    file_bytes: int  # the file written, as on disk
    dense_file_bytes: int  # the same model saved as a dense checkpoint file
    parameters: int = 0  # parameters of the network in the file (fewer for slim)
    dense_parameters: int = 0  # parameters of the dense architecture
    onnx_max_abs_diff: float | None = None  # onnx: ONNX Runtime's logits against PyTorch's
    status: str = "completed"  # or "stopped": nothing was written
    score: str = "l1"  # what ranked the weights

    @property
    def ratio(self) -> float:
        """file size as a fraction of the dense checkpoint file."""
        return self.file_bytes / max(self.dense_file_bytes, 1)


def _stopped(config: ExportConfig, sparsity_percent: float) -> ExportResult:
    """What a stop before the file is written returns: nothing written, no sizes."""
    return ExportResult(
        "",
        config.format,
        config.level,
        config.method,
        sparsity_percent,
        0,
        0,
        0,
        0,
        0,
        status="stopped",
        score=config.score,
    )


def export_pruned(
    config: ExportConfig,
    on_event: EventCallback = no_events,
    stop: StopSignal = None,
    *,
    batch: Callable[[], Batch] | None = None,
) -> ExportResult:
    """Prune `config.checkpoint` to `config.level` (percent of weights removed) and write it.

    A run of kind "export" under `config.run_dir`, like every other run: started and finished
    events, failures recorded; a stop before the file is written leaves no file. The gradient
    score needs `batch` (one training batch on the CPU): `engine.operations.export_from_run`
    gives the sweep's own."""
    config.validate()
    if needs_batch(config.score) and batch is None:
        raise ConfigError(
            "score",
            f"{config.score} needs a batch of the training split, which export does not read; "
            "export a level of a gradient sweep instead (prunelab export RUN --level L, "
            "or e on the app's Runs screen)",
        )
    path = output_path(config)
    if path.resolve() == Path(config.checkpoint).resolve():
        raise ConfigError(
            "output", f"{path} is the checkpoint being exported; write to another file"
        )
    source = read_checkpoint(config.checkpoint)
    if not config.allow_nonfinite:  # the rule sweep, find and finetune apply (one function)
        check_finite(source.state_dict, config.checkpoint)
    name = source.model if config.model == "auto" else config.model
    if name is None:
        raise CheckpointError(
            f"cannot tell which architecture {config.checkpoint} holds; pass --model"
        )
    net = build_for_state(name, source.state_dict)
    load_state(net, source, str(config.checkpoint))
    run = Run("export", on_event, stop)
    run.open(
        config.run_dir,
        model=name,
        config=config.to_dict(),
        device="cpu",
        data="",
        synthetic=False,
    )
    run.start(parameters=count_parameters(net))
    if read_only_note(config):
        run.notice(read_only_note(config), "warning")
    with run.guard():
        score = make_score(config.score, ScoreInputs(config.seed, batch))
        result = _export(config, name, source, net, run, score)
    run.finish(result.status, ExportSummary.from_dict({**asdict(result), "ratio": result.ratio}))
    return result


def _export(
    config: ExportConfig, name: str, source: Any, net: torch.nn.Module, run: Run, score: Any
) -> ExportResult:
    pruner = make_pruner(net, config.method, config.include_classifier, config.min_density, score)
    pruner.set_level(config.level)
    sparsity = measure_sparsity(net, pruner.layers)
    if run.stop_requested():
        return _stopped(config, sparsity.percent)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    meta = _metadata(config, name, source, sparsity.percent)
    dense_payload = {"net": state, **meta}
    encoded = sparse_format.encode_state_dict(state)
    network, payload = _written(config.format, pruner, net, state, encoded, meta)
    if run.stop_requested():
        return _stopped(config, sparsity.percent)
    path = output_path(config, fallback=run.dir)
    onnx_diff = None
    if payload is None:
        from engine.export.onnx_graph import write_onnx  # the [onnx] extra, checked by validate()

        onnx_diff = write_onnx(network, path)
        run.notice(f"wrote {path}: ONNX Runtime's logits within {onnx_diff:.1e} of PyTorch's")
    else:
        write_checkpoint(path, payload)
        run.notice(f"wrote {path}")
    tensors = list(state.values())
    fmt = config.format
    return ExportResult(
        path=str(path),
        format=fmt,
        level_percent=config.level,
        method=config.method,
        sparsity_percent=sparsity.percent,
        dense_parameter_bytes=sum(t.numel() * t.element_size() for t in tensors),
        nonzero_bytes=sum(int(torch.count_nonzero(t)) * t.element_size() for t in tensors),
        sparse_encoded_bytes=sum(sparse_format.encoded_bytes(e) for e in encoded["sparse"].values())
        + sum(sparse_format.encoded_bytes(t) for t in encoded["dense"].values()),
        file_bytes=path.stat().st_size,
        dense_file_bytes=path.stat().st_size if fmt == "dense" else _saved_size(dense_payload),
        parameters=count_parameters(network),
        dense_parameters=count_parameters(net),
        onnx_max_abs_diff=onnx_diff,
        score=config.score,
    )


def _metadata(config: ExportConfig, name: str, source: Any, sparsity: float) -> dict[str, Any]:
    """What every exported file says about itself: the model, and how it was pruned from what."""
    meta: dict[str, Any] = {
        "epoch": source.epoch,
        "model": name,
        "normalization": source.normalization or "cifar",
        "pruning": {
            "level_percent": config.level,
            "method": config.method,
            "score": config.score,
            "seed": config.seed,
            "include_classifier": config.include_classifier,
            "min_density": config.min_density,
            "sparsity_percent": sparsity,
            "source": str(config.checkpoint),
        },
    }
    if "config" in source.extra:
        meta["config"] = source.extra["config"]
    return meta


def _written(fmt: str, pruner, net, state, encoded, meta) -> tuple[torch.nn.Module, dict | None]:
    """The network the file holds (the slim one for slim and channel-method ONNX) and the
    payload to save (None for ONNX, which is written by its own exporter)."""
    graph = isinstance(pruner, GroupPruner)  # any model but the shipped ResNets
    if fmt == "onnx":
        spec = None if graph else alive_channels(net)
        network = pruner.slim() if graph else net if spec is None else slim_model(net, spec)
        if network is not net:
            check_slim(net, network)  # the slim network computes the masked one's logits
        return network, None
    if fmt == "slim":
        slim = pruner.slim() if graph else slim_model(net)
        check_slim(net, slim)  # before it is saved
        slim_state = {k: v.detach().contiguous() for k, v in slim.state_dict().items()}
        channels = kept_from_removed(net, pruner.removed()) if graph else kept_channels(net)
        kind = GRAPH_SLIM_FORMAT if graph else SLIM_FORMAT
        return slim, {"format": kind, "channels": channels, "net": slim_state, **meta}
    return net, {**encoded, **meta} if fmt == "sparse" else {"net": state, **meta}


def _saved_size(payload: dict[str, Any]) -> int:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.tell()

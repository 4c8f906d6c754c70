"""Export a pruned model that is really smaller, and say by how much.

`torch.nn.utils.prune` leaves `weight_orig` + `weight_mask` behind, so a "pruned" checkpoint is
twice the size of the dense one. Our Pruner writes zeros into plain weights, so the dense export
is the plain architecture's state dict (loads into the seed's code too), and the compact export
(`engine.sparse_format`) stores only a compressed bitmask and the kept values. Both are
checkpoints every prunelab command accepts. The slim export (`engine.slim`, structured only) takes
the removed channels physically out: fewer parameters and MACs, and a faster network; the file
records the channel spec that rebuilds it.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from engine import sparse_format
from engine.checkpoints import load_state, read_checkpoint, write_checkpoint
from engine.config import EXPORT_FORMATS, METHODS
from engine.errors import CheckpointError, ConfigError
from engine.models import build_model, count_parameters
from engine.options import parse_levels
from engine.pruning import Pruner, measure_sparsity
from engine.runs import now_iso, start_run
from engine.slim import SLIM_FORMAT, kept_channels, slim_model

FORMATS = EXPORT_FORMATS


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

    @property
    def ratio(self) -> float:
        """file size as a fraction of the dense checkpoint file."""
        return self.file_bytes / max(self.dense_file_bytes, 1)


def default_output(checkpoint: str | Path, level_percent: float, method: str, fmt: str) -> Path:
    """Beside the input: `<stem>_<method><level>.<fmt>.pth`."""
    path = Path(checkpoint)
    stem = path.name.removesuffix(".pth").removesuffix(".pt")
    return path.with_name(f"{stem}_{method}{level_percent:g}.{fmt}.pth")


def export_pruned(
    checkpoint: str | Path,
    level_percent: float,
    *,
    method: str = "layerwise",
    include_classifier: bool = False,
    fmt: str = FORMATS[0],
    output: str | Path | None = None,
    model: str | None = None,
    min_density: float = 0.0,
    run_dir: str | Path | None = None,
) -> ExportResult:
    """Prune `checkpoint` to `level_percent` (percent of weights removed) and write it.

    With `run_dir` (the runs root, e.g. "runs") the export is also recorded there as a run of
    kind "export", like every training run and sweep."""
    try:
        parse_levels([level_percent])  # the one rule for what a level may be
    except ValueError as exc:
        raise ConfigError("level", str(exc)) from None
    if method not in METHODS:
        raise ConfigError("method", f"{method!r} is not allowed; one of {', '.join(METHODS)}")
    if fmt not in FORMATS:
        raise ConfigError("format", f"{fmt!r} is not allowed; one of {', '.join(FORMATS)}")
    if fmt == "slim" and method != "structured":
        raise ConfigError("format", "slim removes whole channels: it needs --method structured")
    path = Path(output) if output else default_output(checkpoint, level_percent, method, fmt)
    if path.resolve() == Path(checkpoint).resolve():
        raise ConfigError(
            "output", f"{path} is the checkpoint being exported; write to another file"
        )
    source = read_checkpoint(checkpoint)
    name = model or source.model
    if name is None:
        raise CheckpointError(f"cannot tell which architecture {checkpoint} holds; pass --model")
    net = build_model(name)
    load_state(net, source.state_dict, str(checkpoint))
    pruner = Pruner(net, method, include_classifier, min_density)
    pruner.set_level(level_percent)
    sparsity = measure_sparsity(net, pruner.layers)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    meta: dict[str, Any] = {
        "epoch": source.epoch,
        "model": name,
        "normalization": source.normalization or "cifar",
        "pruning": {
            "level_percent": level_percent,
            "method": method,
            "include_classifier": include_classifier,
            "sparsity_percent": sparsity.percent,
            "source": str(checkpoint),
        },
    }
    if "config" in source.extra:
        meta["config"] = source.extra["config"]
    dense_payload = {"net": state, **meta}
    encoded = sparse_format.encode_state_dict(state)
    parameters = count_parameters(net)
    if fmt == "slim":
        slim = slim_model(net)
        parameters = count_parameters(slim)
        slim_state = {k: v.detach().contiguous() for k, v in slim.state_dict().items()}
        payload = {"format": SLIM_FORMAT, "channels": kept_channels(net), "net": slim_state, **meta}
    else:
        payload = {**encoded, **meta} if fmt == "sparse" else dense_payload
    write_checkpoint(path, payload)
    tensors = list(state.values())
    result = ExportResult(
        path=str(path),
        format=fmt,
        level_percent=level_percent,
        method=method,
        sparsity_percent=sparsity.percent,
        dense_parameter_bytes=sum(t.numel() * t.element_size() for t in tensors),
        nonzero_bytes=sum(int(torch.count_nonzero(t)) * t.element_size() for t in tensors),
        sparse_encoded_bytes=sum(sparse_format.encoded_bytes(e) for e in encoded["sparse"].values())
        + sum(sparse_format.encoded_bytes(t) for t in encoded["dense"].values()),
        file_bytes=path.stat().st_size,
        dense_file_bytes=path.stat().st_size if fmt == "dense" else _saved_size(dense_payload),
        parameters=parameters,
        dense_parameters=count_parameters(net),
    )
    if run_dir is not None:
        _record(run_dir, name, str(checkpoint), result, include_classifier)
    return result


def _record(
    root: str | Path, model: str, checkpoint: str, result: ExportResult, include_classifier: bool
) -> None:
    settings = {
        "checkpoint": checkpoint,
        "output": result.path,
        "level_percent": result.level_percent,
        "method": result.method,
        "format": result.format,
        "include_classifier": include_classifier,
    }
    run, record = start_run(root, "export", model, settings, device="cpu", data="", synthetic=False)
    record.status, record.finished = "completed", now_iso()
    record.summary = {**asdict(result), "ratio": result.ratio}
    record.save(run)


def _saved_size(payload: dict[str, Any]) -> int:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.tell()

"""Per-layer sparsity of a checkpoint pruned at one level: which layers a method empties.

Only counts are computed (no evaluation, no data): the pruner's per-layer counts at the level,
as a percent of each layer's prunable units (weights, or filters for structured pruning).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.checkpoints import load_state, read_checkpoint
from engine.errors import CheckpointError
from engine.models import build_model
from engine.pruning import Pruner


@dataclass(frozen=True)
class LayerSparsity:
    name: str
    weights: int  # prunable weights in the layer
    percent: float  # of the layer's prunable units removed at the level


def layer_sparsity(
    checkpoint: str | Path,
    level_percent: float,
    *,
    method: str = "layerwise",
    include_classifier: bool = False,
    model: str | None = None,
    min_density: float = 0.0,
) -> list[LayerSparsity]:
    """Each prunable layer of `checkpoint` and the share of it `method` removes at the level."""
    source = read_checkpoint(checkpoint)
    name = model if model not in (None, "", "auto") else source.model
    if name is None:
        raise CheckpointError(f"cannot tell which architecture {checkpoint} holds; set model")
    net = build_model(name)
    load_state(net, source.state_dict, str(checkpoint))
    pruner = Pruner(net, method, include_classifier, min_density)
    counts = pruner.counts_for(level_percent)
    units = pruner._units  # weights per layer, or filters for structured pruning
    return [
        LayerSparsity(layer, int(weight.numel()), 100.0 * count / max(total, 1))
        for layer, weight, count, total in zip(
            pruner.names, pruner.dense, counts, units, strict=True
        )
    ]

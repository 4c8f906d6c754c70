"""Per-layer sparsity of a checkpoint pruned at one level: which layers a method empties.

Only counts are computed (no evaluation, no data): the pruner's per-layer counts at the level,
as a percent of each layer's prunable units (weights, or filters for structured pruning).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.checkpoints.info import recorded_data
from engine.checkpoints.io import load_state, read_checkpoint
from engine.checkpoints.source import resolve_data
from engine.config import DataOptions
from engine.errors import CheckpointError, PrunelabError
from engine.events import no_events
from engine.models.spec import build_for_state
from engine.pruning.group_pruner import GroupPruner
from engine.pruning.pruner import make_pruner
from engine.pruning.scores import ScoreInputs, make_score, needs_batch, training_batch


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
    score: str = "l1",
    seed: int = 0,
    data: DataOptions | None = None,
) -> list[LayerSparsity]:
    """Each prunable layer of `checkpoint` and the share of it `method` removes at the level.

    Only a global ranking's per-layer counts depend on the score; a global gradient ranking
    takes its batch as `data` (a sweep's config, with `batch_size`) says."""
    source = read_checkpoint(checkpoint)
    name = model if model not in (None, "", "auto") else source.model
    if name is None:
        raise CheckpointError(f"cannot tell which architecture {checkpoint} holds; set model")
    net = build_for_state(name, source.state_dict)
    load_state(net, source, str(checkpoint))
    if method != "global" and score != "group":
        score = "l1"  # per layer or per filter, the counts are round(level x units) whatever ranks
    batch = None
    if needs_batch(score):
        if data is None:
            raise PrunelabError(f"the per-layer view of a {score} ranking needs the sweep's data")
        options = resolve_data(data, recorded_data(source), no_events)
        batch = lambda: training_batch(options, getattr(options, "batch_size", 128))  # noqa: E731
    pruner = make_pruner(
        net, method, include_classifier, min_density, make_score(score, ScoreInputs(seed, batch))
    )
    if isinstance(pruner, GroupPruner):  # channels of groups: count the zeros they leave
        pruner.set_level(level_percent)
        per_layer = pruner.sparsity().per_layer
        return [LayerSparsity(n, int(m.weight.numel()), per_layer[n]) for n, m in pruner.layers]
    counts = pruner.counts_for(level_percent)
    units = pruner._units  # weights per layer, or filters for structured pruning
    return [
        LayerSparsity(layer, int(weight.numel()), 100.0 * count / max(total, 1))
        for layer, weight, count, total in zip(
            pruner.names, pruner.dense, counts, units, strict=True
        )
    ]

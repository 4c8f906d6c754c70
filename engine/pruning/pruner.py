"""Pruning with nested masks: score once, rank once, move between levels in place.

A `Pruner` ranks the prunable weights once by a score (engine.pruning.scores: |w| by default, random, or
|w * dL/dw|), per layer, globally, or whole filters by the sum of their weights' scores, and sets
any level by zeroing, or restoring from its dense copy, only the weights between the current and
the requested rank. Levels are absolute: a percent of the ORIGINAL prunable weights, never of
what remains. The masks equal `torch.nn.utils.prune`'s (with `importance_scores` = the score for
scores other than l1):

- layerwise: every tensor loses `round(level * numel)` smallest |w| (`prune.l1_unstructured`);
- global: one ranking over all tensors (`prune.global_unstructured(..., L1Unstructured)`);
- structured: every tensor loses `round(level * out_channels)` filters of smallest L1 norm
  (`prune.ln_structured(n=1, dim=0)`), and each removed filter's BatchNorm channel loses its
  scale and shift too. Without that the channel would still emit `relu(beta - gamma*mean/std)`;
  with it the channel emits exactly 0, so the evaluated network is the one `engine.pruning.slim`
  builds by taking the channels out.
- coupled: as structured, but the convs that write one residual stream rank their filters by the
  group's summed scores, so each channel goes from all of them at once (engine.pruning.coupling) and the
  slim network's residual stream narrows. torch has no equivalent.
- internal: as structured, only the convs inside a block (every residual stream, the stem and
  the classifier stay whole).

This class serves the shipped ResNets and the weight methods on any model; the channel methods
on any other model go through its dependency groups (engine.pruning.group_pruner, `make_pruner`
picks).

No pruning hooks or `weight_orig`/`weight_mask` are ever attached: the weights themselves hold
the zeros, so a pruned model is a plain model that saves and loads as one.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

import torch
from torch import nn

from engine.methods import CHANNEL_METHODS, GROUP_SCORE, INTERNAL, METHODS
from engine.pruning.coupling import block_internal_convs, coupled_filter_scores, group_filter_scores
from engine.pruning.scores import L1Score, Score
from engine.pruning.slim import norm_after, norm_name

PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


# What a method's zeros do NOT buy, said wherever its results are shown.
METHOD_CAVEATS = {
    method: "the network with those channels removed; export --format slim writes it"
    for method in CHANNEL_METHODS
}


def prunable_layers(
    model: nn.Module, include_classifier: bool = False
) -> list[tuple[str, nn.Module]]:
    """Conv2d and Linear modules in definition order; the classifier (last Linear) is spared
    unless `include_classifier` (the seed's code pruned it by accident)."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]
    linears = [n for n, m in layers if isinstance(m, nn.Linear)]
    if not include_classifier and linears:
        classifier = linears[-1]
        layers = [(n, m) for n, m in layers if n != classifier]
    return layers


def make_pruner(
    model: nn.Module,
    method: str = "layerwise",
    include_classifier: bool = False,
    min_density: float = 0.0,
    score: Score | None = None,
) -> Pruner:
    """The pruner for `model` and `method`: channel methods on anything but the shipped ResNets
    go through the model's dependency groups (engine.pruning.group_pruner)."""
    from engine.models.resnets import CifarResNet

    if method in CHANNEL_METHODS and not isinstance(model, CifarResNet):
        from engine.pruning.group_pruner import GroupPruner

        return GroupPruner(model, method, include_classifier, min_density, score)  # type: ignore[return-value]
    return Pruner(model, method, include_classifier, min_density, score)


def amount_to_prune(level_percent: float, size: int) -> int:
    """How many of `size` units a level removes: torch.nn.utils.prune's own rounding."""
    return min(size, round(level_percent / 100.0 * size))


class Pruner:
    """Sets absolute pruning levels on `model`'s weights in place, and restores them."""

    def __init__(
        self,
        model: nn.Module,
        method: str = "layerwise",
        include_classifier: bool = False,
        min_density: float = 0.0,
        score: Score | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")
        self.method = method
        self.filters = method in CHANNEL_METHODS  # the unit: whole filters, else single weights
        self.min_density = min_density
        self.score = score or L1Score()
        self.layers = prunable_layers(model, include_classifier)
        if method == INTERNAL:  # the streams, the stem and the classifier stay whole
            inside = set(block_internal_convs(model))
            self.layers = [(n, m) for n, m in self.layers if n in inside]
        self.weights = [module.weight for _, module in self.layers]
        self.dense = [w.detach().clone() for w in self.weights]
        self.level_percent = 0.0
        scores = self._scores(model)
        with torch.no_grad():
            units = [self._unit_scores(s) for s in scores]
            if self.score.name == GROUP_SCORE and not self.filters:
                raise ValueError("the group score ranks whole channels: use a channel method")
            if self.score.name == GROUP_SCORE:
                units = group_filter_scores(model, self.names, units, method == "coupled")
            elif method == "coupled":
                units = coupled_filter_scores(model, self.names, units)
            self._orders = [_argsort(u) for u in units]
        self._units = [len(order) for order in self._orders]
        self._pruned = [0] * len(self.layers)
        self._global_layer_of_rank: torch.Tensor | None = None
        # Structured: each filter's BatchNorm channel (scale, shift) goes with it.
        self.norms = [norm_after(model, name) if self.filters else None for name, _ in self.layers]
        self._norm_dense = [
            None if bn is None else (bn.weight.detach().clone(), bn.bias.detach().clone())
            for bn in self.norms
        ]
        if method == "global":
            self._rank_globally(scores)
        del scores
        self._count_fixed_zeros(model)

    def _scores(self, model: nn.Module) -> list[torch.Tensor]:
        """The score of every prunable weight of the dense model, laid out like the weight in
        memory (so ranking in storage order sees each weight's own score, channels_last too)."""
        scores = self.score(model, self.weights)
        if len(scores) != len(self.weights):
            raise ValueError(f"{type(self.score).__name__} scored {len(scores)} tensors")
        return [_laid_out_like(s, w) for s, w in zip(scores, self.dense, strict=True)]

    @torch.no_grad()
    def _count_fixed_zeros(self, model: nn.Module) -> None:
        """Zeros that are there before any pruning, counted once, so `sparsity()` needs no scan.

        Pruning the first k ranks of a tensor leaves k + (zeros at rank k or later) zeros; the
        ranks of the dense zeros are kept as a leading run plus the sorted rest (for l1 a zero
        ranks first, |w| = 0 being the smallest score: the run is all of them, max(k, z)). For
        filters the zeros of the kept filters are a suffix sum in rank order. Parameters the
        pruner never touches keep their count."""
        pruned_ids = {id(w) for w in self.weights}
        others = [p for p in model.parameters() if id(p) not in pruned_ids]
        counts = torch.stack(
            [torch.count_nonzero(t) for t in others] or [torch.zeros((), dtype=torch.int64)]
        )
        self._other_parameters = sum(p.numel() for p in others)
        self._other_nonzero = int(counts.sum())
        if self.filters:
            # zeros of the filters from rank r on: _kept_zeros[i][r]
            self._kept_zeros = []
            for dense, order in zip(self.dense, self._orders, strict=True):
                per_filter = (dense.flatten(1) == 0).sum(dim=1)[order]
                tail = per_filter.flip(0).cumsum(0).flip(0).tolist() + [0]
                self._kept_zeros.append(tail)
        else:
            self._zero_ranks = [
                _zero_ranks(_memory_order(dense) == 0, order)
                for dense, order in zip(self.dense, self._orders, strict=True)
            ]

    def sparsity(self) -> Sparsity:
        """The zeros of the current level, from the pruner's own counts (equal to
        `measure_sparsity`, which scans every tensor)."""
        layer_nonzero = {}
        for i, (name, _) in enumerate(self.layers):
            numel, pruned = self.dense[i].numel(), self._pruned[i]
            if self.filters:
                per_unit = numel // max(self._units[i], 1)
                zeros = pruned * per_unit + self._kept_zeros[i][pruned]
            else:
                lead, rest = self._zero_ranks[i]
                zeros = pruned + max(0, lead - pruned) + len(rest) - bisect_left(rest, pruned)
            layer_nonzero[name] = numel - zeros
        return _sparsity(self.layers, layer_nonzero, self._other_parameters, self._other_nonzero)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.layers]

    @property
    def prunable_count(self) -> int:
        return sum(w.numel() for w in self.dense)

    def _unit_scores(self, score: torch.Tensor) -> torch.Tensor:
        """The score of each pruning unit (weight, or filter) in ranking order: a filter scores
        the sum of its weights' scores (for l1 its L1 norm)."""
        if self.filters:
            return score.flatten(1).sum(dim=1)
        return _memory_order(score)

    def _rank_globally(self, scores: list[torch.Tensor]) -> None:
        """One stable ranking of all weights; per layer it agrees with the per-layer ranking,
        so a global level is just a per-layer count for each tensor."""
        everything = torch.cat([_memory_order(s) for s in scores])
        order = _argsort(everything)
        layer_of_position = torch.repeat_interleave(
            torch.arange(len(self.dense), device=everything.device),
            torch.tensor(self._units, device=everything.device),
        )
        self._global_layer_of_rank = layer_of_position[order].to(torch.int16)

    def counts_for(self, level_percent: float) -> list[int]:
        """Units to prune in each layer at `level_percent`."""
        if self.method != "global":
            return [amount_to_prune(level_percent, units) for units in self._units]
        assert self._global_layer_of_rank is not None
        k = amount_to_prune(level_percent, len(self._global_layer_of_rank))
        counts = torch.bincount(
            self._global_layer_of_rank[:k].long(), minlength=len(self.dense)
        ).tolist()
        if self.min_density > 0:
            counts = [
                min(c, units - math.ceil(self.min_density * units))
                for c, units in zip(counts, self._units, strict=True)
            ]
        return counts

    def set_level(self, level_percent: float) -> None:
        """Prune every layer to `level_percent` (absolute, of the original weights)."""
        self._apply_counts(self.counts_for(level_percent))
        self.level_percent = level_percent

    def set_layer_level(self, name: str, level_percent: float) -> None:
        """Prune only layer `name` to `level_percent`; every other layer dense (sensitivity)."""
        index = self.names.index(name)
        counts = [0] * len(self.layers)
        counts[index] = amount_to_prune(level_percent, self._units[index])
        self._apply_counts(counts)
        self.level_percent = 0.0

    @torch.no_grad()
    def _apply_counts(self, counts: list[int]) -> None:
        """Zero (or bring back) just the units between the current and the requested rank."""
        for i, target in enumerate(counts):
            current = self._pruned[i]
            if target == current:
                continue
            flat = self._units_view(self.weights[i])
            bn, saved = self.norms[i], self._norm_dense[i]
            if target > current:
                idx = self._orders[i][current:target]
                flat[idx] = 0
                if bn is not None:
                    bn.weight[idx], bn.bias[idx] = 0, 0
            else:
                idx = self._orders[i][target:current]
                flat[idx] = self._units_view(self.dense[i])[idx]
                if bn is not None and saved is not None:
                    bn.weight[idx], bn.bias[idx] = saved[0][idx], saved[1][idx]
            self._pruned[i] = target

    def _units_view(self, weight: torch.Tensor) -> torch.Tensor:
        """The weight as rows of pruning units: filters, or single weights in memory order."""
        if self.filters:
            return weight
        return _memory_order(weight)

    def restore(self) -> None:
        """Put the dense weights back exactly."""
        with torch.no_grad():
            for weight, dense in zip(self.weights, self.dense, strict=True):
                weight.copy_(dense)
            for bn, saved in zip(self.norms, self._norm_dense, strict=True):
                if bn is not None and saved is not None:
                    bn.weight.copy_(saved[0])
                    bn.bias.copy_(saved[1])
        self._pruned = [0] * len(self.layers)
        self.level_percent = 0.0

    def masks(self) -> dict[str, torch.Tensor]:
        """The current keep-masks (True = kept), shaped like each weight."""
        masks = {}
        for (name, _), dense, order, pruned in zip(
            self.layers, self.dense, self._orders, self._pruned, strict=True
        ):
            mask = torch.ones_like(dense, dtype=torch.bool)  # same strides as the weight
            view = mask if self.filters else _memory_order(mask)
            view[order[:pruned]] = False
            masks[name] = mask
        return masks

    def norm_masks(self) -> dict[str, torch.Tensor]:
        """Structured only: per pruned conv, the keep-mask of its BatchNorm channels, to apply to
        the scale and the shift alike (so fine-tuning cannot revive a removed channel)."""
        masks = {}
        for (name, _), bn, order, pruned in zip(
            self.layers, self.norms, self._orders, self._pruned, strict=True
        ):
            if bn is not None:
                mask = torch.ones_like(bn.weight, dtype=torch.bool)
                mask[order[:pruned]] = False
                masks[name] = mask
        return masks

    def norm_removed(self) -> dict[str, tuple[nn.Module, torch.Tensor]]:
        """BatchNorm name -> (the BatchNorm, its removed channels), held at 0 while training."""
        kept = self.norm_masks()
        return {
            norm_name(name): (bn, ~kept[name].to(bn.weight.device))
            for name, bn in zip(self.names, self.norms, strict=True)
            if bn is not None
        }

    def release(self) -> None:
        """Restore the dense weights and free the ranking and the dense copy."""
        self.restore()
        self.dense, self._orders, self._global_layer_of_rank = [], [], None
        self._norm_dense = [None] * len(self.norms)


def _argsort(scores: torch.Tensor) -> torch.Tensor:
    """Stable ascending argsort of non-negative scores.

    The IEEE-754 bit patterns of non-negative float values sort like the values, and torch
    sorts int32 several times faster than float32 (0.5 s vs 3 s for ResNet50's 23.5M weights)."""
    if scores.dtype == torch.float32:
        scores = scores.view(torch.int32)
    elif scores.dtype == torch.float64:
        scores = scores.view(torch.int64)
    return torch.sort(scores, stable=True).indices


def _laid_out_like(score: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`score` with `weight`'s memory layout (strides), so storage positions line up."""
    if score.shape != weight.shape:
        raise ValueError(f"a score shaped {tuple(score.shape)} for a weight {tuple(weight.shape)}")
    if score.stride() == weight.stride() and score.device == weight.device:
        return score
    return torch.empty_like(weight, dtype=score.dtype).copy_(score)


def _zero_ranks(is_zero: torch.Tensor, order: torch.Tensor) -> tuple[int, list[int]]:
    """The rank positions of the zeros (`is_zero` in storage order): the length of the leading
    run of zeros, and the sorted positions of the zeros after it."""
    at_rank = is_zero[order]
    kept = ~at_rank
    lead = int(kept.to(torch.uint8).argmax()) if bool(kept.any()) else len(at_rank)  # first
    return lead, (torch.nonzero(at_rank[lead:]).flatten() + lead).tolist()


def _memory_order(tensor: torch.Tensor) -> torch.Tensor:
    """A flat view of a dense tensor in storage order, contiguous or channels_last alike.

    Writes through the view land in the tensor. Ranking in storage order only changes which of
    exactly tied weights goes first, which torch's own pruning leaves unspecified too."""
    if not (tensor.is_contiguous() or tensor.is_contiguous(memory_format=torch.channels_last)):
        raise ValueError("pruning needs dense weights (contiguous or channels_last)")
    return tensor.as_strided((tensor.numel(),), (1,), tensor.storage_offset())


@dataclass
class Sparsity:
    """Measured zeros: over the prunable weights, over all parameters, and per layer."""

    prunable: int
    prunable_zeros: int
    parameters: int
    nonzero_parameters: int
    per_layer: dict[str, float]  # percent of each prunable tensor that is zero
    layer_nonzero: dict[str, int] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return 100.0 * self.prunable_zeros / max(self.prunable, 1)

    @property
    def total_percent(self) -> float:
        return 100.0 * (self.parameters - self.nonzero_parameters) / max(self.parameters, 1)


@torch.no_grad()
def measure_sparsity(model: nn.Module, layers: list[tuple[str, nn.Module]]) -> Sparsity:
    """Count the zeros that are really there (a weight that was 0 already counts too).

    One device-side count per tensor and a single read back to the host."""
    pruned_ids = {id(module.weight) for _, module in layers}
    weights = [module.weight for _, module in layers]
    others = [p for p in model.parameters() if id(p) not in pruned_ids]
    counts = torch.stack([torch.count_nonzero(t) for t in weights + others]).tolist()
    layer_nonzero = dict(zip([name for name, _ in layers], counts[: len(weights)], strict=True))
    other_nonzero = sum(counts[len(weights) :])
    return _sparsity(layers, layer_nonzero, sum(p.numel() for p in others), other_nonzero)


def _sparsity(
    layers: list[tuple[str, nn.Module]],
    layer_nonzero: dict[str, int],
    other_parameters: int,
    other_nonzero: int,
) -> Sparsity:
    prunable = sum(module.weight.numel() for _, module in layers)
    zeros = prunable - sum(layer_nonzero.values())
    per_layer = {
        name: 100.0 * (module.weight.numel() - layer_nonzero[name]) / max(module.weight.numel(), 1)
        for name, module in layers
    }
    nonzero = sum(layer_nonzero.values()) + other_nonzero
    return Sparsity(prunable, zeros, prunable + other_parameters, nonzero, per_layer, layer_nonzero)

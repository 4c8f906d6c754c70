"""Channel methods on any traced model: whole channels of each dependency group, in place.

The shipped ResNets keep `engine.pruning.pruner.Pruner` (exact and faster there); any other
model's `structured`, `coupled` and `internal` levels are set here, over the groups of
`engine.pruning.graph`. A group loses round(level x width) channels (at least one is kept: a
zero-width layer is not a layer) and a removed channel has every slice zeroed: the producing
filters and biases, the BatchNorm scale and shift, and every consumer's input columns. Zeroed
input columns make the channel irrelevant whatever it still emits (a revived bias while
fine-tuning, an activation with f(0) != 0 such as a sigmoid gate), so the masked network is the
slim one: `graph.slim_copy` checks the logits before a slim network is used.

How a group ranks its channels:
- structured: the root layer's filters by the run's score (for l1 their L1 norms);
- coupled: the sum over every layer that writes the channels (residual streams: all writers);
- internal: as structured, only groups inside a block (engine.pruning.graph.block_internal);
- the `group` score, any method: the L1 of every member's slice (filters, consumers' columns,
  BatchNorm scale), as Torch-Pruning's GroupMagnitudeImportance counts a group.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.methods import CHANNEL_METHODS, INTERNAL
from engine.pruning.graph import (
    TRACE_SIZE,
    ChannelGroup,
    block_internal,
    channel_groups,
    classifier_name,
    first_conv,
    member_slices,
    slice_magnitude,
    slim_copy,
)
from engine.pruning.pruner import Sparsity, amount_to_prune, measure_sparsity, prunable_layers
from engine.pruning.scores import L1Score, Score

Slice = tuple[torch.Tensor, int, torch.Tensor]  # (tensor, dimension, positions)


class GroupPruner:
    """Sets channel levels on any model's dependency groups in place, and restores them."""

    def __init__(
        self,
        model: nn.Module,
        method: str = "structured",
        include_classifier: bool = False,
        min_density: float = 0.0,
        score: Score | None = None,
        input_size: tuple[int, ...] = TRACE_SIZE,
    ) -> None:
        if method not in CHANNEL_METHODS:
            raise ValueError(f"channel groups prune whole channels, not {method}")
        self.method, self.filters, self.min_density = method, True, min_density
        self.score = score or L1Score()
        self.model, self.input_size = model, input_size
        self.layers = prunable_layers(model, include_classifier=False)  # classes stay
        self.weights = [module.weight for _, module in self.layers]
        self.dense = [w.detach().clone() for w in self.weights]
        self._modules = dict(model.named_modules())
        groups = channel_groups(model, input_size)
        self.left_whole = [(g.root, g.unsafe) for g in groups if g.unsafe]
        stem, classifier = first_conv(model), classifier_name(model)
        self.groups = [
            g
            for g in groups
            if not g.unsafe and (method != INTERNAL or block_internal(g, stem, classifier))
        ]
        with torch.no_grad():
            self._orders = [torch.sort(s, stable=True).indices for s in self._channel_scores()]
        self._saved = {
            id(t): (t, t.detach().clone())
            for g in self.groups
            for m in g.members
            for t, _, _ in member_slices(self._modules, m, torch.arange(0))
        }
        self._applied: list[Slice] = []
        self._pruned = [0] * len(self.groups)
        self.level_percent = 0.0

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.layers]

    @property
    def prunable_count(self) -> int:
        return sum(w.numel() for w in self.dense)

    @property
    def _units(self) -> list[int]:
        return [g.width for g in self.groups]

    def _channel_scores(self) -> list[torch.Tensor]:
        """One score per channel of each group (higher = more worth keeping)."""
        if self.score.name == "group":
            return [self._group_magnitude(g) for g in self.groups]
        writers = sorted({p for g in self.groups for p in g.producers})
        weights = [self._modules[p].weight for p in writers]
        per_weight = dict(zip(writers, self.score(self.model, weights), strict=True))
        scores = []
        for group in self.groups:
            wanted = group.producers if self.method == "coupled" else [group.root]
            total = torch.zeros(group.width, dtype=torch.float64)
            for member in group.members:
                if member.kind == "out" and member.name in wanted:
                    total += slice_magnitude(per_weight[member.name], 0, member).cpu()
            scores.append(total)
        return scores

    def _group_magnitude(self, group: ChannelGroup) -> torch.Tensor:
        total = torch.zeros(group.width, dtype=torch.float64)
        for member in group.members:
            module = self._modules[member.name]
            slices = member_slices(self._modules, member, torch.arange(0))
            for tensor, dim, _ in slices[:1]:  # the weight (a BatchNorm's scale), not the bias
                if isinstance(module, nn.Conv2d) and module.groups > 1 and member.kind == "in":
                    continue  # a depthwise filter counts once, as its output
                total += slice_magnitude(tensor, dim, member).cpu()
        return total

    def counts_for(self, level_percent: float) -> list[int]:
        """Channels each group loses at `level_percent` (every group keeps one)."""
        return [min(amount_to_prune(level_percent, g.width), g.width - 1) for g in self.groups]

    def set_level(self, level_percent: float) -> None:
        self._apply(self.counts_for(level_percent))
        self.level_percent = level_percent

    def set_layer_level(self, name: str, level_percent: float) -> None:
        """Prune only the group rooted at `name` (sensitivity); every other group whole."""
        counts = [
            min(amount_to_prune(level_percent, g.width), g.width - 1) if g.root == name else 0
            for g in self.groups
        ]
        self._apply(counts)
        self.level_percent = 0.0

    def set_removed(self, removed: dict[str, list[int]]) -> None:
        """Mask exactly `removed` (group root -> channels), e.g. another tool's choice, to
        compare its pruned network with the masked one."""
        by_root = {g.root: i for i, g in enumerate(self.groups)}
        unknown = sorted(set(removed) - set(by_root))
        if unknown:
            raise ValueError(f"no prunable group is rooted at {', '.join(unknown)}")
        for root, channels in removed.items():  # those channels first, in this order
            i = by_root[root]
            rest = [c for c in self._orders[i].tolist() if c not in set(channels)]
            self._orders[i] = torch.tensor(list(channels) + rest)
        self._apply([len(removed.get(g.root, [])) for g in self.groups])

    @torch.no_grad()
    def _apply(self, counts: list[int]) -> None:
        for tensor, dim, positions in self._applied:
            dense = self._saved[id(tensor)][1]
            tensor.index_copy_(dim, positions, dense.index_select(dim, positions))
        self._applied = []
        for group, order, count in zip(self.groups, self._orders, counts, strict=True):
            if count:
                for member in group.members:
                    for tensor, dim, positions in member_slices(
                        self._modules, member, order[:count]
                    ):
                        tensor.index_fill_(dim, positions, 0.0)
                        self._applied.append((tensor, dim, positions))
        self._pruned = list(counts)

    def restore(self) -> None:
        self._apply([0] * len(self.groups))
        self.level_percent = 0.0

    def release(self) -> None:
        self.restore()
        self._saved, self.dense = {}, []

    def sparsity(self) -> Sparsity:
        return measure_sparsity(self.model, self.layers)

    def removed(self) -> dict[str, list[int]]:
        """Per group root, the channels the current level removes (ascending)."""
        return {
            g.root: sorted(order[:count].tolist())
            for g, order, count in zip(self.groups, self._orders, self._pruned, strict=True)
            if count
        }

    def slim(self) -> nn.Module:
        """The network of the current level with its channels taken out, checked against it."""
        return slim_copy(self.model, self.removed(), self.input_size)

    def masks(self) -> dict[str, torch.Tensor]:
        """Keep-masks (True = kept) of the prunable weights at the current level."""
        masks = {name: torch.ones_like(w, dtype=torch.bool) for name, w in self.layers_weights()}
        by_id = {id(w): name for name, w in self.layers_weights()}
        for tensor, dim, positions in self._applied:
            if id(tensor) in by_id:
                masks[by_id[id(tensor)]].index_fill_(dim, positions, False)
        return masks

    def layers_weights(self) -> list[tuple[str, torch.Tensor]]:
        return [(name, module.weight) for name, module in self.layers]

    def norm_removed(self) -> dict[str, tuple[nn.Module, torch.Tensor]]:
        """BatchNorm name -> (the BatchNorm, its removed channels), held at 0 while training."""
        norms = {
            id(m.weight): (name, m)
            for name, m in self._modules.items()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None
        }
        held: dict[str, tuple[nn.Module, torch.Tensor]] = {}
        for tensor, _, positions in self._applied:
            if id(tensor) in norms:
                name, module = norms[id(tensor)]
                removed = held.get(name, (module, torch.zeros_like(tensor, dtype=torch.bool)))[1]
                removed[positions] = True
                held[name] = (module, removed)
        return held

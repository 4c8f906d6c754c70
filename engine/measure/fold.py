"""BatchNorm folded into the convolutions, for evaluation only.

In eval mode a BatchNorm after a convolution is an affine map per output channel:
`bn(conv(x, w)) = conv(x, w * s) + (beta - mean * s)` with `s = gamma / sqrt(var + eps)`. A
`FoldedEval` is a second, eval-only view of a model (a torch.fx graph) in which every such pair is
one convolution with a bias, so each evaluation skips one full pass over every activation map (the
BatchNorm) and the CPU's convolution applies the bias in its own epilogue. The numbers are the
same up to fp32 rounding (tests/test_fold.py: logits within 1e-4, predictions identical).

It never changes the model it was built from. Layers that are not folded (the classifier, a
BatchNorm after anything but a conv) are the model's own modules, shared; the folded convs hold
their own weights, recomputed from the model's current (pruned) weights by `refresh()` before
each evaluation, changed layers only; so is a folded bias whose BatchNorm scale or shift changed
(structured pruning zeroes both for a removed channel). The BatchNorm statistics are read once, at
construction: a caller that changes them (BatchNorm recalibration, training) evaluates the model
itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass
class _Pair:
    source: nn.Conv2d  # the model's own conv, whose weight the pruner changes
    folded: nn.Conv2d  # the conv with the BatchNorm folded in (weights owned here)
    norm: nn.Module  # the model's BatchNorm: structured pruning zeroes its gamma and beta
    mean: torch.Tensor  # float64 running statistics, read at construction
    var: torch.Tensor
    scale: torch.Tensor | None = None  # (out, 1, ..., 1): gamma / sqrt(var + eps)
    version: int = -1  # source.weight._version when `folded` was last computed
    norm_version: tuple[int, int] = (-1, -1)  # the norm's gamma/beta versions then

    def norm_versions(self) -> tuple[int, int]:
        weight, bias = self.norm.weight, self.norm.bias
        return (-1 if weight is None else weight._version, -1 if bias is None else bias._version)


class FoldedEval(nn.Module):
    """`model` with every conv -> BatchNorm pair folded into one conv; evaluation only."""

    def __init__(self, model: nn.Module, graph: fx.GraphModule, pairs: list[_Pair]) -> None:
        super().__init__()
        self.graph_module = graph
        self._pairs = pairs
        self._source = [model]  # a list, so the source is not registered as a sub-module

    @property
    def folded_count(self) -> int:
        return len(self._pairs)

    @torch.no_grad()
    def refresh(self) -> None:
        """Recompute the folded weights of every conv whose weight, or whose BatchNorm's scale or
        shift, changed since the last call."""
        for pair in self._pairs:
            if pair.norm_version != pair.norm_versions():
                _fold_norm(pair)
            weight = pair.source.weight
            if pair.version != weight._version:
                torch.mul(weight, pair.scale, out=pair.folded.weight)
                pair.version = weight._version

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph_module(x)


def fold_batchnorm(model: nn.Module) -> FoldedEval | None:
    """The folded view of `model` (in eval mode), or None when there is nothing to fold or its
    forward cannot be traced (then the caller simply evaluates the model)."""
    try:
        graph = fx.symbolic_trace(model)
    except Exception:  # data-dependent control flow etc.: folding is an optimisation, never a need
        return None
    modules = dict(graph.named_modules())
    pairs: list[_Pair] = []
    for node in list(graph.graph.nodes):
        norm = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(norm, _NORMS) or not norm.track_running_stats:
            continue
        conv_node = node.args[0]
        if not isinstance(conv_node, fx.Node) or conv_node.op != "call_module":
            continue
        conv = modules.get(conv_node.target)
        if type(conv) is not nn.Conv2d or len(conv_node.users) != 1:
            continue
        stats = (norm.running_mean.to(torch.float64), norm.running_var.to(torch.float64))
        pair = _Pair(conv, _folded_conv(conv), norm, *stats)
        name = f"folded_{len(pairs)}"
        graph.add_submodule(name, pair.folded)
        conv_node.target = name
        node.replace_all_uses_with(conv_node)
        graph.graph.erase_node(node)
        pairs.append(pair)
    if not pairs:
        return None
    graph.delete_all_unused_submodules()
    graph.recompile()
    result = FoldedEval(model, graph, pairs).eval()
    result.refresh()
    return result


@torch.no_grad()
def _fold_norm(pair: _Pair) -> None:
    """The pair's scale and folded bias from its BatchNorm's current gamma and beta (and the
    statistics read at construction); the folded weight is recomputed on the next refresh."""
    conv, norm, weight = pair.source, pair.norm, pair.source.weight
    gamma = norm.weight.to(torch.float64) if norm.weight is not None else torch.ones_like(pair.var)
    beta = norm.bias.to(torch.float64) if norm.bias is not None else torch.zeros_like(pair.var)
    scale = gamma / torch.sqrt(pair.var + norm.eps)
    shift = beta - pair.mean * scale
    if conv.bias is not None:
        shift = shift + conv.bias.to(torch.float64) * scale
    pair.folded.bias.copy_(shift.to(weight.dtype))
    pair.scale = scale.to(weight.dtype).view((-1,) + (1,) * (weight.dim() - 1))
    pair.norm_version, pair.version = pair.norm_versions(), -1


@torch.no_grad()
def _folded_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """An eval-only conv with a bias, shaped like `conv`; `_fold_norm` and `refresh` fill it."""
    weight = conv.weight
    folded = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
        device=weight.device,
        dtype=weight.dtype,
    )
    # Same strides as the source weight (channels_last stays channels_last).
    folded.weight = nn.Parameter(torch.empty_like(weight), requires_grad=False)
    folded.bias = nn.Parameter(
        torch.empty(conv.out_channels, dtype=weight.dtype, device=weight.device),
        requires_grad=False,
    )
    return folded

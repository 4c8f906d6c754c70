"""Convolution + bias + ReLU, and convolution + residual add + ReLU, as one oneDNN call each:
CPU, fp32, evaluation only.

Eager PyTorch runs a ResNet block as separate passes: the convolution, then a ReLU over the whole
activation map, then an add and another ReLU, each its own trip through memory and through the
CPU thread pool. oneDNN (the library behind PyTorch's CPU convolutions) can apply the ReLU and the
add in the convolution's epilogue, while the output is still in cache. `fuse_conv_activations`
rewrites a traced (BatchNorm-folded) graph to do that. (Prepacking the weights into oneDNN's
blocked layout as well bought nothing measurable per sweep level: the repacking after each
level cost what it saved.) The arithmetic is the same convolution
followed by the same exact add and max(0, x), so logits agree to fp32 rounding
(tests/test_fuse.py).

Weights are read from the graph's own conv modules at every call: a pruner or `FoldedEval.refresh`
that changes a weight in place is seen at once.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

_RELUS = (F.relu, torch.relu)


def can_fuse(device: torch.device, precision: str) -> bool:
    """Whether this torch build fuses here: CPU, fp32 (bf16 autocast does not know these ops),
    and oneDNN's pointwise convolution available."""
    return (
        device.type == "cpu"
        and precision == "fp32"
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


class FusedConv(nn.Module):
    """`relu(conv(x))`, or `relu(conv(x) + residual)`, in one oneDNN call."""

    def __init__(self, conv: nn.Conv2d, residual: bool) -> None:
        super().__init__()
        self.conv = conv  # the graph's own conv (shared): its weight is read at every call
        self.residual = residual
        self._args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        padding, stride, dilation, groups = self._args
        weight, bias = self.conv.weight, self.conv.bias
        if residual is None:
            return torch.ops.mkldnn._convolution_pointwise(
                x, weight, bias, padding, stride, dilation, groups, "relu", [], ""
            )
        residual = residual.contiguous(memory_format=_format_of(x))
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, residual, weight, bias, padding, stride, dilation, groups, "add", 1.0, "relu", [], ""
        )


def _format_of(x: torch.Tensor) -> torch.memory_format:
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_function":
        return node.target in _RELUS and len(node.args) == 1
    if node.op == "call_method":
        return node.target == "relu"
    return node.op == "call_module" and isinstance(modules.get(str(node.target)), nn.ReLU)


def _only_user(node: fx.Node) -> fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def fuse_conv_activations(graph: fx.GraphModule) -> int:
    """Rewrite `graph` in place: every plain Conv2d whose only use is a ReLU, or an add whose
    only use is a ReLU, becomes one FusedConv. Returns how many convolutions were fused."""
    modules = dict(graph.named_modules())
    fused = 0
    for node in list(graph.graph.nodes):
        conv = modules.get(str(node.target)) if node.op == "call_module" else None
        if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros":
            continue
        if isinstance(conv.padding, str):  # "same"/"valid": oneDNN takes numbers
            continue
        user = _only_user(node)
        if user is None:
            continue
        residual: fx.Node | None = None
        relu = user
        if user.op == "call_function" and user.target in (operator.add, torch.add):
            others = [a for a in user.args if a is not node]
            if len(user.args) != 2 or len(others) != 1 or user.kwargs:
                continue
            if not isinstance(others[0], fx.Node):
                continue
            relu = _only_user(user)
            if relu is None:
                continue
            residual = others[0]
        if not _is_relu(relu, modules):
            continue
        name = f"fused_{fused}"
        graph.add_submodule(name, FusedConv(conv, residual is not None))
        with graph.graph.inserting_after(relu):
            args = (node.args[0],) if residual is None else (node.args[0], residual)
            new = graph.graph.call_module(name, args)
        relu.replace_all_uses_with(new)
        graph.graph.erase_node(relu)
        if residual is not None:
            graph.graph.erase_node(user)
        graph.graph.erase_node(node)
        fused += 1
    if fused:
        graph.graph.lint()
        graph.recompile()
    return fused

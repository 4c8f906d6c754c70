"""Convolution + ReLU (+ residual add) fused into one oneDNN call gives the model's
numbers at every pruning level, for every model family, and leaves the model alone."""

from __future__ import annotations

import copy

import pytest
import torch
from test_fold import _with_real_statistics
from torch import nn

from engine.measure.fold import fold_batchnorm
from engine.measure.fuse import FusedConv, can_fuse, fuse_conv_activations
from engine.models.resnets import build_model
from engine.pruning.pruner import Pruner

pytestmark = pytest.mark.skipif(
    not can_fuse(torch.device("cpu"), "fp32"), reason="this torch build has no oneDNN fusion"
)


@pytest.mark.parametrize(
    "name, channels_last, method",
    [
        ("resnet20", True, "layerwise"),
        ("resnet20", False, "structured"),
        ("resnet18", True, "global"),
        ("resnet50", True, "layerwise"),
        ("resnet20b", False, "structured"),
    ],
)
def test_fused_logits_equal_the_folded_model_at_every_level(name, channels_last, method):
    torch.manual_seed(0)
    model = _with_real_statistics(build_model(name))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    before = copy.deepcopy(model.state_dict())
    folded = fold_batchnorm(model)
    fused = fuse_conv_activations(folded.graph_module)
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    # every conv but those feeding an add whose output is not ReLU'd (projection shortcuts)
    assert fused == sum(isinstance(m, FusedConv) for m in folded.modules()) and fused >= convs // 2
    x = torch.randn(6, 3, 32, 32).contiguous(memory_format=fmt)
    pruner = Pruner(model, method)
    for level in (0, 70, 30, 95):
        pruner.set_level(level)
        folded.refresh()
        with torch.inference_mode():
            expected, got = model(x), folded(x)
            again = folded(x[:4])  # a smaller last batch
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4), level
        assert torch.equal(got.argmax(1), expected.argmax(1)), level
        assert torch.allclose(again, expected[:4], rtol=1e-4, atol=1e-4), level
    pruner.release()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_only_relu_users_are_fused_and_inputs_are_not_written():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(4, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)
            self.c = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.a(x))  # fused: conv -> relu
            z = torch.relu(self.b(y) + x)  # fused: conv -> add -> relu
            return self.c(z) + z  # not fused: no ReLU after the add

    torch.manual_seed(0)
    block = Block().eval()
    graph = torch.fx.symbolic_trace(block)
    assert fuse_conv_activations(graph) == 2
    x = torch.randn(2, 4, 8, 8)
    kept = x.clone()
    with torch.inference_mode():
        assert torch.allclose(graph(x), block(x), atol=1e-5)
    assert torch.equal(x, kept)  # the residual operand is read, never written


def test_fusion_is_cpu_fp32_only():
    assert not can_fuse(torch.device("cpu"), "bf16")
    assert not can_fuse(torch.device("cuda"), "fp32")

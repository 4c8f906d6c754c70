"""A user's own network for the tests: a factory file as `--model tests/nets/custom_block.py:build`.

Its block holds what a generic pruner must get right: a depthwise-separable convolution
(a depthwise 3x3 with groups = channels, then a pointwise 1x1), squeeze-excitation (a channel
gate computed from the block's own output) and a concatenation of the block's input with its
output (DenseNet-style), so the next layer reads channels from two producers.
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean((2, 3), keepdim=True)
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(gate))))
        return x * gate


class SeparableConcat(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 + SE, its output concatenated to its input."""

    def __init__(self, channels: int, grow: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.pointwise = nn.Conv2d(channels, grow, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(grow)
        self.se = SqueezeExcite(grow, max(grow // 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.depthwise(x)))
        y = self.se(torch.relu(self.bn2(self.pointwise(y))))
        return torch.cat([x, y], dim=1)


class CustomNet(nn.Module):
    def __init__(self, num_classes: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.block1 = SeparableConcat(width, width)
        self.down = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1, bias=False)
        self.bn_down = nn.BatchNorm2d(2 * width)
        self.block2 = SeparableConcat(2 * width, width)
        self.head = nn.Linear(3 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = self.block1(x)
        x = torch.relu(self.bn_down(self.down(x)))
        x = self.block2(x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build(num_classes: int = 10, width: int = 8) -> nn.Module:
    return CustomNet(num_classes, width)


def not_a_module(num_classes: int = 10) -> int:
    return num_classes

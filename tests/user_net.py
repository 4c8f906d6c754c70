"""A user's own network for the graph tests: depthwise-separable convs, a squeeze-excitation
gate and a concatenation of two branches (the shapes a factory file brings)."""

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.expand = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))))
        return x * gate


class SeparableBlock(nn.Module):
    """Depthwise 3x3 + BatchNorm, squeeze-excitation, pointwise 1x1 + BatchNorm."""

    def __init__(self, inp: int, out: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False)
        self.bn1 = nn.BatchNorm2d(inp)
        self.se = SqueezeExcite(inp, max(inp // 4, 2))
        self.pointwise = nn.Conv2d(inp, out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(torch.relu(self.bn1(self.depthwise(x))))
        return torch.relu(self.bn2(self.pointwise(x)))


class UserNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
        self.left = SeparableBlock(width, width, 2)
        self.right = nn.Sequential(
            nn.Conv2d(width, width // 2, 1, 2, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU()
        )
        self.mix = SeparableBlock(width + width // 2, 2 * width)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.cat([self.left(x), self.right(x)], dim=1)
        return self.head(self.mix(x).mean((2, 3)))


def build(num_classes: int = 10, width: int = 16) -> nn.Module:
    return UserNet(num_classes, width)

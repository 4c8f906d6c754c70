"""CIFAR ResNets, a registry by name, and parameter counts (MACs: engine.cost).

Two families share one `CifarResNet`:
- resnet18 / resnet50: kuangliu/pytorch-cifar, the seed's model. Module names and the state dict
  are key-for-key the same, so the seed's checkpoints load here and ours load there.
- resnet20 ... resnet110: He et al. 2016 section 4.2 in the layout of the widely used pretrained
  checkpoints (akamaster/pytorch_resnet_cifar10): 16/32/64 channels, parameter-free "option A"
  shortcuts, kaiming_normal_ init.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.config import MODEL_NAMES


class PadShortcut(nn.Module):
    """Option A shortcut: subsample by 2 and zero-pad channels; no parameters, so no keys.

    A named module rather than akamaster's LambdaLayer so models stay picklable.
    """

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


def _shortcut(in_planes: int, out_planes: int, stride: int, option: str) -> nn.Module:
    """Identity when shapes match; else a 1x1 projection (B) or zero padding (A)."""
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    if option == "A":
        return PadShortcut(out_planes // 4)
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs; the first carries the stride."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, option: str = "B") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes, stride, option)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 with the stride, 1x1 expand to 4x planes (kuangliu's layout)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, option: str = "B") -> None:
        super().__init__()
        out_planes = self.expansion * planes
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(in_planes, out_planes, stride, option)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """3x3 stem without max-pool (32x32 inputs are small), stages `layer1..`, average pool, `linear`.

    The first stage keeps the resolution, each later one halves it. `pool` is the average-pool
    window: kuangliu's fixed 4, or None for the whole final map as in akamaster's code.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: list[int],
        widths: list[int],
        num_classes: int = 10,
        option: str = "B",
        pool: int | None = 4,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        for k, (planes, n) in enumerate(zip(widths, num_blocks, strict=True)):
            stride = 1 if k == 0 else 2
            self.add_module(f"layer{k + 1}", self._make_layer(block, planes, n, stride, option))
        self.num_stages = len(widths)
        self.linear = nn.Linear(widths[-1] * block.expansion, num_classes)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        n: int,
        stride: int,
        option: str,
    ) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(block(self.in_planes, planes, s, option))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        for k in range(1, self.num_stages + 1):
            out = getattr(self, f"layer{k}")(out)
        out = F.avg_pool2d(out, self.pool or out.size()[3])
        return self.linear(out.flatten(1))


def _kaiming_init(m: nn.Module) -> None:
    """akamaster's init for the resnet20..110 family (the paper's He init)."""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight)


def resnet18(num_classes: int = 10) -> CifarResNet:
    return CifarResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], num_classes)


def resnet50(num_classes: int = 10) -> CifarResNet:
    """The seed's model: 23,520,842 parameters for 10 classes."""
    return CifarResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], num_classes)


def cifar_resnet(depth: int, num_classes: int = 10) -> CifarResNet:
    """He et al.'s depth = 6n + 2 CIFAR ResNet with n BasicBlocks per stage."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1, got {depth}")
    n = (depth - 2) // 6
    model = CifarResNet(BasicBlock, [n, n, n], [16, 32, 64], num_classes, option="A", pool=None)
    model.apply(_kaiming_init)
    return model


def resnet20(num_classes: int = 10) -> CifarResNet:
    return cifar_resnet(20, num_classes)


def resnet32(num_classes: int = 10) -> CifarResNet:
    return cifar_resnet(32, num_classes)


def resnet44(num_classes: int = 10) -> CifarResNet:
    return cifar_resnet(44, num_classes)


def resnet56(num_classes: int = 10) -> CifarResNet:
    return cifar_resnet(56, num_classes)


def resnet110(num_classes: int = 10) -> CifarResNet:
    return cifar_resnet(110, num_classes)


MODELS: dict[str, Callable[[int], CifarResNet]] = {
    "resnet50": resnet50,
    "resnet18": resnet18,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet44": resnet44,
    "resnet56": resnet56,
    "resnet110": resnet110,
}


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model by its registry name (engine.config.MODEL_NAMES)."""
    if name not in MODEL_NAMES or name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return MODELS[name](num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def classifier_name(model: nn.Module) -> str:
    """Name of the last nn.Linear: the layer pruning spares by default."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier")
    return names[-1]

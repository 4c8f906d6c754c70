"""CIFAR ResNets, a registry by name, and parameter counts (MACs: engine.measure.cost).

Two families share one `CifarResNet`:
- resnet18 / resnet50: kuangliu/pytorch-cifar, the seed's model. Module names and the state dict
  are key-for-key the same, so the seed's checkpoints load here and ours load there.
- resnet20 ... resnet110: He et al. 2016 section 4.2 in the layout of the widely used pretrained
  checkpoints (akamaster/pytorch_resnet_cifar10): 16/32/64 channels, parameter-free "option A"
  shortcuts, kaiming_normal_ init.
- resnet20b ... resnet110b: the same depths with the projection ("option B") shortcut, a 1x1
  stride-2 conv + BatchNorm where a stage starts, as torch.hub's chenyaofo/pytorch-cifar-models
  and torchdistill build them from torchvision's BasicBlock (their `fc` / `downsample` keys are
  mapped onto ours in engine.models.state_keys). Global average pool, fan-out kaiming init as there.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.models.inputs import MODEL_NAMES
from engine.models.state_keys import unwrap


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


def _fan_out_init(m: nn.Module) -> None:
    """torchvision's ResNet init, kept by the option-B CIFAR files' code (Linear: torch default)."""
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def cifar_resnet(depth: int, num_classes: int = 10, option: str = "A") -> CifarResNet:
    """He et al.'s depth = 6n + 2 CIFAR ResNet with n BasicBlocks per stage; `option` "A" pads
    the shortcut with zeros (akamaster), "B" projects it with a 1x1 conv + BatchNorm."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1, got {depth}")
    if option not in ("A", "B"):
        raise ValueError(f"option must be 'A' or 'B', got {option!r}")
    n = (depth - 2) // 6
    model = CifarResNet(BasicBlock, [n, n, n], [16, 32, 64], num_classes, option=option, pool=None)
    model.apply(_kaiming_init if option == "A" else _fan_out_init)
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


def _projected(depth: int) -> Callable[[int], CifarResNet]:
    def build(num_classes: int = 10) -> CifarResNet:
        return cifar_resnet(depth, num_classes, option="B")

    build.__name__ = build.__qualname__ = f"resnet{depth}b"
    build.__doc__ = f"ResNet-{depth} with projection shortcuts (chenyaofo / torchdistill layout)."
    return build


MODELS: dict[str, Callable[[int], CifarResNet]] = {
    "resnet50": resnet50,
    "resnet18": resnet18,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet44": resnet44,
    "resnet56": resnet56,
    "resnet110": resnet110,
    **{f"resnet{depth}b": _projected(depth) for depth in (20, 32, 44, 56, 110)},
}


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model by its registry name (engine.models.inputs.MODEL_NAMES)."""
    if name not in MODEL_NAMES or name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return MODELS[name](num_classes)


def infer_model_name(state_dict: dict[str, torch.Tensor]) -> str | None:
    """Which registry architecture a state dict belongs to, from key names and shapes; None if
    unknown. Other tools' key spellings count as ours (engine.models.state_keys.unwrap)."""
    state_dict, _ = unwrap(state_dict)
    blocks: dict[int, set[int]] = {}
    bottleneck = projected = False
    for key in state_dict:
        m = re.match(r"layer(\d+)\.(\d+)\.(\w+)\.", key)
        if m:
            blocks.setdefault(int(m[1]), set()).add(int(m[2]))
            bottleneck = bottleneck or m[3] == "conv3"
            projected = projected or m[3] == "shortcut"
    stem = state_dict.get("conv1.weight")
    shape = tuple(stem.shape) if isinstance(stem, torch.Tensor) else ()
    # every registry model has a 3x3 stem on RGB: an ImageNet ResNet's 7x7 stem is none of them
    if len(shape) != 4 or shape[1:] != (3, 3, 3) or not blocks:
        return None
    width = shape[0]
    if sorted(blocks) != list(range(1, len(blocks) + 1)):
        return None
    counts = [len(blocks[k]) for k in sorted(blocks)]
    if width == 64 and counts == [3, 4, 6, 3] and bottleneck:
        return "resnet50"
    if width == 64 and counts == [2, 2, 2, 2] and not bottleneck:
        return "resnet18"
    if width == 16 and len(counts) == 3 and len(set(counts)) == 1 and not bottleneck:
        name = f"resnet{6 * counts[0] + 2}{'b' if projected else ''}"
        return name if name in MODEL_NAMES else None
    return None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def classifier_name(model: nn.Module) -> str:
    """Name of the last nn.Linear: the layer pruning spares by default."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier")
    return names[-1]

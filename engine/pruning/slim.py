"""Structured pruning made real: take removed channels physically out of a ResNet.

A channel is removed when its BatchNorm scale and shift are both zero (the Pruner's structured
method zeroes them together with the filter): the channel then emits exactly 0 whatever its
filter holds, so dropping it, and every weight that reads it, changes no output.

Why our own surgery rather than Torch-Pruning's dependency graph: measured with torch-pruning
1.6.0, it treats the CIFAR ResNets' option-A shortcut (subsample + zero-pad channels) as an
element-wise op, couples the stem with every later stage through it and leaves resnet20 with a
classifier that no longer fits (a shape error at 50%). It also prunes a residual stream as one
coupled group, while our structured method ranks each conv's filters on their own. Here the
residual add of a slim block scatters each branch into the union of its live channels
(`index_add`), so a block keeps any channel that either branch still carries.

The channel spec (conv name -> kept output channels) plus the architecture name rebuilds the
slim network; module and state-dict names are the dense model's, with smaller shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from engine.models.resnets import Bottleneck, CifarResNet, PadShortcut, build_model

ChannelSpec = dict[str, list[int]]  # conv name -> kept output channel indices, ascending
SLIM_FORMAT = "prunelab-slim/1"  # `format` of a slim file: model name + channels + slim weights


@dataclass
class ChannelPlan:
    """Which channels of the dense network every layer of the slim one keeps."""

    conv_out: dict[str, list[int]] = field(default_factory=dict)  # conv -> kept filters
    conv_in: dict[str, list[int]] = field(default_factory=dict)  # conv -> live input channels
    norms: dict[str, str] = field(default_factory=dict)  # bn name -> the conv it follows
    linear_in: list[int] = field(default_factory=list)  # live channels the classifier reads


def norm_name(conv_name: str) -> str:
    """The BatchNorm after a conv in CifarResNet: conv1 -> bn1, shortcut.0 -> shortcut.1."""
    head, _, last = conv_name.rpartition(".")
    norm = "1" if last == "0" else last.replace("conv", "bn")
    return f"{head}.{norm}" if head else norm


def norm_after(model: nn.Module, conv_name: str) -> nn.BatchNorm2d | None:
    """The BatchNorm that normalises `conv_name`'s output, or None (e.g. for a Linear)."""
    module = dict(model.named_modules()).get(norm_name(conv_name))
    conv = dict(model.named_modules()).get(conv_name)
    if (
        isinstance(module, nn.BatchNorm2d)
        and isinstance(conv, nn.Conv2d)
        and module.num_features == conv.out_channels
    ):
        return module
    return None


def conv_norm_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv name, BatchNorm name) for every conv of a CifarResNet, in definition order."""
    _require_resnet(model)
    modules = dict(model.named_modules())
    pairs = []
    for name, module in modules.items():
        if isinstance(module, nn.Conv2d):
            norm = norm_name(name)
            if not isinstance(modules.get(norm), nn.BatchNorm2d):
                raise ValueError(f"{name} is not followed by a BatchNorm2d named {norm}")
            pairs.append((name, norm))
    return pairs


def _require_resnet(model: nn.Module) -> None:
    if not isinstance(model, CifarResNet):
        raise ValueError(
            f"channel removal knows the shipped CIFAR ResNets, not {type(model).__name__}"
        )


@torch.no_grad()
def kept_channels(model: nn.Module) -> ChannelSpec:
    """Per conv, the channels still alive: those whose BatchNorm scale or shift is nonzero."""
    modules = dict(model.named_modules())
    spec: ChannelSpec = {}
    for conv, norm in conv_norm_pairs(model):
        bn = modules[norm]
        dead = (bn.weight == 0) & (bn.bias == 0)
        spec[conv] = torch.nonzero(~dead).flatten().tolist()
    return spec


def channel_plan(model: nn.Module, spec: ChannelSpec) -> ChannelPlan:
    """Follow live channels through the network: what each conv reads and keeps.

    A conv that would keep nothing keeps its first channel (all zeros out of BatchNorm, so
    still exact): a zero-width conv is not a valid module."""
    _require_resnet(model)
    plan = ChannelPlan()

    def conv(name: str, live_in: list[int]) -> list[int]:
        kept = list(spec[name]) or [0]
        plan.conv_in[name], plan.conv_out[name] = live_in, kept
        plan.norms[norm_name(name)] = name
        return kept

    live = conv("conv1", [0, 1, 2])
    for stage in range(1, model.num_stages + 1):
        layer = getattr(model, f"layer{stage}")
        for index, block in enumerate(layer):
            prefix = f"layer{stage}.{index}"
            names = ["conv1", "conv2"] + (["conv3"] if isinstance(block, Bottleneck) else [])
            main = live
            for name in names:
                main = conv(f"{prefix}.{name}", main)
            if isinstance(block.shortcut, PadShortcut):
                short = [c + block.shortcut.pad for c in live]
            elif len(block.shortcut) == 0:
                short = live
            else:
                short = conv(f"{prefix}.shortcut.0", live)
            live = sorted(set(main) | set(short))
    plan.linear_in = live
    return plan


class SlimBlock(nn.Module):
    """A Basic or Bottleneck block with fewer channels; the residual add scatters each branch
    into the block's live output channels."""

    def __init__(
        self,
        convs: list[tuple[nn.Conv2d, nn.BatchNorm2d]],
        shortcut: nn.Module,
        main_pos: list[int],
        short_pos: list[int],
        width: int,
    ) -> None:
        super().__init__()
        for k, (c, bn) in enumerate(convs, start=1):
            self.add_module(f"conv{k}", c)
            self.add_module(f"bn{k}", bn)
        self.depth = len(convs)
        self.shortcut = shortcut
        self.width = width
        every = list(range(width))
        self.main_full = main_pos == every
        self.short_full = short_pos == every
        self.register_buffer("main_pos", torch.tensor(main_pos), persistent=False)
        self.register_buffer("short_pos", torch.tensor(short_pos), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for k in range(1, self.depth + 1):
            out = getattr(self, f"bn{k}")(getattr(self, f"conv{k}")(out))
            if k < self.depth:
                out = F.relu(out)
        short = self.shortcut(x)
        if self.main_full and self.short_full:
            return F.relu(out + short)
        total = residual_sum(out, self.main_pos, short, self.short_pos, self.width)
        return F.relu(total, inplace=True)  # a fresh tensor: no second full-width copy


@torch.fx.wrap
def residual_sum(
    main: torch.Tensor,
    main_pos: torch.Tensor,
    short: torch.Tensor,
    short_pos: torch.Tensor,
    width: int,
) -> torch.Tensor:
    """The block's output: `main` and `short` added into `width` channels at their positions
    (a branch that covers every channel is taken as it is, positions 0..width-1).

    Channels-last activations are scattered as (pixels, channels) rows: `index_add` along
    dimension 1 of a channels-last tensor walks each channel with a stride of the whole width
    and returns a contiguous tensor, so every later conv would run in the other layout behind
    an oneDNN reorder (measured: 73% of a ResNet50's time at batch 64)."""
    layout = torch.channels_last if _channels_last(main) else None  # the convs' layout
    # the indices follow the activations (they stay real when a skeleton runs on meta)
    main_pos, short_pos = main_pos.to(main.device), short_pos.to(main.device)
    branches = [(main, main_pos), (short, short_pos)]
    branches.sort(key=lambda b: b[0].shape[1] != width)  # a full branch first, as the base
    (base, base_pos), (other, other_pos) = branches
    if base.shape[1] != width:
        shape = (base.shape[0], width, *base.shape[2:])
        fmt = layout or torch.contiguous_format
        empty = torch.empty(shape, dtype=base.dtype, device=base.device, memory_format=fmt)
        total = _index_add(empty.zero_(), base_pos, base, layout)
    else:
        total = base.clone(memory_format=layout or torch.contiguous_format)
    return _index_add(total, other_pos, other, layout)


def _channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)


def _index_add(
    total: torch.Tensor, pos: torch.Tensor, part: torch.Tensor, layout: torch.memory_format | None
) -> torch.Tensor:
    """`total.index_add_(1, pos, part)` as one `scatter_add_` in `total`'s layout, in place.

    index_add_ along dimension 1 adds one channel slice at a time, each its own parallel region:
    hundreds per block, and on a shared CPU a worker thread that is not scheduled stalls every
    one of them (measured: single calls of 1-2.7 s on 2 busy cores, 3-8 ms on quiet ones)."""
    n, width, channels = total.shape[0], total.shape[1], part.shape[1]
    if layout is None:  # (images, channels, pixels)
        rows = total.view(n, width, -1)
        source = part.reshape(n, channels, -1)
        index = pos.view(1, -1, 1).expand(n, channels, source.shape[2])
    else:  # (pixels, channels): channels-last is NHWC in memory
        rows = total.permute(0, 2, 3, 1).view(-1, width)
        source = part.permute(0, 2, 3, 1).reshape(-1, channels)
        index = pos.view(1, -1).expand(source.shape[0], channels)
    rows.scatter_add_(1, index, source)
    return total


class Subsample(nn.Module):
    """The option-A shortcut without its zero channels (the slim block places them)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::2, ::2]


class SlimResNet(nn.Module):
    """A CifarResNet with channels removed; same module names, smaller shapes."""

    def __init__(
        self, conv1: nn.Conv2d, bn1: nn.BatchNorm2d, layers: list[nn.Sequential], linear: nn.Linear
    ) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv1, bn1
        for k, layer in enumerate(layers, start=1):
            self.add_module(f"layer{k}", layer)
        self.num_stages = len(layers)
        self.linear = linear
        self.pool: int | None = None

    forward = CifarResNet.forward  # the same stem, stages, pool and classifier, fewer channels


def _index(values: list[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long, device=device)


def _slim_conv(conv: nn.Conv2d, out: list[int], live_in: list[int]) -> nn.Conv2d:
    weight = conv.weight.detach()
    weight = weight.index_select(0, _index(out, weight.device))
    weight = weight.index_select(1, _index(live_in, weight.device))
    new = nn.Conv2d(
        len(live_in),
        len(out),
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        bias=False,
        device="meta",
    )
    new.weight = nn.Parameter(weight.contiguous(), requires_grad=conv.weight.requires_grad)
    return new


def _slim_norm(bn: nn.BatchNorm2d, kept: list[int]) -> nn.BatchNorm2d:
    index = _index(kept, bn.weight.device)
    new = nn.BatchNorm2d(len(kept), bn.eps, bn.momentum, device="meta")
    new.weight = nn.Parameter(bn.weight.detach().index_select(0, index))
    new.bias = nn.Parameter(bn.bias.detach().index_select(0, index))
    new.running_mean = bn.running_mean.index_select(0, index)
    new.running_var = bn.running_var.index_select(0, index)
    new.num_batches_tracked = bn.num_batches_tracked.clone()
    return new


def _positions(channels: list[int], live: list[int]) -> list[int]:
    where = {c: i for i, c in enumerate(live)}
    return [where[c] for c in channels]


def slim_model(model: nn.Module, spec: ChannelSpec | None = None) -> SlimResNet:
    """The network with the channels `spec` drops (by default the dead ones) taken out.

    Works on real and on meta tensors (to rebuild a slim architecture before loading it)."""
    _require_resnet(model)
    assert isinstance(model, CifarResNet)
    spec = kept_channels(model) if spec is None else spec
    plan = channel_plan(model, spec)
    modules = dict(model.named_modules())
    device = model.linear.weight.device

    def pair(name: str) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
        c = _slim_conv(modules[name], plan.conv_out[name], plan.conv_in[name])
        return c, _slim_norm(modules[norm_name(name)], plan.conv_out[name])

    conv1, bn1 = pair("conv1")
    layers = []
    for stage in range(1, model.num_stages + 1):
        blocks = []
        for index, block in enumerate(getattr(model, f"layer{stage}")):
            prefix = f"layer{stage}.{index}"
            depth = 3 if isinstance(block, Bottleneck) else 2
            convs = [pair(f"{prefix}.conv{k}") for k in range(1, depth + 1)]
            live_in = plan.conv_in[f"{prefix}.conv1"]
            main = plan.conv_out[f"{prefix}.conv{depth}"]
            if isinstance(block.shortcut, PadShortcut):
                shortcut: nn.Module = Subsample()
                short = [c + block.shortcut.pad for c in live_in]
            elif len(block.shortcut) == 0:
                shortcut, short = nn.Sequential(), live_in
            else:
                shortcut = nn.Sequential(*pair(f"{prefix}.shortcut.0"))
                short = plan.conv_out[f"{prefix}.shortcut.0"]
            live = sorted(set(main) | set(short))
            slim = SlimBlock(
                convs, shortcut, _positions(main, live), _positions(short, live), len(live)
            )
            blocks.append(slim)
        layers.append(nn.Sequential(*blocks))
    linear = nn.Linear(len(plan.linear_in), model.linear.out_features, device="meta")
    weight = model.linear.weight.detach()
    linear.weight = nn.Parameter(weight.index_select(1, _index(plan.linear_in, device)))
    linear.bias = nn.Parameter(model.linear.bias.detach().clone())
    slim = SlimResNet(conv1, bn1, layers, linear)
    slim.pool = model.pool
    if device.type != "meta":
        slim.to(device)  # the position indices, made on the CPU
    return slim.train(model.training)


def skeleton(model: nn.Module) -> CifarResNet:
    """The same architecture on the meta device: shapes without data, for counting MACs."""
    _require_resnet(model)
    assert isinstance(model, CifarResNet)
    layers = [getattr(model, f"layer{k}") for k in range(1, model.num_stages + 1)]
    block = type(layers[0][0])
    option = "A" if any(isinstance(b.shortcut, PadShortcut) for lay in layers for b in lay) else "B"
    with torch.device("meta"):
        return CifarResNet(
            block,
            [len(layer) for layer in layers],
            [layer[0].conv1.out_channels for layer in layers],
            model.linear.out_features,
            option=option,
            pool=model.pool,
        ).train(model.training)


def build_slim(name: str, spec: ChannelSpec, num_classes: int = 10) -> SlimResNet:
    """The slim architecture for `name` and `spec`, with parameters still on the meta device:
    load a slim state dict into it with `load_state_dict(..., assign=True)`."""
    with torch.device("meta"):
        dense = build_model(name, num_classes)
    _check_spec(dense, spec)
    return slim_model(dense, spec)


def load_slim(
    name: str, spec: ChannelSpec, state_dict: dict[str, torch.Tensor], num_classes: int = 10
) -> SlimResNet:
    """Rebuild a slim network from its architecture name, channel spec and weights."""
    slim = build_slim(name, spec, num_classes)
    slim.load_state_dict(state_dict, strict=True, assign=True)
    return slim.eval()


def _check_spec(dense: nn.Module, spec: ChannelSpec) -> None:
    """A clear ValueError when a spec does not belong to this architecture."""
    widths = {n: m.out_channels for n, m in dense.named_modules() if isinstance(m, nn.Conv2d)}
    if set(spec) != set(widths):
        missing = sorted(set(widths) - set(spec))[:3]
        extra = sorted(set(spec) - set(widths))[:3]
        raise ValueError(f"channel spec does not fit: missing {missing}, unexpected {extra}")
    for name, kept in spec.items():
        if any(not 0 <= c < widths[name] for c in kept) or kept != sorted(set(kept)):
            raise ValueError(
                f"channel spec for {name} is not ascending within 0..{widths[name] - 1}"
            )


def dense_state_dict(
    name: str, spec: ChannelSpec, state_dict: dict[str, torch.Tensor], num_classes: int = 10
) -> dict[str, torch.Tensor]:
    """The dense-shaped equivalent of a slim state dict: removed filters, their BatchNorm
    channels (scale and shift 0, mean 0, variance 1) and every weight reading them are zero,
    so any command that takes a dense checkpoint evaluates exactly the slim network."""
    with torch.device("meta"):
        dense = build_model(name, num_classes)
    _check_spec(dense, spec)
    plan = channel_plan(dense, spec)
    out: dict[str, torch.Tensor] = {}
    for key, meta in dense.state_dict().items():
        module, _, kind = key.rpartition(".")
        value = state_dict[key]
        if kind == "num_batches_tracked":
            out[key] = value.clone()
            continue
        fill = 1.0 if kind == "running_var" else 0.0
        full = torch.full(meta.shape, fill, dtype=value.dtype)
        if module in plan.conv_out:
            rows, cols = _index(plan.conv_out[module], "cpu"), _index(plan.conv_in[module], "cpu")
            full[rows.unsqueeze(1), cols] = value
        elif module in plan.norms:
            full[_index(plan.conv_out[plan.norms[module]], "cpu")] = value
        elif module == "linear" and kind == "weight":
            full[:, _index(plan.linear_in, "cpu")] = value
        else:
            full = value.clone()
        out[key] = full
    return out


def is_slim_payload(payload: object) -> bool:
    return isinstance(payload, dict) and payload.get("format") == SLIM_FORMAT


def slim_payload_parts(payload: dict) -> tuple[str, ChannelSpec, dict[str, torch.Tensor], int]:
    """(model name, channel spec, slim state dict, classes) of a loaded slim file; ValueError
    naming what is wrong when it is damaged."""
    name, spec, state = payload.get("model"), payload.get("channels"), payload.get("net")
    if not isinstance(name, str) or not isinstance(spec, dict) or not isinstance(state, dict):
        raise ValueError("a slim file needs 'model', 'channels' and 'net'")
    if not all(isinstance(v, list) and all(isinstance(c, int) for c in v) for v in spec.values()):
        raise ValueError("'channels' must map conv names to lists of channel indices")
    classes = state.get("linear.weight")
    num_classes = int(classes.shape[0]) if isinstance(classes, torch.Tensor) else 10
    return name, spec, state, num_classes

"""Channel groups of any traced classifier: which weights must lose a channel together.

The shipped CIFAR ResNets keep their own exact path (engine.pruning.coupling and slim): their
option-A shortcut (subsample + zero-pad) is beyond Torch-Pruning, which treats the padding as
an element-wise op and leaves a network that fails at its first forward. Every other model is
traced once by Torch-Pruning's DependencyGraph (torch-pruning 1.6): for each layer that
produces channels it lists every tensor slice that goes with them (the producing filters and
biases, the BatchNorm channels, the input columns of every consumer, depthwise filters, the
squeeze-excitation layers of a channel attention, offsets into concatenations, the columns of a
classifier after a flatten). Measured before choosing it: on resnet18, mobilenet_v3_small,
efficientnet_b0, densenet121 and vgg11_bn its groups give slim networks whose logits equal the
masked network's (tests/test_graph_pruning.py), which a hand-written torch.fx tracer would have
to earn op by op.

A group is masked by zeroing all of its slices (so its channel contributes nothing anywhere)
and removed by Torch-Pruning's own surgery; `slim_network` checks the two agree before the slim
network is used or saved. A group is left whole, and named, when removing a channel would change
what the rest computes: a LayerNorm or GroupNorm normalises over the channels (ConvNeXt), a
grouped convolution mixes channels within a group, a bare parameter (layer scale) or an
unknown module takes part.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from engine.errors import PrunelabError

TRACE_SIZE = (3, 32, 32)  # one image traced: the channel structure does not depend on its size
SLIM_TOLERANCE = 1e-5  # slim against masked logits, relative to the largest logit


@dataclass
class Member:
    """One slice of a group: `name`'s output rows ('out') or input columns ('in'); `index[c]`
    holds the positions group channel c occupies in it (several after a flatten, -1 padding
    where a member carries only some of the group's channels)."""

    name: str
    kind: str
    index: torch.Tensor  # (width, k) long


@dataclass
class ChannelGroup:
    """Channels that go together: rooted at the layer that produces them."""

    root: str
    width: int
    members: list[Member] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)  # convs/linears writing the channels
    residual: bool = False  # an add joins several producers: a residual stream
    unsafe: str = ""  # why the group is left whole ("" = prunable)

    def names(self) -> set[str]:
        return {m.name for m in self.members}


def _tp():  # imported when a graph is traced: the CLI's start-up stays torch-free
    import torch_pruning

    return torch_pruning


def classifier_name(model: nn.Module) -> str | None:
    """The last Linear in definition order: its outputs are the classes, never pruned."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _graph(model: nn.Module, input_size: tuple[int, ...]):
    tp = _tp()
    param = next(model.parameters())
    example = torch.zeros(1, *input_size, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():  # the graph is read off autograd
            return tp.DependencyGraph().build_dependency(
                model, example_inputs=example, verbose=False
            )
    except Exception as exc:  # a forward Torch-Pruning cannot trace
        raise PrunelabError(
            f"cannot trace {type(model).__name__} to find its channel groups ({exc})"
        ) from None
    finally:
        model.train(was_training)


def channel_groups(
    model: nn.Module, input_size: tuple[int, ...] = TRACE_SIZE
) -> list[ChannelGroup]:
    """Every channel group of `model` (the classifier's outputs excluded), in trace order."""
    dg = _graph(model, input_size)
    names = {m: n for n, m in model.named_modules()}
    classifier = classifier_name(model)
    ignored = [dict(model.named_modules())[classifier]] if classifier else []
    groups = []
    for group in dg.get_all_groups(ignored_layers=ignored):
        root_module, width = group[0][0].target.module, len(group[0][1])
        found = ChannelGroup(names[root_module], width)
        slices = _slices(dg, group, names, found)
        if any(len(idxs) % width for idxs in slices.values()):
            # a member carries only some of the channels (a concatenation read by a depthwise
            # conv): ask the graph channel by channel
            per_channel = [_slices(dg, _one(dg, group, c), names, found) for c in range(width)]
            slices = {key: [] for key in slices}
            index = {key: _padded([ch.get(key, []) for ch in per_channel]) for key in slices}
        else:
            index = {key: torch.as_tensor(idxs).view(width, -1) for key, idxs in slices.items()}
        for (name, kind), positions in index.items():
            found.members.append(Member(name, kind, positions))
            module = dict(model.named_modules()).get(name)
            if kind == "out" and isinstance(module, nn.Conv2d | nn.Linear):
                found.producers.append(name)
        found.residual = found.residual and len(found.producers) > 1
        groups.append(found)
    return groups


def _one(dg, group, channel: int):
    root = group[0][0].target.module
    return dg.get_pruning_group(root, group[0][0].handler, [channel])


def _padded(rows: list[list[int]]) -> torch.Tensor:
    """(width, k) positions, -1 where a channel has fewer than k."""
    k = max(1, max(len(r) for r in rows))
    return torch.tensor([r + [-1] * (k - len(r)) for r in rows], dtype=torch.long)


def _slices(dg, group, names: dict, found: ChannelGroup) -> dict[tuple[str, str], list[int]]:
    """(module name, 'out' | 'in') -> positions, for every parametrised member of `group`;
    notes a residual add and why the group is unsafe on `found`."""
    tp = _tp()
    slices: dict[tuple[str, str], list[int]] = {}
    for dep, idxs in group:
        module = dep.target.module
        out = dg.is_out_channel_pruning_fn(dep.handler)
        if isinstance(module, tp.ops._ElementWiseOp):
            found.residual |= "Add" in str(module._grad_fn)  # (a Mul gates, e.g. SE)
            continue
        if isinstance(module, tp.ops._ConcatOp | tp.ops._ReshapeOp | tp.ops._SplitOp):
            continue
        name = names.get(module, type(module).__name__)
        found.unsafe = found.unsafe or _unsafe(name, module)
        slices.setdefault((name, "out" if out else "in"), []).extend(int(i) for i in idxs)
    return slices


def _unsafe(name: str, module: object) -> str:
    """Why a member stops its group from being removed exactly; '' when it does not."""
    if isinstance(module, nn.Conv2d):
        depthwise = module.groups == module.in_channels == module.out_channels
        if module.groups > 1 and not depthwise:
            return f"{name} is a grouped convolution (channels mix within a group)"
        return ""
    if isinstance(module, nn.Linear):
        return ""
    if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
        return "" if module.affine else f"{name} is a BatchNorm without scale and shift"
    if isinstance(module, nn.LayerNorm | nn.GroupNorm):
        return f"{name} normalises over the channels ({type(module).__name__})"
    return f"{name} ({type(module).__name__}) is not a layer whose channels can be removed"


def block_internal(group: ChannelGroup, stem: str | None, classifier: str | None) -> bool:
    """Whether a group lies inside a block: not a residual stream, not written by the stem, not
    read by the classifier (Torch-Pruning's common practice for ResNets)."""
    names = group.names()
    return not group.residual and stem not in group.producers and classifier not in names


def first_conv(model: nn.Module) -> str | None:
    return next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def member_slices(
    modules: dict[str, nn.Module], member: Member, channels: torch.Tensor
) -> list[tuple[torch.Tensor, int, torch.Tensor]]:
    """(tensor, dimension, positions) the member's slices of group `channels` occupy."""
    module = modules[member.name]
    positions = member.index[channels].flatten()
    positions = positions[positions >= 0]
    tensors: list[tuple[torch.Tensor, int]] = []
    if isinstance(module, nn.Conv2d | nn.Linear):
        depthwise = isinstance(module, nn.Conv2d) and module.groups > 1
        if member.kind == "out" or depthwise:
            tensors = [(module.weight, 0)] + ([(module.bias, 0)] if module.bias is not None else [])
        else:
            tensors = [(module.weight, 1)]
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        tensors = [(module.weight, 0), (module.bias, 0)]
    return [(t, dim, positions.to(t.device)) for t, dim in tensors]


def slice_magnitude(tensor: torch.Tensor, dim: int, member: Member) -> torch.Tensor:
    """Per group channel, the L1 of the member's slices of `tensor` along `dim`."""
    other = [d for d in range(tensor.dim()) if d != dim]
    per_position = tensor.detach().abs().sum(dim=other) if other else tensor.detach().abs()
    index = member.index.to(per_position.device)
    values = per_position.double()[index.clamp(min=0)]
    return values.masked_fill(index < 0, 0.0).sum(dim=1)


def prune_graph(
    model: nn.Module, removed: dict[str, list[int]], input_size: tuple[int, ...] = TRACE_SIZE
) -> nn.Module:
    """`model` itself with each group's `removed` channels (by root name) taken out by
    Torch-Pruning's surgery. Module and state-dict names stay the dense model's."""
    dg = _graph(model, input_size)
    modules = dict(model.named_modules())
    for root, channels in removed.items():
        if not channels:
            continue
        module = modules[root]
        pruner = dg.get_pruner_of_module(module)
        group = dg.get_pruning_group(module, pruner.prune_out_channels, sorted(channels))
        group.prune(record_history=False)
    return model


@torch.no_grad()
def check_slim(
    masked: nn.Module, slim: nn.Module, input_size: tuple[int, ...] = TRACE_SIZE
) -> float:
    """The largest logit difference of `slim` against `masked` on two seeded random images (in
    eval mode); PrunelabError when beyond SLIM_TOLERANCE, so no slim network that computes
    something else is ever used or saved."""
    param = next(masked.parameters())
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, *input_size, generator=generator).to(param.device, param.dtype)
    modes = masked.training, slim.training
    masked.eval(), slim.eval()
    try:
        want, got = masked(x), slim(x)
    finally:
        masked.train(modes[0]), slim.train(modes[1])
    diff = float((want - got).abs().max())
    if diff > SLIM_TOLERANCE * max(1.0, float(want.abs().max())):
        raise PrunelabError(
            f"the slim network's logits differ from the masked network's by {diff:.2e}; "
            "nothing was written"
        )
    return diff


def slim_copy(
    model: nn.Module, removed: dict[str, list[int]], input_size: tuple[int, ...] = TRACE_SIZE
) -> nn.Module:
    """A slim copy of the masked `model`, checked against it."""
    slim = prune_graph(copy.deepcopy(model), removed, input_size)
    check_slim(model, slim, input_size)
    return slim

"""Which convolutions write the same channels: the `coupled` method removes a channel from all
of them at once.

In a ResNet every block adds its last conv's output to the residual stream. Pruning each conv's
filters on its own (`structured`) leaves a stream channel alive as long as any writer still
carries it, so the slim network keeps the stream nearly full width and scatters each branch into
it (engine.pruning.slim). Removing stream channel c from every writer together makes it dead throughout
the stage: the stream narrows and the residual add is a plain add again. This is what
Torch-Pruning's dependency graph groups; here the groups are read off the shipped ResNets.

A group's channel c scores the sum over its members of filter c's score (for l1 the filters'
L1 norms), and every member ranks its filters by the group's scores: one order, so at any level
the members remove the same channels (their filter counts are equal, so their cuts are too).

Writers of one stream: the stem (when the first stage starts with an identity shortcut), the
projection shortcut that starts a stage, and the last conv of each block until the next
projection. A zero-padding (option A) shortcut also starts a new group: it carries the previous
stage's channels into the middle of the new, wider stream, where they stay alive whatever the
new stage removes (exact either way; those channels just are not taken out).
"""

from __future__ import annotations

import torch
from torch import nn

from engine.errors import PrunelabError
from engine.models.resnets import Bottleneck, CifarResNet, PadShortcut


def residual_groups(model: nn.Module) -> list[list[str]]:
    """The conv names of each residual stream of a shipped ResNet, in network order."""
    if not isinstance(model, CifarResNet):
        raise PrunelabError(
            f"--method coupled needs one of the shipped ResNets, not a {type(model).__name__}"
        )
    groups: list[list[str]] = []
    stream = ["conv1"]  # the stem's output is the first stream until a shortcut replaces it
    for stage in range(1, model.num_stages + 1):
        for index, block in enumerate(getattr(model, f"layer{stage}")):
            prefix = f"layer{stage}.{index}"
            shortcut = block.shortcut
            if isinstance(shortcut, PadShortcut):
                groups.append(stream)
                stream = []
            elif len(shortcut) > 0:  # a projection writes the new stream
                groups.append(stream)
                stream = [f"{prefix}.shortcut.0"]
            last = "conv3" if isinstance(block, Bottleneck) else "conv2"
            stream.append(f"{prefix}.{last}")
    groups.append(stream)
    return groups


def coupled_filter_scores(
    model: nn.Module, names: list[str], filter_scores: list[torch.Tensor]
) -> list[torch.Tensor]:
    """`filter_scores` (one vector per layer in `names`) with each residual group's members
    given the group's summed scores; layers in no group keep their own."""
    index = {name: i for i, name in enumerate(names)}
    coupled = list(filter_scores)
    for group in residual_groups(model):
        members = [index[name] for name in group if name in index]
        if len(members) < 2:
            continue
        total = torch.stack([filter_scores[i].double() for i in members]).sum(dim=0)
        for i in members:
            coupled[i] = total
    return coupled


def block_internal_convs(model: nn.Module) -> list[str]:
    """The convs inside a block (every block conv but its last): their channels are read by the
    next conv of the same block only, so removing them leaves every residual stream whole."""
    names = []
    for stage in range(1, _stages(model) + 1):
        for index, block in enumerate(getattr(model, f"layer{stage}")):
            depth = 3 if isinstance(block, Bottleneck) else 2
            names += [f"layer{stage}.{index}.conv{k}" for k in range(1, depth)]
    return names


def _stages(model: nn.Module) -> int:
    if not isinstance(model, CifarResNet):
        raise PrunelabError(f"expected one of the shipped ResNets, not a {type(model).__name__}")
    return model.num_stages


def readers(model: nn.Module) -> dict[str, list[str]]:
    """Per conv of a shipped ResNet, the layers that read its output channels at the same
    positions: the block's next conv, or every layer reading the residual stream it writes
    until a shortcut starts the next stream (with a zero-padding shortcut the old channels go on
    at an offset; those later readers are not counted)."""
    found: dict[str, list[str]] = {"conv1": []}
    writers = ["conv1"]
    for stage in range(1, _stages(model) + 1):
        for index, block in enumerate(getattr(model, f"layer{stage}")):
            prefix = f"layer{stage}.{index}"
            depth = 3 if isinstance(block, Bottleneck) else 2
            convs = [f"{prefix}.conv{k}" for k in range(1, depth + 1)]
            for first, second in zip(convs[:-1], convs[1:], strict=True):
                found[first] = [second]
            projection = not isinstance(block.shortcut, PadShortcut) and len(block.shortcut) > 0
            stream_readers = [convs[0]] + ([f"{prefix}.shortcut.0"] if projection else [])
            for writer in writers:
                found[writer] += stream_readers
            if projection or isinstance(block.shortcut, PadShortcut):
                writers = [f"{prefix}.shortcut.0"] if projection else []
            writers.append(convs[-1])
            for writer in writers:
                found.setdefault(writer, [])
    for writer in writers:
        found[writer].append("linear")
    return found


def group_filter_scores(
    model: nn.Module, names: list[str], filter_l1: list[torch.Tensor], coupled: bool
) -> list[torch.Tensor]:
    """The group score of every filter of a shipped ResNet: its filter's L1, its BatchNorm's
    |scale| and the L1 of every input column that reads the channel; `coupled` sums each
    residual stream's writers and counts each of its readers once."""
    from engine.pruning.slim import norm_after  # slim imports this module's neighbours

    modules = dict(model.named_modules())
    who_reads = readers(model)

    def columns(layer: str) -> torch.Tensor:
        weight = modules[layer].weight.detach().abs().double()
        return weight.sum(dim=[d for d in range(weight.dim()) if d != 1])

    def own(i: int) -> torch.Tensor:
        bn = norm_after(model, names[i])
        gamma = 0 if bn is None else bn.weight.detach().abs().double()
        return filter_l1[i].double() + gamma

    index = {name: i for i, name in enumerate(names)}
    scores = [
        own(i) + sum((columns(r) for r in who_reads.get(n, [])), 0) for i, n in enumerate(names)
    ]
    if not coupled:
        return scores
    for group in residual_groups(model):
        members = [index[name] for name in group if name in index]
        if len(members) < 2:
            continue
        shared = sorted({r for name in group for r in who_reads.get(name, [])})
        total = sum(own(i) for i in members) + sum((columns(r) for r in shared), 0)
        for i in members:
            scores[i] = total
    return scores

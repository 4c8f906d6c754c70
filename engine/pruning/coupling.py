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

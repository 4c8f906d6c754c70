"""Slim files of any traced model: the model spec plus the kept channels of each group.

No code is pickled: a slim file holds the spec (recorded beside it, as every checkpoint does),
`channels` (group root -> kept channel indices of the dense model) and the slim state dict.
Rebuilding builds the dense model from its spec, applies the same removal
(engine.pruning.graph.prune_graph) and loads the weights, strictly: a file whose shapes do not
fit its spec is refused.

A command that takes a dense checkpoint reads a slim file as its dense-shaped equivalent: each
slim tensor is placed back at the positions its values came from (found by pruning a copy whose
tensors hold their own flat positions), every removed position zero (a BatchNorm's running
variance 1), so the dense network computes exactly the slim one.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from engine.pruning.graph import TRACE_SIZE, channel_groups, prune_graph

GRAPH_SLIM_FORMAT = "prunelab-slim-graph/1"  # `format` of a slim file of a traced model


def removed_from_kept(dense: nn.Module, kept: dict[str, list[int]]) -> dict[str, list[int]]:
    """Per group root, the channels not kept; ValueError naming a root the model lacks or an
    index outside its channels."""
    modules = dict(dense.named_modules())
    removed = {}
    for root, channels in kept.items():
        module = modules.get(root)
        if not isinstance(module, nn.Conv2d | nn.Linear):
            raise ValueError(f"the file keeps channels of {root!r}, not a layer of this model")
        width = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        if any(not 0 <= c < width for c in channels) or channels != sorted(set(channels)):
            raise ValueError(f"the kept channels of {root} are not ascending within 0..{width - 1}")
        removed[root] = sorted(set(range(width)) - set(channels))
    return removed


def kept_from_removed(dense: nn.Module, removed: dict[str, list[int]]) -> dict[str, list[int]]:
    """Per group root with removed channels, the channels it keeps."""
    modules = dict(dense.named_modules())
    kept = {}
    for root, channels in removed.items():
        module = modules[root]
        width = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        kept[root] = sorted(set(range(width)) - set(channels))
    return kept


def rebuild_slim(
    dense: nn.Module,
    kept: dict[str, list[int]],
    state_dict: dict[str, torch.Tensor],
    input_size: tuple[int, ...] = TRACE_SIZE,
) -> nn.Module:
    """The slim network: `dense` (built from the file's spec) with the file's channels removed
    and its weights loaded strictly."""
    slim = prune_graph(dense, removed_from_kept(dense, kept), input_size)
    slim.load_state_dict(state_dict, strict=True)
    return slim.eval()


@torch.no_grad()
def dense_equivalent(
    dense: nn.Module,
    kept: dict[str, list[int]],
    state_dict: dict[str, torch.Tensor],
    input_size: tuple[int, ...] = TRACE_SIZE,
) -> dict[str, torch.Tensor]:
    """The dense-shaped state dict that computes what the slim one does."""
    positions = copy.deepcopy(dense).double()
    for _key, tensor in {
        **dict(positions.named_parameters()),
        **dict(positions.named_buffers()),
    }.items():
        if tensor.is_floating_point():
            tensor.copy_(torch.arange(tensor.numel(), dtype=torch.float64).view(tensor.shape))
    slim = prune_graph(positions, removed_from_kept(positions, kept), input_size)
    where = slim.state_dict()
    out = {}
    for key, meta in dense.state_dict().items():
        value = state_dict[key]
        if not meta.is_floating_point():
            out[key] = value.clone()
            continue
        fill = 1.0 if key.endswith("running_var") else 0.0
        full = torch.full((meta.numel(),), fill, dtype=value.dtype)
        full[where[key].flatten().long()] = value.flatten()
        out[key] = full.view(meta.shape)
    return out


def dead_channels(model: nn.Module, groups: list | None = None) -> dict[str, list[int]]:
    """Per group root, the channels no layer reads any more: every input column (and depthwise
    filter) that would read them is zero, so taking them out changes no output. Empty when
    every channel is alive."""
    from engine.pruning.graph import member_slices

    modules = dict(model.named_modules())
    found = {}
    for group in channel_groups(model) if groups is None else groups:
        if group.unsafe:
            continue
        readers = [m for m in group.members if m.kind == "in"]
        if not readers:
            continue
        alive = torch.zeros(group.width, dtype=torch.bool)
        for member in readers:
            for tensor, dim, _ in member_slices(modules, member, torch.arange(0))[:1]:
                other = [d for d in range(tensor.dim()) if d != dim]
                nonzero = (tensor.detach() != 0).sum(dim=other) > 0 if other else tensor != 0
                index = member.index.to(nonzero.device)
                hit = nonzero[index.clamp(min=0)] & (index >= 0)
                alive |= hit.any(dim=1).cpu()
        dead = torch.nonzero(~alive).flatten().tolist()
        if dead and len(dead) < group.width:
            found[group.root] = dead
    return found


def payload_parts(payload: dict) -> tuple[str, dict[str, list[int]], dict[str, torch.Tensor]]:
    """(model spec, kept channels, slim state dict) of a loaded graph slim file; ValueError
    naming what is wrong when it is damaged."""
    name, kept, state = payload.get("model"), payload.get("channels"), payload.get("net")
    if not isinstance(name, str) or not isinstance(kept, dict) or not isinstance(state, dict):
        raise ValueError("a slim file needs 'model', 'channels' and 'net'")
    if not all(isinstance(v, list) and all(isinstance(c, int) for c in v) for v in kept.values()):
        raise ValueError("'channels' must map layer names to lists of channel indices")
    return name, kept, state


def dense_for(build, name: str, state: dict[str, torch.Tensor]) -> nn.Module:
    """The dense model of spec `name` (built by `build(name, num_classes)`), with as many
    classes as the slim file's classifier has."""
    from engine.pruning.graph import classifier_name

    dense = build(name, 10)
    head = classifier_name(dense)
    weight = state.get(f"{head}.weight") if head else None
    if isinstance(weight, torch.Tensor) and weight.shape[0] != 10:
        dense = build(name, int(weight.shape[0]))
    return dense

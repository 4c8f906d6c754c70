"""Fixed pruning masks for training: pruned weights stay exactly 0 at every step boundary.

After each optimizer step the trainer calls `MaskSet.apply()`, which zeroes every pruned weight in
place with one `masked_fill_` per tensor. Whatever the step did to those weights (gradient,
momentum, weight decay) is undone before the next forward pass, so the network that trains is the
pruned network. There are no forward hooks and no `weight_orig` copies: the model stays a plain
model whose state dict loads anywhere. `masked_fill_` writes +0.0 (not -0.0, not NaN·0), so the
zeros are bit-exact.

Under a channel method (structured, coupled, internal) a removed filter's BatchNorm channel is
held at 0 too, scale and shift (on any model, with the input columns that read the channel:
engine.pruning.group_pruner): otherwise training revives its shift (through a residual add the channel's
ReLU still passes gradient), the channel emits a constant, and the trained network is no longer
the one with those channels taken out (a slim export of it would differ).

Masks are stored in checkpoints packed 8 per byte, so a resumed run trains the very same mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from engine.errors import CheckpointError
from engine.pruning.pruner import Pruner, make_pruner
from engine.pruning.scores import Score

_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


@dataclass
class MaskSet:
    """One boolean `pruned` tensor (True = held at 0) per prunable weight, by layer name."""

    names: list[str]
    weights: list[torch.Tensor]
    pruned: list[torch.Tensor]
    # channel methods: BatchNorm name -> (the BatchNorm, its removed channels), held at 0 too
    norms: dict[str, tuple[nn.Module, torch.Tensor]] = field(default_factory=dict)

    @classmethod
    def from_pruner(cls, pruner: Pruner) -> MaskSet:
        """The masks of the pruner's current level, on the weights' device."""
        masks, norms = pruner.masks(), pruner.norm_removed()
        return cls(
            list(pruner.names),
            list(pruner.weights),
            [
                ~masks[name].to(w.device)
                for name, w in zip(pruner.names, pruner.weights, strict=True)
            ],
            norms,
        )

    @classmethod
    def prune(
        cls,
        model: nn.Module,
        level_percent: float,
        method: str,
        include_classifier: bool = False,
        min_density: float = 0.0,
        score: Score | None = None,
    ) -> MaskSet:
        """Prune `model` in place to `level_percent` (ranked on its current weights by `score`,
        L1 by default) and return the masks. Under L1 weights that are already 0 rank first, so
        pruning an already pruned model further keeps every earlier zero (the masks only grow)."""
        pruner = make_pruner(model, method, include_classifier, min_density, score=score)
        pruner.set_level(level_percent)
        masks = cls.from_pruner(pruner)
        del pruner  # keep the pruned weights: no restore()
        return masks

    @torch.no_grad()
    def apply(self) -> None:
        """Zero every pruned weight in place: one fused op per tensor."""
        for weight, pruned in zip(self.weights, self.pruned, strict=True):
            weight.masked_fill_(pruned, 0.0)
        for bn, removed in self.norms.values():
            bn.weight.masked_fill_(removed, 0.0)
            bn.bias.masked_fill_(removed, 0.0)

    @property
    def level_percent(self) -> float:
        """Percent of the prunable weights held at zero by the masks."""
        total = sum(p.numel() for p in self.pruned)
        held = int(sum(int(p.sum()) for p in self.pruned))
        return 100.0 * held / max(total, 1)

    def state(self) -> dict[str, torch.Tensor]:
        """The masks packed 8 per byte (1/8 of a bool tensor), for a checkpoint."""
        state = {name: pack_bits(p.cpu()) for name, p in zip(self.names, self.pruned, strict=True)}
        state.update({name: pack_bits(removed.cpu()) for name, (_, removed) in self.norms.items()})
        return state

    @classmethod
    def from_state(cls, model: nn.Module, state: dict[str, torch.Tensor], source: str) -> MaskSet:
        """Masks saved by `state()`, bound to `model`'s weights (on their device)."""
        modules = dict(model.named_modules())
        names, weights, pruned = [], [], []
        norms: dict[str, tuple[nn.Module, torch.Tensor]] = {}
        for name, packed in state.items():
            module = modules.get(name)
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None:
                removed = unpack_bits(packed, module.num_features).to(module.weight.device)
                norms[name] = (module, removed)
                continue
            if module is None or not isinstance(getattr(module, "weight", None), torch.Tensor):
                raise CheckpointError(f"{source}: its masks name layer {name!r}, not in the model")
            weight = module.weight
            mask = unpack_bits(packed, weight.numel()).view(weight.shape)
            names.append(name)
            weights.append(weight)
            pruned.append(mask.to(weight.device).contiguous(memory_format=_format_of(weight)))
        return cls(names, weights, pruned, norms)


def _format_of(tensor: torch.Tensor) -> torch.memory_format:
    if tensor.dim() == 4 and not tensor.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A bool tensor as uint8, 8 values per byte, most significant bit first."""
    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.view(-1, 8) * _BIT_WEIGHTS).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, count: int) -> torch.Tensor:
    """The inverse of `pack_bits`: a flat bool tensor of `count` values."""
    bits = packed.reshape(-1, 1).bitwise_and(_BIT_WEIGHTS) != 0
    return bits.reshape(-1)[:count]

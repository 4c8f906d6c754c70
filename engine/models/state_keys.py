"""State-dict keys as other tools write them, mapped onto the model's own keys.

Checkpoints from the wild carry the same weights under other names:
- `module.` from DataParallel / DistributedDataParallel, `_orig_mod.` from torch.compile (both
  may stack, e.g. a compiled DDP model);
- one wrapper attribute in front of every key, e.g. `model.` in a PyTorch Lightning checkpoint
  (`self.model = resnet` inside the LightningModule);
- torchvision's ResNet names, kept by the CIFAR ResNets built from `torchvision.models.resnet`
  (torch.hub's chenyaofo/pytorch-cifar-models, torchdistill, torchvision-style ResNet18/50):
  the classifier `fc` is our `linear`, a block's projection shortcut `downsample.0/.1` is our
  `shortcut.0/.1`. Renamed only in a file that uses those names and not ours;
- no `num_batches_tracked` in BatchNorm entries saved by PyTorch < 0.4.1 (the pretrained CIFAR
  ResNet-20..1202 files). torch's own BatchNorm loader fills the counter with the module's value
  for such files; we do the same, and only where the rest of that BatchNorm's entries are there.

Nothing here guesses shapes: a genuinely different architecture still fails the strict check.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
BN_COUNTER = "num_batches_tracked"
# Top-level module names of every registry model (CifarResNet): conv1, bn1, layerN, linear.
_OUR_ROOTS = re.compile(r"^(conv1|bn1|layer\d+|linear)$")
_DOWNSAMPLE = re.compile(r"^(layer\d+\.\d+\.)downsample\.")


def strip_wrappers(key: str) -> str:
    """'module._orig_mod.conv1.weight' -> 'conv1.weight'."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def is_our_root(name: str) -> bool:
    return bool(_OUR_ROOTS.match(name))


def unwrap(
    state_dict: dict[str, torch.Tensor],
    is_root: Callable[[str], bool] = is_our_root,
    *,
    rename: bool = True,
) -> tuple[dict[str, torch.Tensor], str]:
    """Wrapper prefixes removed, plus the one leading attribute (e.g. Lightning's `model.`) that
    puts the most keys under a model root. Returns (state dict, the attribute removed or '').
    Last, torchvision's names become ours (`torchvision_names`) unless `rename` is False (a
    network of another spec keeps its own names)."""
    finish = torchvision_names if rename else dict
    plain = {strip_wrappers(k): v for k, v in state_dict.items()}

    def fitting(keys: list[str]) -> int:
        return sum(is_root(k.split(".", 1)[0]) for k in keys)

    best_prefix, best_score = "", fitting(list(plain))
    heads = {k.split(".", 1)[0] for k in plain if "." in k and not is_root(k.split(".", 1)[0])}
    for head in sorted(heads):
        prefix = head + "."
        score = fitting([strip_wrappers(k[len(prefix) :]) for k in plain if k.startswith(prefix)])
        if score > best_score:
            best_prefix, best_score = prefix, score
    if not best_prefix:
        return finish(plain), ""
    unwrapped = {
        (strip_wrappers(k[len(best_prefix) :]) if k.startswith(best_prefix) else k): v
        for k, v in plain.items()
    }
    return finish(unwrapped), best_prefix


def torchvision_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`fc.` -> `linear.` when the file has `fc.weight` and no `linear.weight`; a block's
    `downsample.` -> `shortcut.` when no block has a `shortcut.` key. Order is kept; names
    only, so a network of other shapes still fails the strict load."""
    keys = list(state_dict)
    classifier = "fc.weight" in state_dict and "linear.weight" not in state_dict
    shortcut = not any(re.match(r"layer\d+\.\d+\.shortcut\.", k) for k in keys)
    if not classifier and not (shortcut and any(_DOWNSAMPLE.match(k) for k in keys)):
        return state_dict

    def ours(key: str) -> str:
        if classifier and key.startswith("fc."):
            return "linear." + key[3:]
        return _DOWNSAMPLE.sub(r"\1shortcut.", key) if shortcut else key

    return {ours(k): v for k, v in state_dict.items()}


def fill_bn_counters(
    state_dict: dict[str, torch.Tensor], own: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], int]:
    """Add each missing BatchNorm `num_batches_tracked` the way torch does for pre-0.4.1 files
    (the model's own counter), but only where that BatchNorm's running mean is in the file."""
    filled = dict(state_dict)
    count = 0
    for key, value in own.items():
        if not key.endswith("." + BN_COUNTER) or key in filled:
            continue
        module = key[: -len(BN_COUNTER)]
        if module + "running_mean" in filled:
            filled[key] = value.detach().clone() if value.device.type != "meta" else torch.tensor(0)
            count += 1
    return filled, count

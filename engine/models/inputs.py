"""What a network is and expects, free of torch: the shipped networks' names and the input
normalisations checkpoints are trained with. The configs' choices and help are built from it."""

from __future__ import annotations

# resnet20..110: option-A (zero-pad) shortcuts as akamaster's files; resnet20b..110b: projection
# shortcuts as torch.hub's chenyaofo/pytorch-cifar-models and torchdistill files (engine.models.resnets).
MODEL_NAMES = (
    "resnet50",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet20b",
    "resnet32b",
    "resnet44b",
    "resnet56b",
    "resnet110b",
)
MODEL_FAMILIES = "resnet20..110 pad the shortcut with zeros, resnet20b..110b project it"
MODEL_HELP = (
    f"the network: a shipped name ({MODEL_FAMILIES}), tv:NAME (any torchvision classifier, "
    "e.g. tv:resnet18), or your own factory FILE.py:FUNCTION / package.module:FUNCTION, with "
    "keyword arguments as in net.py:build(width=32) (docs/your-own-network.md)"
)
# Per-channel normalisation. "cifar" is the seed's, and what torch.hub's
# chenyaofo/pytorch-cifar-models were trained with (their training logs); "imagenet" is what the
# widely used pretrained CIFAR ResNet-20..110 checkpoints were trained with; "cifar-pixel"
# (CIFAR-10's mean and its std over all training pixels) what torchdistill's CIFAR ResNets were
# trained with (its configs). Recorded in every checkpoint we write.
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar-pixel": ((0.49139968, 0.48215841, 0.44653091), (0.24703223, 0.24348513, 0.26158784)),
}
NORMALIZATION_HELP = (
    "cifar = the seed's constants (also torch.hub's chenyaofo files), imagenet = ImageNet "
    "mean/std, cifar-pixel = CIFAR-10's per-pixel std (torchdistill's files)"
)

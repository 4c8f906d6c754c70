"""Weight pruning on networks prunelab does not ship: every Conv2d (grouped and depthwise too) and
Linear of torchvision's families and of a user's factory file gets torch.nn.utils.prune's mask,
for every score, with the classifier rule as for the shipped ResNets; fine-tuning keeps the
pruned weights at zero."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from test_scores import gradient_score, random_score, reference_gradient, torch_masks
from tiny_runs import tiny_train_config

from engine.checkpoints.io import read_checkpoint
from engine.models.resnets import classifier_name
from engine.models.spec import build_model
from engine.pruning.pruner import Pruner, prunable_layers
from engine.training.finetune import finetune
from engine.training.finetune_config import FinetuneConfig
from engine.training.train import train

NET = f"{Path(__file__).parent / 'nets' / 'custom_block.py'}:build(width=8)"
FAMILIES = (
    "tv:resnet18",
    "tv:mobilenet_v3_small",
    "tv:efficientnet_b0",
    "tv:densenet121",
    "tv:vgg11_bn",
    NET,
)
LEVELS = (0, 33.3, 90)


def family_model(spec: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(spec, num_classes=10).eval()
    if spec == "tv:vgg11_bn":  # its 25088x4096 head takes minutes per test on a CPU: narrowed,
        model.avgpool = torch.nn.AdaptiveAvgPool2d(1)  # the same Linear-ReLU-Dropout layout
        model.classifier[0] = torch.nn.Linear(512, 256)
        model.classifier[3] = torch.nn.Linear(256, 256)
        model.classifier[6] = torch.nn.Linear(256, 10)
    return model


def batch(n: int = 4):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("spec", FAMILIES)
def test_every_conv_and_linear_is_prunable_but_the_classifier(spec: str) -> None:
    model = family_model(spec)
    layers = prunable_layers(model)
    convs = [m for _, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d))]
    linears = [m for _, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert len(layers) == len(convs) + len(linears) - 1
    assert classifier_name(model) not in dict(layers)
    if spec in ("tv:mobilenet_v3_small", "tv:efficientnet_b0", NET):
        assert any(m.groups > 1 for _, m in layers if isinstance(m, torch.nn.Conv2d))


# Every family with the l1 score; the other scores rank the same layers the same way whatever the
# family, so three families (depthwise, residual, the user's concatenation) cover them.
CASES = [(spec, "l1") for spec in FAMILIES] + [
    (spec, score)
    for spec in ("tv:resnet18", "tv:mobilenet_v3_small", NET)
    for score in ("random", "gradient")
]


@pytest.mark.parametrize(("spec", "score"), CASES)
@pytest.mark.parametrize("method", ["layerwise", "global"])
def test_masks_equal_torch_on_any_model(spec: str, method: str, score: str) -> None:
    model = family_model(spec)
    layers = prunable_layers(model)
    weights = [m.weight for _, m in layers]
    if score == "l1":
        made, scores = None, [w.detach().abs() for w in weights]
    elif score == "random":
        made = random_score(7)
        scores = made(model, weights)
    else:
        data = batch()
        made, scores = gradient_score(data), reference_gradient(model, layers, data)
    pruner = Pruner(copy.deepcopy(model), method, score=made)
    for level in LEVELS:
        pruner.set_level(level)
        expected = torch_masks(model, method, False, level, scores)
        ours = pruner.masks()
        assert list(ours) == list(expected)
        ranked = dict(zip([n for n, _ in layers], scores, strict=True))
        assert_equal_up_to_ties(ours, expected, ranked, method, (spec, level))


def assert_equal_up_to_ties(ours, expected, scores, method, where) -> None:
    """The same masks, except where equal scores straddle the threshold: millions of random
    float32 weights hold ties, and which of them topk keeps is not specified. The counts are
    equal per layer (layerwise) or in all (global), and every differing weight has the same
    score."""
    kept = {name: (int(ours[name].sum()), int(expected[name].sum())) for name in expected}
    if method == "layerwise":
        assert all(a == b for a, b in kept.values()), where
    assert sum(a for a, _ in kept.values()) == sum(b for _, b in kept.values()), where
    tied = torch.cat([scores[n][ours[n] != expected[n]].flatten() for n in expected])
    assert tied.numel() == 0 or bool((tied == tied[0]).all()), where


@pytest.mark.parametrize("spec", ["tv:mobilenet_v3_small", NET])
def test_finetune_keeps_pruned_weights_pruned(tmp_path: Path, spec: str) -> None:
    trained = train(tiny_train_config(tmp_path, model=spec, epochs=1, train_subset=128))
    assert trained.checkpoint is not None
    base = tiny_train_config(tmp_path, train_subset=128, test_subset=64, batch_size=32).to_dict()
    base = {k: v for k, v in base.items() if k in FinetuneConfig.__dataclass_fields__}
    config = FinetuneConfig(
        **{**base, "model": "auto", "checkpoint": trained.checkpoint, "level": 60.0, "epochs": 1}
    )
    result = finetune(config)
    assert result.checkpoint is not None and result.pruned_weights > 0
    state = read_checkpoint(result.checkpoint).state_dict
    model = build_model(spec, 10)
    layers = prunable_layers(model)
    zeros = sum(int((state[f"{name}.weight"] == 0).sum()) for name, _ in layers)
    assert zeros >= result.pruned_weights

"""Structured pruning evaluates the network after removal: slim logits equal the masked ones."""

import copy

import pytest
import torch
from torch import nn

from engine.models.resnets import build_model
from engine.pruning.pruner import Pruner, amount_to_prune
from engine.pruning.slim import (
    build_slim,
    dense_state_dict,
    kept_channels,
    load_slim,
    slim_model,
)

TOLERANCE = 1e-4  # max abs logit difference, fp32


def _trained_looking(name: str, seed: int = 0) -> nn.Module:
    """A model whose BatchNorms are not the identity (random statistics, scales, shifts),
    so a channel left with only its shift would show up in the logits."""
    torch.manual_seed(seed)
    model = build_model(name)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    ("name", "levels"),
    [
        ("resnet20", (10, 30, 50, 80, 100)),  # option-A (zero-pad) shortcuts
        ("resnet18", (30, 50, 80)),  # identity and 1x1 projection shortcuts
        ("resnet50", (30, 50)),  # bottlenecks with projection shortcuts
        ("resnet20b", (10, 50, 100)),  # 16/32/64 BasicBlocks with 1x1 projection shortcuts
    ],
)
def test_slim_logits_equal_masked_evaluation(name, levels, images):
    model = _trained_looking(name)
    widths = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    pruner = Pruner(model, "structured")
    dense_parameters = sum(p.numel() for p in model.parameters())
    for level in levels:
        pruner.set_level(level)
        with torch.no_grad():
            masked = model(images)
            slim = slim_model(model).eval()
            assert (slim(images) - masked).abs().max().item() <= TOLERANCE, (name, level)
        # the slim network really lost the channels: every conv keeps what the level leaves
        convs = {n: m for n, m in slim.named_modules() if isinstance(m, nn.Conv2d)}
        for conv, width in widths.items():
            kept = width - amount_to_prune(level, width)
            assert convs[conv].out_channels == max(kept, 1), (conv, level)
        assert sum(p.numel() for p in slim.parameters()) < dense_parameters


@pytest.mark.parametrize("name", ["resnet20", "resnet18"])
def test_slim_keeps_channels_last_and_folds(name, images):
    """A slim block's residual scatter keeps the activations' layout (index_add along the
    channels of a channels-last tensor returns a contiguous one, and every later conv then runs
    behind a reorder), and the slim network folds its BatchNorms like the dense one."""
    from engine.measure.fold import fold_batchnorm

    model = _trained_looking(name)
    Pruner(model, "structured").set_level(50)
    last = torch.channels_last
    with torch.no_grad():
        masked = model(images)
        slim = slim_model(model).eval().to(memory_format=last)
        layouts = []
        for layer in (slim.layer1, slim.layer2, slim.layer3):
            layer.register_forward_hook(
                lambda m, i, o: layouts.append(o.is_contiguous(memory_format=last))
            )
        logits = slim(images.contiguous(memory_format=last))
        assert layouts == [True, True, True]
        assert (logits - masked).abs().max().item() <= TOLERANCE
        folded = fold_batchnorm(slim)
        assert folded is not None and folded.folded_count == len(kept_channels(model))
        assert (folded(images) - masked).abs().max().item() <= TOLERANCE


def test_removed_channel_emits_zero_not_its_shift(images):
    """The old semantics (filter zeroed, BatchNorm kept) left relu(beta - gamma*mean/std)."""
    model = _trained_looking("resnet20")
    Pruner(model, "structured").set_level(50)
    bn = model.layer1[0].bn1
    dead = (bn.weight == 0) & (bn.bias == 0)
    assert int(dead.sum()) == amount_to_prune(50, bn.num_features)
    seen = {}
    model.layer1[0].bn1.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    with torch.no_grad():
        model(images)
    assert torch.count_nonzero(seen["out"][:, dead]) == 0


def test_restore_brings_batchnorm_back():
    model = _trained_looking("resnet18")
    original = copy.deepcopy(model.state_dict())
    pruner = Pruner(model, "structured")
    pruner.set_level(60)
    pruner.set_level(20)  # nested: channels between 20% and 60% come back with their BN
    masks = pruner.norm_masks()
    bn = model.layer2[0].bn1
    assert torch.equal(bn.weight != 0, masks["layer2.0.conv1"])
    pruner.restore()
    for key, value in model.state_dict().items():
        assert torch.equal(value, original[key]), key


def test_unstructured_methods_leave_batchnorm_alone():
    model = _trained_looking("resnet20")
    before = {k: v.clone() for k, v in model.state_dict().items() if ".bn" in k or "bn1" in k}
    Pruner(model, "layerwise").set_level(70)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_slim_rebuilds_from_spec_and_expands_to_dense(images):
    name = "resnet20"
    model = _trained_looking(name)
    Pruner(model, "structured").set_level(40)
    spec = kept_channels(model)
    slim = slim_model(model).eval()
    state = {k: v.clone() for k, v in slim.state_dict().items()}
    rebuilt = load_slim(name, spec, state)
    dense = build_model(name).eval()
    dense.load_state_dict(dense_state_dict(name, spec, state))
    with torch.no_grad():
        reference = slim(images)
        assert torch.equal(rebuilt(images), reference)
        assert (dense(images) - reference).abs().max().item() <= TOLERANCE
    # the meta skeleton has no data until loaded
    assert all(p.is_meta for p in build_slim(name, spec).parameters())


def test_spec_from_another_architecture_is_refused():
    spec = kept_channels(build_model("resnet20"))
    with pytest.raises(ValueError, match="channel spec does not fit"):
        build_slim("resnet18", spec)

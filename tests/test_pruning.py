"""Masks equal torch.nn.utils.prune's; levels are absolute and nested; nothing else is touched."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from engine.models.resnets import build_model
from engine.pruning.pruner import Pruner, amount_to_prune, measure_sparsity, prunable_layers


class Small(nn.Module):
    """Two convs and two Linears: the last Linear is the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 12, 3, bias=False)
        self.fc = nn.Linear(12, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.conv2(torch.relu(self.bn(self.conv1(x)))).mean(dim=(2, 3))
        return self.head(torch.relu(self.fc(x)))


def torch_masks(model, method, include_classifier, level):
    ref = copy.deepcopy(model)
    layers = prunable_layers(ref, include_classifier)
    if method == "layerwise":
        for _, module in layers:
            prune.l1_unstructured(module, "weight", amount=level / 100)
    elif method == "global":
        prune.global_unstructured(
            [(m, "weight") for _, m in layers],
            pruning_method=prune.L1Unstructured,
            amount=level / 100,
        )
    else:
        for _, module in layers:
            prune.ln_structured(module, "weight", amount=level / 100, n=1, dim=0)
    return {name: module.weight_mask.bool() for name, module in layers}


@pytest.mark.parametrize("method", ["layerwise", "global", "structured"])
@pytest.mark.parametrize("include_classifier", [False, True])
def test_masks_equal_torch(method, include_classifier):
    torch.manual_seed(0)
    for model in (Small(), build_model("resnet20")):
        pruner = Pruner(copy.deepcopy(model), method, include_classifier)
        for level in (0, 5, 12.5, 33.3, 50, 90, 97.5, 100):
            pruner.set_level(level)
            expected = torch_masks(model, method, include_classifier, level)
            ours = pruner.masks()
            assert list(ours) == list(expected)
            for name in expected:
                assert torch.equal(ours[name], expected[name]), (method, level, name)
                weight = dict(pruner.layers)[name].weight
                dense = dict(model.named_modules())[name].weight
                assert torch.equal(weight, dense * expected[name])


def test_classifier_spared_by_default_and_included_on_request():
    model = Small()
    assert [n for n, _ in prunable_layers(model)] == ["conv1", "conv2", "fc"]
    assert [n for n, _ in prunable_layers(model, include_classifier=True)][-1] == "head"
    resnet = build_model("resnet20")
    assert "linear" not in dict(prunable_layers(resnet))
    before = resnet.linear.weight.clone()
    Pruner(resnet).set_level(90)
    assert torch.equal(resnet.linear.weight, before)


def test_levels_are_absolute_and_nested_and_restorable():
    torch.manual_seed(1)
    model = Small()
    original = copy.deepcopy(model.state_dict())
    pruner = Pruner(model, "layerwise")
    pruner.set_level(50)
    at_50 = pruner.masks()
    pruner.set_level(60)
    at_60 = pruner.masks()
    for name, module in pruner.layers:
        numel = module.weight.numel()
        # 60% of the ORIGINAL weights, not 60% of what 50% left behind
        assert int((~at_60[name]).sum()) == amount_to_prune(60, numel)
        assert int((module.weight == 0).sum()) == amount_to_prune(60, numel)
        assert not (at_60[name] & ~at_50[name]).any()  # nested: kept at 60 => kept at 50
    direct = Pruner(copy.deepcopy(Small()), "layerwise")
    direct_model = copy.deepcopy(model)
    direct_model.load_state_dict(original)
    direct = Pruner(direct_model, "layerwise")
    direct.set_level(60)
    assert all(torch.equal(direct.masks()[n], at_60[n]) for n in at_60)
    pruner.set_level(20)  # going back down brings the exact weights back
    for name, module in pruner.layers:
        dense = original[f"{name}.weight"]
        assert torch.equal(module.weight, dense * pruner.masks()[name])
    pruner.restore()
    for key, value in model.state_dict().items():
        assert torch.equal(value, original[key])
    # biases and BatchNorm untouched throughout; no pruning hooks or extra parameters
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_ties_prune_exact_counts_consistently():
    model = Small()
    with torch.no_grad():
        for _, module in prunable_layers(model, True):
            module.weight.copy_(torch.randint(-2, 3, module.weight.shape).float())
    pruner = Pruner(model, "layerwise", include_classifier=True)
    previous = None
    for level in (10, 30, 50, 70):
        pruner.set_level(level)
        masks = pruner.masks()
        for name, module in pruner.layers:
            assert int((~masks[name]).sum()) == amount_to_prune(level, module.weight.numel())
            kept = module.weight.abs()[masks[name]]
            dropped = pruner.dense[pruner.names.index(name)].abs()[~masks[name]]
            if kept.numel() and dropped.numel():
                assert dropped.max() <= kept.min()  # never keeps a smaller |w| than it drops
        if previous is not None:
            assert all(not (masks[n] & ~previous[n]).any() for n in masks)
        previous = masks


def test_channels_last_weights_get_the_same_masks():
    torch.manual_seed(2)
    model = build_model("resnet20")
    twin = copy.deepcopy(model).to(memory_format=torch.channels_last)
    a, b = Pruner(model, "global"), Pruner(twin, "global")
    a.set_level(70)
    b.set_level(70)
    for name in a.masks():
        assert torch.equal(a.masks()[name], b.masks()[name])
    for (_, m1), (_, m2) in zip(a.layers, b.layers, strict=True):
        assert torch.equal(m1.weight, m2.weight)


def test_min_density_keeps_every_layer_alive():
    torch.manual_seed(3)
    model = Small()
    with torch.no_grad():
        model.conv1.weight.mul_(1e-3)  # the global ranking would empty this layer first
    pruner = Pruner(model, "global", min_density=0.05)
    pruner.set_level(95)
    sparsity = measure_sparsity(model, pruner.layers)
    assert all(value <= 95.0 + 1e-9 for value in sparsity.per_layer.values())
    assert sparsity.per_layer["conv1"] < 100.0


def test_measure_sparsity_counts_real_zeros():
    model = Small()
    layers = prunable_layers(model)
    pruner = Pruner(model, "layerwise")
    pruner.set_level(40)
    s = measure_sparsity(model, layers)
    expected = sum(amount_to_prune(40, m.weight.numel()) for _, m in layers)
    assert s.prunable_zeros == expected
    assert s.prunable == sum(m.weight.numel() for _, m in layers)
    assert s.parameters == sum(p.numel() for p in model.parameters())
    bn_bias_zeros = model.bn.bias.numel()  # BatchNorm's bias starts at 0: a real zero, counted
    assert s.nonzero_parameters == s.parameters - expected - bn_bias_zeros
    assert 0 < s.total_percent < s.percent


def test_resnet50_prunable_count_and_full_level():
    model = build_model("resnet50")
    pruner = Pruner(model, "layerwise")
    assert pruner.prunable_count == 23_467_712 - 2048 * 10  # the classifier is spared
    assert len(pruner.layers) == 53


def small_with_zeros() -> Small:
    """A seeded `Small` with zeros before any pruning: a dead filter, scattered weights, a bias."""
    torch.manual_seed(5)
    model = Small()
    with torch.no_grad():
        model.conv1.weight[2] = 0  # a dead filter
        model.conv2.weight.view(-1)[::7] = 0
        model.fc.weight[:, :3] = 0
        model.fc.bias[:4] = 0
    return model


@pytest.mark.parametrize("method", ["layerwise", "global", "structured"])
@pytest.mark.parametrize("include_classifier", [False, True])
def test_bookkept_sparsity_equals_a_scan(method, include_classifier):
    """The pruner's own counts give what scanning every tensor gives, zeros that were there
    before pruning (a whole filter, scattered weights, a bias) included, going up and down."""
    model = small_with_zeros()
    pruner = Pruner(model, method, include_classifier, min_density=0.1 * (method == "global"))
    for level in (0, 3, 40, 12.5, 90, 100, 0, 65):
        pruner.set_level(level)
        assert pruner.sparsity() == measure_sparsity(model, pruner.layers), (method, level)
    pruner.set_layer_level("conv2", 30)
    assert pruner.sparsity() == measure_sparsity(model, pruner.layers)

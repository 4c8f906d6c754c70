"""Architectures: exact parameter counts, the seed's module names, shapes and MAC counts."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn as nn

from engine.config import MODEL_NAMES
from engine.measure.cost import count_macs
from engine.models.resnets import (
    MODELS,
    build_model,
    classifier_name,
    count_parameters,
)

PARAMETERS = {
    "resnet50": 23_520_842,
    "resnet18": 11_173_962,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
}


@pytest.fixture(scope="module")
def resnet50() -> nn.Module:
    torch.manual_seed(0)
    return build_model("resnet50").eval()


def _expected_resnet50_shapes() -> dict[str, tuple[int, ...]]:
    """kuangliu's ResNet50 state dict, key by key in order, rebuilt from DESIGN section 4."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(name: str, c: int) -> None:
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{p}"] = (c,)
        shapes[f"{name}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 3, 3)
    bn("bn1", 64)
    in_planes = 64
    for k, (planes, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True), 1):
        for i in range(n):
            p = f"layer{k}.{i}"
            shapes[f"{p}.conv1.weight"] = (planes, in_planes, 1, 1)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (4 * planes, planes, 1, 1)
            bn(f"{p}.bn3", 4 * planes)
            if i == 0:  # stride 2, or layer1's widening from 64 to 256
                shapes[f"{p}.shortcut.0.weight"] = (4 * planes, in_planes, 1, 1)
                bn(f"{p}.shortcut.1", 4 * planes)
            in_planes = 4 * planes
    shapes["linear.weight"] = (10, 2048)
    shapes["linear.bias"] = (10,)
    return shapes


def _bottleneck_resnet50_macs() -> int:
    """Conv + Linear MACs of the CIFAR ResNet50 by hand: out_h * out_w * out_c * k * k * in_c."""
    macs = 32 * 32 * 64 * 3 * 3 * 3
    size, in_planes = 32, 64
    for k, (planes, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True)):
        for i in range(n):
            stride = 2 if (k > 0 and i == 0) else 1
            out = size // stride
            macs += size * size * planes * in_planes  # 1x1 reduce at the input resolution
            macs += out * out * planes * planes * 9  # 3x3 with the stride
            macs += out * out * 4 * planes * planes  # 1x1 expand
            if i == 0:
                macs += out * out * 4 * planes * in_planes  # projection shortcut
            size, in_planes = out, 4 * planes
    return macs + 2048 * 10


def _basic_resnet_macs(n: int) -> int:
    """Conv + Linear MACs of He et al.'s 6n+2 CIFAR ResNet (option A shortcuts are free)."""
    macs = 32 * 32 * 16 * 27
    size, in_planes = 32, 16
    for k, planes in enumerate((16, 32, 64)):
        for i in range(n):
            out = size // 2 if (k > 0 and i == 0) else size
            macs += out * out * planes * in_planes * 9 + out * out * planes * planes * 9
            size, in_planes = out, planes
    return macs + 64 * 10


def test_registry_matches_config_names() -> None:
    assert set(MODELS) == set(MODEL_NAMES)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_parameter_counts(name: str) -> None:
    assert count_parameters(build_model(name)) == PARAMETERS[name]


def test_resnet50_state_dict_is_kuangliu_key_for_key(resnet50: nn.Module) -> None:
    expected = _expected_resnet50_shapes()
    got = {k: tuple(v.shape) for k, v in resnet50.state_dict().items()}
    assert list(got) == list(expected)
    assert got == expected


def test_resnet50_layers(resnet50: nn.Module) -> None:
    names = dict(resnet50.named_modules())
    for name in ("conv1", "bn1", "linear", "layer1.0.shortcut.0", "layer1.0.shortcut.1"):
        assert name in names
    for k, n in zip((1, 2, 3, 4), (3, 4, 6, 3), strict=True):
        for i in range(n):
            for part in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3"):
                assert f"layer{k}.{i}.{part}" in names
        assert f"layer{k}.{n}.conv1" not in names
    assert names["layer2.1.shortcut"] is not None and len(names["layer2.1.shortcut"]) == 0
    assert not any(isinstance(m, nn.MaxPool2d) for m in resnet50.modules())
    convs = [m for m in resnet50.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in resnet50.modules() if isinstance(m, nn.Linear)]
    assert (len(convs), len(linears)) == (53, 1)
    assert all(m.bias is None for m in convs)
    assert names["layer2.0.conv2"].stride == (2, 2) and names["layer2.0.conv1"].stride == (1, 1)
    assert sum(m.weight.numel() for m in convs + linears) == 23_467_712
    assert classifier_name(resnet50) == "linear"


def test_resnet50_forward(resnet50: nn.Module) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        out = resnet50(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["resnet20", "resnet56"])
def test_basic_resnets_forward(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert classifier_name(model) == "linear"
    # Option A shortcuts hold no parameters, so the state dict has no shortcut keys.
    assert not any("shortcut" in k for k in model.state_dict())
    assert model.linear.in_features == 64


def test_option_a_shortcut_subsamples_and_zero_pads() -> None:
    model = build_model("resnet20")
    shortcut = model.layer2[0].shortcut
    x = torch.randn(2, 16, 32, 32)
    y = shortcut(x)
    assert y.shape == (2, 32, 16, 16)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert not y[:, :8].any() and not y[:, 24:].any()
    # A named module, not a lambda: the model can be copied and pickled.
    pickle.dumps(copy.deepcopy(model))


def test_basic_resnets_use_kaiming_normal_init() -> None:
    torch.manual_seed(0)
    weight = build_model("resnet20").layer3[1].conv1.weight  # 64 x 64 x 3 x 3, fan_in 576
    assert weight.std().item() == pytest.approx((2 / 576) ** 0.5, rel=0.05)


def test_num_classes() -> None:
    model = build_model("resnet20", num_classes=100)
    assert model.linear.out_features == 100
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 100)


def test_macs_resnet50(resnet50: nn.Module) -> None:
    exact = _bottleneck_resnet50_macs()
    macs = count_macs(resnet50)
    assert 1.28e9 < macs < 1.32e9
    assert abs(macs - exact) <= 0.01 * exact
    assert macs == exact


def test_macs_basic_resnets() -> None:
    macs = count_macs(build_model("resnet20"))
    assert macs == _basic_resnet_macs(3)
    assert macs == pytest.approx(40.8e6, rel=0.01)
    assert count_macs(build_model("resnet56")) == _basic_resnet_macs(9)


def test_count_macs_leaves_model_untouched() -> None:
    model = build_model("resnet20").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model)
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.layer1[0].conv1._forward_hooks


def test_unknown_model_name() -> None:
    with pytest.raises(ValueError) as info:
        build_model("resnet51")
    message = str(info.value)
    assert "resnet51" in message
    assert all(name in message for name in MODEL_NAMES)

"""The coupled method: a residual channel goes from every conv that writes it, so the slim
network's residual stream narrows, and it still evaluates the network after removal."""

import pytest
import torch
from test_slim import TOLERANCE, _trained_looking
from torch import nn

from engine.errors import PrunelabError
from engine.pruning.coupling import residual_groups
from engine.pruning.pruner import Pruner, amount_to_prune
from engine.pruning.slim import SlimBlock, kept_channels, slim_model


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_groups_are_the_writers_of_each_residual_stream():
    from engine.models.resnets import build_model

    r18 = residual_groups(build_model("resnet18"))
    assert r18[0] == ["conv1", "layer1.0.conv2", "layer1.1.conv2"]  # identity first stage
    assert r18[1] == ["layer2.0.shortcut.0", "layer2.0.conv2", "layer2.1.conv2"]
    r50 = residual_groups(build_model("resnet50"))
    assert r50[0] == ["conv1"]  # layer1 starts with a projection: the stem stands alone
    assert r50[1][0] == "layer1.0.shortcut.0" and len(r50[3]) == 7  # layer3: 6 blocks + 1
    r20 = residual_groups(build_model("resnet20"))  # zero padding starts a new group
    assert r20[1] == ["layer2.0.conv2", "layer2.1.conv2", "layer2.2.conv2"]
    with pytest.raises(PrunelabError, match="shipped ResNets"):
        residual_groups(nn.Sequential(nn.Conv2d(3, 4, 3)))


@pytest.mark.parametrize(
    ("name", "levels"),
    [("resnet18", (30, 50, 80)), ("resnet50", (50,)), ("resnet20b", (10, 50, 100))],
)
def test_a_group_removes_the_same_channels_and_the_stream_narrows(name, levels, images):
    model = _trained_looking(name)
    groups = residual_groups(model)
    pruner = Pruner(model, "coupled")
    modules = dict(model.named_modules())
    for level in levels:
        pruner.set_level(level)
        kept = kept_channels(model)
        for group in groups:
            sets = {tuple(kept[conv]) for conv in group}
            assert len(sets) == 1, (group, level)  # one set of channels for every writer
            # the removed ones have the smallest summed L1 norms of the group's filters
            width = modules[group[0]].out_channels
            norms = sum(modules[c].weight.detach().abs().flatten(1).sum(1) for c in group)
            removed = sorted(set(range(width)) - set(kept[group[0]]))
            assert len(removed) == amount_to_prune(level, width)
            if removed and len(removed) < width:
                assert norms[removed].max() <= norms[list(kept[group[0]])].min()
        with torch.no_grad():
            masked = model(images)
            slim = slim_model(model).eval()
            assert (slim(images) - masked).abs().max().item() <= TOLERANCE, (name, level)
        # every block adds two full-width branches: no scatter into a wider stream
        blocks = [m for m in slim.modules() if isinstance(m, SlimBlock)]
        assert all(b.main_full and b.short_full for b in blocks), (name, level)
        if 0 < level < 100:
            width = model.linear.in_features
            assert slim.linear.in_features == width - amount_to_prune(level, width)


def test_zero_padding_shortcuts_stay_exact(images):
    """resnet20 (option A): the padded shortcut keeps the previous stage's channels alive in the
    middle of the wider stream; the slim network keeps them and still equals the masked one."""
    model = _trained_looking("resnet20")
    pruner = Pruner(model, "coupled")
    for level in (30, 60, 100):
        pruner.set_level(level)
        with torch.no_grad():
            masked = model(images)
            assert (slim_model(model).eval()(images) - masked).abs().max().item() <= TOLERANCE


def test_coupled_and_structured_agree_where_nothing_is_coupled():
    """Internal channels (a block's first conv) are ranked as structured ranks them."""
    a, b = _trained_looking("resnet20b"), _trained_looking("resnet20b")
    Pruner(a, "coupled").set_level(50)
    Pruner(b, "structured").set_level(50)
    for name in ("layer1.0.conv1", "layer2.1.conv1", "layer3.2.conv1"):
        assert kept_channels(a)[name] == kept_channels(b)[name]
    assert kept_channels(a)["layer2.1.conv2"] != kept_channels(b)["layer2.1.conv2"]

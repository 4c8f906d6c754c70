"""Channel methods on any traced model (engine.pruning.graph, engine.pruning.group_pruner): the
slim network's logits equal the masked network's for every family, a group that cannot be
removed exactly is left whole and named, fine-tuning keeps removed channels removed."""

import copy
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.vgg import VGG, make_layers

from engine.measure.cost import count_macs
from engine.pruning.graph import channel_groups, check_slim, prune_graph
from engine.pruning.group_pruner import GroupPruner
from engine.pruning.masks import MaskSet
from engine.pruning.pruner import Pruner, make_pruner
from engine.pruning.scores import make_score
from tests.user_net import build as user_net


def _small_vgg() -> nn.Module:
    """torchvision's VGG with BatchNorm (vgg11_bn's layer pattern at 1/8 width, a narrow head):
    the flatten that maps each channel onto 49 classifier columns is the same."""
    layers = make_layers([8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"], batch_norm=True)
    model = VGG(layers, num_classes=10)
    model.classifier = nn.Sequential(
        nn.Linear(64 * 49, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 32), nn.ReLU(),
        nn.Dropout(), nn.Linear(32, 10),
    )  # fmt: skip
    return model


FAMILIES = {
    "resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "mobilenet_v3_small": lambda: torchvision.models.mobilenet_v3_small(num_classes=10),
    "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(num_classes=10),
    # densenet121's class and dense blocks (concatenations), fewer and narrower layers
    "densenet": lambda: torchvision.models.DenseNet(8, (2, 2, 2, 2), 16, bn_size=2, num_classes=10),
    "vgg_bn": _small_vgg,
    "user": user_net,
}


def _trained_looking(model: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorms that are not the identity, so a channel left emitting its shift would show."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: on a shared CPU a stalled worker costs each small conv ~30 ms."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _flops_macs(model: nn.Module) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("family", FAMILIES)
def test_slim_logits_equal_masked_for_every_family(family, images):
    torch.manual_seed(0)
    model = _trained_looking(FAMILIES[family]())
    dense_macs = count_macs(model)
    for method, score in (("structured", "l1"), ("coupled", "group")):
        pruner = make_pruner(model, method, score=make_score(score))
        assert isinstance(pruner, GroupPruner) and pruner.groups, method
        pruner.set_level(50)
        slim = pruner.slim()
        with torch.no_grad():
            masked, got = model(images), slim.eval()(images)
        assert (masked - got).abs().max() <= 1e-5 * max(1.0, masked.abs().max()), method
        macs = count_macs(slim)
        assert macs == _flops_macs(slim), method  # the count is FlopCounterMode's
        assert macs < dense_macs, method
        pruner.restore()


def test_restore_brings_back_every_weight():
    model = _trained_looking(FAMILIES["user"]())
    before = copy.deepcopy(model.state_dict())
    pruner = GroupPruner(model, "coupled")
    pruner.set_level(60)
    assert pruner.sparsity().percent > 0
    pruner.set_level(20)
    pruner.restore()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_concatenation_and_depthwise_groups():
    """The depthwise conv, its BatchNorm and the SE layers go with the channels they carry; a
    concatenation read by a depthwise conv makes one group of both branches, each at its
    offset."""
    groups = {g.root: g for g in channel_groups(user_net())}
    stem = groups["stem.0"]
    assert {"left.depthwise", "left.se.reduce", "left.se.expand", "right.0"} <= stem.names()
    (concat,) = [g for g in groups.values() if "right.0" in g.producers]
    assert concat.width == 24 and not concat.unsafe
    rows = {m.name: m.index.flatten().tolist() for m in concat.members if m.kind == "out"}
    assert rows["left.pointwise"][:16] == list(range(16)) and set(rows["left.pointwise"][16:]) == {
        -1
    }
    assert set(rows["right.0"][:16]) == {-1} and rows["right.0"][16:] == list(range(8))


def test_internal_keeps_streams_stem_and_classifier_whole(images):
    model = _trained_looking(FAMILIES["resnet18"]())
    pruner = GroupPruner(model, "internal")
    assert {g.root for g in pruner.groups} == {
        f"layer{s}.{b}.conv1" for s in range(1, 5) for b in range(2)
    }
    pruner.set_level(50)
    slim = pruner.slim()
    assert slim.conv1.out_channels == 64 and slim.fc.in_features == 512
    assert slim.layer1[0].conv1.out_channels == 32


class Normed(nn.Module):
    """A GroupNorm after the first conv: that conv's channels cannot come out exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.norm = nn.GroupNorm(2, 8)
        self.inner = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.inner(self.norm(self.conv(x))))
        return self.head(x.mean((2, 3)))


def test_layer_norm_group_is_left_whole_and_named():
    pruner = GroupPruner(Normed(), "structured")
    assert [root for root, _ in pruner.left_whole] == ["conv"]
    assert "norm normalises over the channels (GroupNorm)" in pruner.left_whole[0][1]
    assert [g.root for g in pruner.groups] == ["inner"]


def test_sweep_of_any_model_costs_its_slim_levels_and_names_what_stays(tmp_path):
    from engine.config import SweepConfig
    from engine.events import Notice
    from engine.options import parse_levels
    from engine.sweep.run import run_sweep

    events = []
    config = SweepConfig(
        checkpoint="in memory",
        dataset="synthetic",
        test_subset=20,
        device="cpu",
        levels=parse_levels("0,50"),
        method="coupled",
        run_dir=str(tmp_path / "runs"),
        eval_batch_size=20,
    )
    result = run_sweep(config, events.append, model=Normed())
    warnings = [e.text for e in events if isinstance(e, Notice) and e.level == "warning"]
    assert any(w.startswith("conv keeps all its channels: norm normalises") for w in warnings)
    dense, half = result.points
    assert half.macs < dense.macs and half.parameters < dense.parameters


def test_group_score_counts_the_readers():
    """Two filters of equal L1: the group score removes the one whose readers weigh less."""
    model = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU(), nn.Conv2d(2, 4, 1, bias=False))
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", nn.Flatten())
    model.add_module("head", nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].weight[1] *= 1.01  # filter 1 is larger by L1 alone
        model[2].weight.fill_(0.1)
        model[2].weight[:, 1] = 0.001  # but channel 1 is hardly read
    l1 = GroupPruner(model, "structured")
    group = GroupPruner(model, "structured", score=make_score("group"))
    first = [g.root for g in l1.groups].index("0")
    assert l1._orders[first][0] == 0 and group._orders[first][0] == 1


def test_finetuning_keeps_removed_channels_removed(images):
    model = _trained_looking(FAMILIES["user"]()).train()
    masks = MaskSet.prune(model, 50, "coupled")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        loss = model(images).logsumexp(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        masks.apply()
    model.eval()
    for name, weight, pruned in zip(masks.names, masks.weights, masks.pruned, strict=True):
        assert not weight[pruned].any(), name
    assert masks.norms, "BatchNorm channels are held too"
    # the trained network is still the slim one of the same channels
    pruner = GroupPruner(copy.deepcopy(model), "coupled")
    pruner.set_level(50)
    slim = prune_graph(copy.deepcopy(model), pruner.removed())
    check_slim(model, slim)


def test_shipped_resnet_internal_and_group_score(images):
    from engine.models.resnets import build_model
    from engine.pruning.slim import slim_model

    model = _trained_looking(build_model("resnet20"))
    for score in ("l1", "group"):
        pruner = Pruner(model, "internal", score=make_score(score))
        assert all(name.endswith("conv1") and name != "conv1" for name in pruner.names)
        pruner.set_level(50)
        slim = slim_model(model).eval()
        with torch.no_grad():
            assert (model(images) - slim(images)).abs().max() < 1e-4
        assert slim.layer1[0].conv1.out_channels == 8 and slim.layer1[0].conv2.out_channels == 16
        pruner.restore()
    coupled = Pruner(model, "coupled", score=make_score("group"))
    coupled.set_level(50)
    with torch.no_grad():
        assert (model(images) - slim_model(model).eval()(images)).abs().max() < 1e-4


def test_slim_file_round_trips_without_code(tmp_path, images, monkeypatch):
    """A graph slim file is the spec, the kept channels per group and the slim weights: it
    rebuilds the slim network, and reads back dense-shaped computing the same logits."""
    from engine.checkpoints import io
    from engine.pruning.graph_files import GRAPH_SLIM_FORMAT, dense_equivalent, kept_from_removed

    def build(name, num_classes=10):
        assert name == "user.py:build"
        return user_net(num_classes)

    monkeypatch.setattr(io, "build_model", build)
    model = _trained_looking(user_net(7))
    pruner = GroupPruner(model, "coupled")
    pruner.set_level(40)
    slim = pruner.slim()
    payload = {
        "format": GRAPH_SLIM_FORMAT,
        "model": "user.py:build",
        "channels": kept_from_removed(model, pruner.removed()),
        "net": slim.state_dict(),
    }
    path = tmp_path / "net.slim.pth"
    torch.save(payload, path)
    rebuilt = io.read_slim(path)
    dense = user_net(7).eval()
    dense.load_state_dict(dense_equivalent(user_net(7), payload["channels"], payload["net"]))
    with torch.no_grad():
        want = model(images)
        assert (rebuilt(images) - want).abs().max() < 1e-5
        assert (dense(images) - want).abs().max() < 1e-5
    assert sum(p.numel() for p in rebuilt.parameters()) < sum(p.numel() for p in dense.parameters())
    payload["channels"] = {"nowhere": [0]}
    torch.save(payload, path)
    with pytest.raises(io.CheckpointError, match="damaged slim file.*nowhere"):
        io.read_slim(path)


def test_level_costs_count_the_slim_network():
    from engine.measure.cost import LevelCoster, running_parameters
    from engine.runtime.device import Placement

    model = _trained_looking(user_net())
    coster = LevelCoster(model, "structured", Placement(torch.device("cpu"), "fp32", False))
    pruner = make_pruner(model, "structured")
    pruner.set_level(50)
    cost = coster.at_level()
    slim = pruner.slim()
    assert cost.macs == count_macs(slim) < coster.dense.macs
    assert cost.parameters == sum(p.numel() for p in slim.parameters())
    assert running_parameters(model) == cost.parameters


def test_set_removed_masks_exactly_the_given_channels(images):
    """Another tool's choice of channels, masked: its pruned network is checked against it."""
    model = _trained_looking(user_net())
    pruner = GroupPruner(model, "structured")
    pruner.set_removed({"mix.pointwise": [3, 0]})
    assert pruner.removed() == {"mix.pointwise": [0, 3]}
    assert not model.mix.pointwise.weight[[0, 3]].any() and not model.head.weight[:, [0, 3]].any()
    assert pruner.slim().mix.pointwise.out_channels == 30
    with pytest.raises(ValueError, match="no prunable group is rooted at nowhere"):
        pruner.set_removed({"nowhere": [0]})


def test_macs_of_a_linear_over_pixels_equal_flop_counter():
    """ConvNeXt applies its Linear layers to (n, h, w, channels): every pixel counts."""

    class PixelMlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.mlp = nn.Linear(8, 16)
            self.head = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.mlp(self.conv(x).permute(0, 2, 3, 1))
            return self.head(x.mean((1, 2)))

    model = PixelMlp()
    assert count_macs(model) == _flops_macs(model) == 32 * 32 * (8 * 27 + 8 * 16) + 16 * 10


def test_export_slim_of_a_user_network_loads_in_sweep(tmp_path):
    """export --format slim of a factory file's network: no code in the file, read back by
    read_slim and by a sweep (its level 0 runs, and costs, the slim network)."""
    from engine.checkpoints.io import read_slim
    from engine.config import SweepConfig
    from engine.export.config import ExportConfig
    from engine.export.writer import export_pruned
    from engine.options import parse_levels
    from engine.sweep.run import run_sweep

    spec = f"{Path(__file__).parent / 'user_net.py'}:build"
    checkpoint = tmp_path / "user.pth"
    model = _trained_looking(user_net())
    torch.save({"net": model.state_dict(), "model": spec}, checkpoint)
    out = tmp_path / "user.slim.pth"
    config = ExportConfig(
        checkpoint=str(checkpoint), method="coupled", level=50, format="slim", output=str(out),
        run_dir=str(tmp_path / "runs"),
    )  # fmt: skip
    result = export_pruned(config)
    slim = read_slim(out)
    assert result.parameters == sum(p.numel() for p in slim.parameters()) < result.dense_parameters
    sweep = run_sweep(
        SweepConfig(
            checkpoint=str(out),
            dataset="synthetic",
            test_subset=20,
            device="cpu",
            levels=parse_levels("0"),
            run_dir=str(tmp_path / "runs"),
            eval_batch_size=20,
        )  # fmt: skip
    )
    assert sweep.points[0].parameters == result.parameters


def test_finetune_of_a_user_network_keeps_its_channels_removed(tmp_path):
    """finetune --method coupled of a factory file's network: the trained checkpoint still runs
    the slim network of the level (its removed channels never come back)."""
    from tiny_runs import tiny_train_config

    from engine.checkpoints.io import load_state, read_checkpoint
    from engine.measure.cost import graph_slim, running_parameters
    from engine.models.spec import build_for_state
    from engine.training.finetune import finetune
    from engine.training.finetune_config import FinetuneConfig

    spec = f"{Path(__file__).parent / 'user_net.py'}:build"
    checkpoint = tmp_path / "user.pth"
    dense = _trained_looking(user_net())
    torch.save({"net": dense.state_dict(), "model": spec}, checkpoint)
    base = tiny_train_config(tmp_path, train_subset=64, test_subset=20, batch_size=32).to_dict()
    base = {k: v for k, v in base.items() if k in FinetuneConfig.__dataclass_fields__}
    base.update(checkpoint=str(checkpoint), model=spec, level=50.0, method="coupled", epochs=1)
    result = finetune(FinetuneConfig(**base))
    source = read_checkpoint(result.checkpoint)
    tuned = build_for_state(spec, source.state_dict)
    load_state(tuned, source, result.checkpoint)
    pruner = GroupPruner(dense, "coupled")
    pruner.set_level(50)
    expected = sum(p.numel() for p in pruner.slim().parameters())
    assert running_parameters(tuned) == expected
    assert sum(p.numel() for p in graph_slim(tuned.eval()).parameters()) == expected

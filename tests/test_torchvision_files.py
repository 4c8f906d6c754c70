"""CIFAR ResNets built from torchvision's BasicBlock, saved as a bare state dict the way torch.hub's
chenyaofo/pytorch-cifar-models and torchdistill save theirs (`cifar10_resnet20-4118986f.pt`):
`fc` classifier, `downsample.0/.1` projection shortcuts. The files are made here exactly as
that code builds the network (no download), then loaded by prunelab and compared logit for logit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from test_checkpoints_wild import _lightning_payload
from torchvision.models.resnet import BasicBlock, conv1x1
from typer.testing import CliRunner

from engine.checkpoints.info import checkpoint_info
from engine.checkpoints.io import infer_model_name, load_state, read_checkpoint
from engine.errors import CheckpointError, ModelMismatch
from engine.models.resnets import build_model
from engine.models.state_keys import torchvision_names
from tui import cli

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "FORCE_COLOR": None, "TTY_COMPATIBLE": None}


class TorchvisionCifarResNet(nn.Module):
    """chenyaofo's / torchdistill's CIFAR ResNet (widths 16/32/64, n blocks per stage), or with
    widths 64..512 and blocks [2, 2, 2, 2] kuangliu's ResNet18 under torchvision's names."""

    def __init__(self, blocks: list[int], widths: list[int], num_classes: int = 10) -> None:
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        for k, (planes, n) in enumerate(zip(widths, blocks, strict=True)):
            stride = 1 if k == 0 else 2
            downsample = None
            if stride != 1 or self.inplanes != planes:
                downsample = nn.Sequential(
                    conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes)
                )
            layer = [BasicBlock(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes
            layer += [BasicBlock(planes, planes) for _ in range(1, n)]
            self.add_module(f"layer{k + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1], num_classes)
        self.stages = len(widths)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for k in range(1, self.stages + 1):
            x = getattr(self, f"layer{k}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def torchvision_cifar(depth: int = 20, seed: int = 0, resnet18: bool = False) -> nn.Module:
    """Seeded, in eval mode, with BatchNorm statistics and affine terms far from their init
    (scales below 1, as trained residual branches have: logits stay O(1) at depth 20..56)."""
    torch.manual_seed(seed)
    if resnet18:
        model = TorchvisionCifarResNet([2, 2, 2, 2], [64, 128, 256, 512])
    else:
        n = (depth - 2) // 6
        model = TorchvisionCifarResNet([n, n, n], [16, 32, 64])
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.4, 0.9)
            m.bias.data.normal_(0, 0.1)
    return model.eval()


def _same_logits(path: Path, source: nn.Module, name: str) -> None:
    checkpoint = read_checkpoint(path)
    assert checkpoint.model == name
    ours = build_model(name)
    assert load_state(ours, checkpoint.state_dict, str(path)) == []
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), source(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("depth", [20, 32])
def test_hub_file_loads_as_the_b_family(tmp_path: Path, depth: int) -> None:
    source = torchvision_cifar(depth, seed=depth)
    path = tmp_path / f"cifar10_resnet{depth}.pt"
    torch.save(source.state_dict(), path)
    keys = list(torch.load(path, weights_only=True))
    assert "fc.weight" in keys and "layer2.0.downsample.0.weight" in keys
    _same_logits(path, source, f"resnet{depth}b")
    assert checkpoint_info(path).describe() == f"resnet{depth}b · weights only"


def test_dataparallel_and_lightning_wrapped_hub_files_load(tmp_path: Path) -> None:
    source = torchvision_cifar(20, seed=1)
    path = tmp_path / "dp.pt"
    torch.save(nn.DataParallel(source).state_dict(), path)
    assert next(iter(torch.load(path, weights_only=True))).startswith("module.")
    _same_logits(path, source, "resnet20b")
    path = tmp_path / "lightning.ckpt"
    torch.save(_lightning_payload(source, {}), path)
    _same_logits(path, source, "resnet20b")


def test_torchvision_named_resnet18_loads(tmp_path: Path) -> None:
    source = torchvision_cifar(resnet18=True, seed=2)
    path = tmp_path / "resnet18_tv.pth"
    torch.save({"net": source.state_dict(), "acc": 95.0, "epoch": 200}, path)
    _same_logits(path, source, "resnet18")


def test_every_b_model_is_recognised_and_the_a_family_is_not_confused() -> None:
    for depth in (20, 32, 44, 56, 110):
        assert infer_model_name(build_model(f"resnet{depth}b").state_dict()) == f"resnet{depth}b"
        assert infer_model_name(build_model(f"resnet{depth}").state_dict()) == f"resnet{depth}"
    assert infer_model_name(torchvision_cifar(44).state_dict()) == "resnet44b"


def test_an_imagenet_resnet_is_not_taken_for_the_cifar_one() -> None:
    from torchvision.models import resnet18

    state = resnet18(num_classes=10).state_dict()  # 7x7 stem: same key names, other shapes
    assert infer_model_name(state) is None
    with pytest.raises(CheckpointError, match="shape mismatch for conv1.weight") as info:
        load_state(build_model("resnet18"), state, "imagenet.pth")
    assert not isinstance(info.value, ModelMismatch)


def test_names_are_mapped_only_where_the_file_uses_torchvision_names() -> None:
    ours = build_model("resnet20b").state_dict()
    assert torchvision_names(ours) is ours
    mixed = {"linear.weight": torch.zeros(1), "fc.weight": torch.zeros(1)}
    assert list(torchvision_names(mixed)) == ["linear.weight", "fc.weight"]
    renamed = torchvision_names(
        {"fc.weight": torch.zeros(1), "fc.bias": torch.zeros(1), "layer2.0.downsample.1.bias": 0}
    )
    assert list(renamed) == ["linear.weight", "linear.bias", "layer2.0.shortcut.1.bias"]
    loss = torchvision_names({"fc.weight": torch.zeros(1), "criterion.downsample.x": 0})
    assert list(loss) == ["linear.weight", "criterion.downsample.x"]


def test_a_wrong_model_names_the_b_variant(tmp_path: Path) -> None:
    path = tmp_path / "cifar10_resnet20-4118986f.pt"
    torch.save(torchvision_cifar(20).state_dict(), path)
    with pytest.raises(ModelMismatch) as info:
        load_state(build_model("resnet20"), read_checkpoint(path).state_dict, str(path))
    assert info.value.suggested == "resnet20b"
    assert str(info.value).endswith(
        "(the file looks like a resnet20b checkpoint: pass --model resnet20b)"
    )


def _sweep(path: Path, runs: Path, *model: str):
    args = ["sweep", path, *model, "--dataset", "synthetic", "--test-subset", "20"]
    args += ["--levels", "0,50", "--device", "cpu", "--run-dir", runs]
    return CliRunner(env=ENV).invoke(cli.app, [str(a) for a in args])


def test_cli_sweeps_a_hub_file_with_or_without_model(tmp_path: Path) -> None:
    path = tmp_path / "cifar10_resnet20-4118986f.pt"
    torch.save(torchvision_cifar(20, seed=3).state_dict(), path)
    for model in ([], ["--model", "resnet20b", "--normalization", "cifar-pixel"]):
        result = _sweep(path, tmp_path / "runs", *model)
        assert result.exit_code == 0, result.output
        assert "sweep resnet20b | 272,474 parameters" in result.stdout
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/run.json")]
    assert sorted(r["model"] for r in records) == ["resnet20b", "resnet20b"]
    used = sorted(r["config"]["normalization"] for r in records)
    assert used == ["cifar", "cifar-pixel"]

    result = _sweep(path, tmp_path / "runs", "--model", "resnet20")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: invalid value for --model: ")
    assert lines[0].endswith("(the file looks like a resnet20b checkpoint: pass --model resnet20b)")

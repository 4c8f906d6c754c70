"""Checkpoints other tools write, each made the way its real files are made, load or say why not."""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from test_checkpoints import _randomised

from engine.checkpoints.io import ignored_keys_notice, load_state, read_checkpoint
from engine.errors import CheckpointError
from engine.models.resnets import build_model


def _loads_same(path: Path, source: nn.Module, model: str = "resnet20") -> list[str]:
    ckpt = read_checkpoint(path)
    assert ckpt.model == model
    fresh = build_model(model)
    ignored = load_state(fresh, ckpt.state_dict, str(path))
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), source(x))
    return ignored


def write_legacy_resnet(path: Path, model: nn.Module, best_prec1: float = 91.73) -> None:
    """As the pretrained CIFAR ResNet-20..1202 files were written by PyTorch 0.4.0 from a
    DataParallel model: an OrderedDict with `module.` keys, BatchNorm entries without
    `num_batches_tracked` (BatchNorm version 1 in the metadata), the pre-1.6 file format."""
    state = OrderedDict()
    metadata = OrderedDict({"": {"version": 1}, "module": {"version": 1}})
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        state["module." + key] = value.clone()
    for name, _ in model.named_modules():
        if name:
            metadata["module." + name] = {"version": 1}
    state._metadata = metadata  # type: ignore[attr-defined]
    torch.save(
        {"state_dict": state, "best_prec1": best_prec1}, path, _use_new_zipfile_serialization=False
    )


def test_legacy_pretrained_file_loads(tmp_path: Path) -> None:
    source = _randomised("resnet20", seed=1)
    path = tmp_path / "resnet20-12fca82f.th"
    write_legacy_resnet(path, source)
    assert _loads_same(path, source) == []
    assert read_checkpoint(path).extra == {"best_prec1": 91.73}


def test_kuangliu_dataparallel_file_loads(tmp_path: Path) -> None:
    source = _randomised("resnet18", seed=2)
    path = tmp_path / "ckpt.pth"
    torch.save({"net": nn.DataParallel(source).state_dict(), "acc": 95.1, "epoch": 199}, path)
    assert _loads_same(path, source, "resnet18") == []
    ckpt = read_checkpoint(path)
    assert (ckpt.epoch, ckpt.extra) == (199, {"acc": 95.1})


def _lightning_payload(model: nn.Module, extra_state: dict[str, torch.Tensor]) -> dict:
    """What Lightning's checkpoint connector writes for `self.model = resnet` (+ a loss module)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    loss = nn.functional.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()
    model.eval()
    state = OrderedDict(("model." + k, v) for k, v in model.state_dict().items())
    state.update(extra_state)
    return {
        "epoch": 4,
        "global_step": 1955,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"current": {"completed": 4}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_acc'}": {"best_model_score": 0.9}},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"lr": 0.1, "arch": "resnet20"},
    }


def test_lightning_file_loads(tmp_path: Path) -> None:
    source = _randomised("resnet20", seed=3)
    path = tmp_path / "epoch=4-step=1955.ckpt"
    torch.save(_lightning_payload(source, {}), path)
    assert _loads_same(path, source) == []
    ckpt = read_checkpoint(path)
    assert ckpt.epoch == 4 and "optimizer_states" in ckpt.extra


def test_unknown_extra_keys_are_named(tmp_path: Path) -> None:
    source = _randomised("resnet20", seed=4)
    path = tmp_path / "with-loss.ckpt"
    torch.save(_lightning_payload(source, {"criterion.weight": torch.ones(10)}), path)
    ignored = _loads_same(path, source)
    assert ignored == ["criterion.weight"]
    assert ignored_keys_notice(str(path), ignored) == (
        f"{path}: ignored 1 key(s) that belong to no part of the model (criterion.weight)"
    )


@pytest.mark.parametrize("wrap", ["compile", "compile+ddp"])
def test_compiled_model_state_dict_loads(tmp_path: Path, wrap: str) -> None:
    source = _randomised("resnet20", seed=5)
    inner = nn.DataParallel(source) if wrap == "compile+ddp" else source
    compiled = torch.compile(inner)  # wrapping only: state_dict() needs no compilation
    state = compiled.state_dict()
    assert next(iter(state)).startswith("_orig_mod.")
    path = tmp_path / "compiled.pth"
    torch.save(state, path)
    assert _loads_same(path, source) == []


def test_whole_pickled_model_is_refused_with_the_way_to_convert(tmp_path: Path) -> None:
    source = _randomised("resnet20", seed=6)
    path = tmp_path / "whole.pth"
    torch.save(source, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path} is a whole pickled model (torch.save(model))")
    command = re.search(r'python -c "(.*)"$', message)
    assert command is not None
    exec(command[1], {})  # the user's one step (our own class, so trusted here)
    converted = Path(f"{path}.state_dict.pth")
    assert _loads_same(converted, source) == []


def test_wrong_architecture_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet32-d509ac18.th"
    write_legacy_resnet(path, _randomised("resnet32", seed=7))
    ckpt = read_checkpoint(path)
    assert ckpt.model == "resnet32"
    with pytest.raises(CheckpointError) as info:
        load_state(build_model("resnet20"), ckpt.state_dict, str(path))
    message = str(info.value)
    assert message.startswith(f"{path} does not fit resnet20: ")
    assert "unexpected keys (layer1.3.conv1.weight" in message
    assert message.endswith("pass --model resnet32)")


def test_counters_are_filled_only_for_batchnorms_that_are_there() -> None:
    model = build_model("resnet20")
    state = {
        k: v
        for k, v in _randomised("resnet20").state_dict().items()
        if not k.startswith("layer2.0.bn1.")
    }
    with pytest.raises(CheckpointError) as info:
        load_state(model, state, "partial.pth")
    message = str(info.value)
    assert "5 missing keys (layer2.0.bn1.weight, " in message
    assert "layer2.0.bn1.num_batches_tracked" in message

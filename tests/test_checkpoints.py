"""Checkpoint I/O: every format we read, clear errors for bad files, atomic writes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from engine.checkpoints.io import (
    Checkpoint,
    infer_model_name,
    load_state,
    read_checkpoint,
    write_checkpoint,
)
from engine.errors import CheckpointError
from engine.models.resnets import build_model


def _randomised(name: str, seed: int = 0) -> nn.Module:
    """A model in eval mode with non-trivial BatchNorm statistics, so loading them matters."""
    torch.manual_seed(seed)
    model = build_model(name)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def resnet50() -> nn.Module:
    return _randomised("resnet50")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(123)
    return torch.randn(2, 3, 32, 32)


def _same_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor) -> bool:
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def _error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


# --- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "module."])
def test_seed_format_loads_into_resnet50(
    tmp_path: Path, resnet50: nn.Module, images: torch.Tensor, prefix: str
) -> None:
    path = tmp_path / "cifar10_resnet50_ckpt_epoch60.pth"
    torch.save(
        {"net": {prefix + k: v for k, v in resnet50.state_dict().items()}, "epoch": 60}, path
    )
    ckpt = read_checkpoint(path)
    assert isinstance(ckpt, Checkpoint)
    assert (ckpt.epoch, ckpt.model, ckpt.normalization, ckpt.extra) == (60, "resnet50", None, {})
    assert not any(k.startswith("module.") for k in ckpt.state_dict)
    fresh = build_model("resnet50")
    load_state(fresh, ckpt.state_dict, str(path))
    assert _same_outputs(fresh, resnet50, images)


def test_pretrained_format_loads_into_resnet20(tmp_path: Path, images: torch.Tensor) -> None:
    source = _randomised("resnet20", seed=1)
    path = tmp_path / "resnet20-12fca82f.th"
    state = {"module." + k: v for k, v in source.state_dict().items()}
    torch.save({"state_dict": state, "best_prec1": 91.73}, path)
    ckpt = read_checkpoint(path)
    assert ckpt.model == "resnet20"
    assert infer_model_name(state) == "resnet20"
    assert ckpt.epoch is None and ckpt.extra == {"best_prec1": 91.73}
    fresh = build_model("resnet20")
    load_state(fresh, ckpt.state_dict, str(path))
    assert _same_outputs(fresh, source, images)


def test_bare_state_dict(tmp_path: Path, images: torch.Tensor) -> None:
    source = _randomised("resnet20", seed=2)
    path = tmp_path / "bare.pth"
    torch.save(source.state_dict(), path)
    ckpt = read_checkpoint(path)
    assert (ckpt.model, ckpt.epoch, ckpt.extra) == ("resnet20", None, {})
    fresh = build_model("resnet20")
    load_state(fresh, ckpt.state_dict, str(path))
    assert _same_outputs(fresh, source, images)


def test_our_format_round_trip(tmp_path: Path) -> None:
    model = _randomised("resnet20", seed=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    payload = {
        "net": model.state_dict(),
        "epoch": 7,
        "acc": 61.5,
        "optimizer": optimizer.state_dict(),
        "config": {"model": "resnet32", "normalization": "imagenet", "lr": 0.01},
        "history": [{"epoch": 1, "test_acc": 30.0}],
    }
    path = tmp_path / "deep" / "er" / "ours.pth"  # parent folders are created
    write_checkpoint(path, payload)
    ckpt = read_checkpoint(path)
    # The recorded names win over what the keys suggest.
    assert (ckpt.epoch, ckpt.model, ckpt.normalization) == (7, "resnet32", "imagenet")
    assert set(ckpt.extra) == {"acc", "optimizer", "config", "history"}
    assert ckpt.extra["acc"] == 61.5
    # The seed's code reads it the seed's way.
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["epoch"] == 7
    build_model("resnet20").load_state_dict(raw["net"])


def test_top_level_model_and_normalization(tmp_path: Path) -> None:
    state = build_model("resnet20").state_dict()
    path = tmp_path / "top.pth"
    torch.save({"net": state, "model": "resnet20", "normalization": "cifar", "acc": 1.0}, path)
    ckpt = read_checkpoint(path)
    assert (ckpt.model, ckpt.normalization, ckpt.extra) == ("resnet20", "cifar", {"acc": 1.0})


def test_infer_model_name(resnet50: nn.Module) -> None:
    assert infer_model_name(resnet50.state_dict()) == "resnet50"
    for name in ("resnet18", "resnet20", "resnet56"):
        assert infer_model_name(build_model(name).state_dict()) == name
    assert infer_model_name({"weight": torch.zeros(3)}) is None
    assert infer_model_name({}) is None


# --- strict loading --------------------------------------------------------------------------


def test_wrong_architecture_lists_keys_and_hints(resnet50: nn.Module) -> None:
    with pytest.raises(CheckpointError) as info:
        load_state(build_model("resnet20"), resnet50.state_dict(), "runs/x.pth")
    message = str(info.value)
    assert message.startswith("runs/x.pth does not fit resnet20: ")
    assert "unexpected keys (" in message and "more" in message
    assert "shape mismatches (conv1.weight: file (64, 3, 3, 3) vs model (16, 3, 3, 3)" in message
    assert message.endswith("(the file looks like a resnet50 checkpoint: pass --model resnet50)")


def test_missing_keys_and_single_mismatch() -> None:
    small = build_model("resnet20").state_dict()
    with pytest.raises(CheckpointError) as info:
        load_state(build_model("resnet56"), small, "r20.pth")
    message = str(info.value)
    assert "r20.pth does not fit resnet56: " in message
    assert "missing keys (layer1.3.conv1.weight, " in message and "and " in message
    assert "pass --model resnet20" in message

    hundred = build_model("resnet20", num_classes=100).state_dict()
    with pytest.raises(CheckpointError) as info:
        load_state(build_model("resnet20"), hundred, "c100.pth")
    assert str(info.value) == (
        "c100.pth does not fit resnet20: 2 shape mismatches (linear.weight: file (100, 64) vs "
        "model (10, 64); linear.bias: file (100,) vs model (10,))"
    )


def test_single_shape_mismatch_message() -> None:
    model = build_model("resnet20")
    state = dict(model.state_dict())
    state["conv1.weight"] = torch.zeros(16, 3, 5, 5)
    with pytest.raises(CheckpointError) as info:
        load_state(model, state, "f.pth")
    assert str(info.value) == (
        "f.pth does not fit resnet20: shape mismatch for conv1.weight: "
        "file (16, 3, 5, 5) vs model (16, 3, 3, 3)"
    )


# --- bad files -------------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path: Path) -> None:
    message = _error(tmp_path / "nope.pth")
    assert message.startswith("checkpoint not found: ")
    assert "prunelab train" in message
    assert "is a directory" in _error(tmp_path)


def test_truncated_empty_and_garbage_files(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save({"net": build_model("resnet20").state_dict(), "epoch": 1}, good)
    data = good.read_bytes()
    files = {
        "half.pth": data[: len(data) // 2],
        "tail.pth": data[len(data) // 2 :],
        "empty.pth": b"",
        "garbage.pth": bytes(range(256)) * 8,
        "text.pth": b"hello, this is not a checkpoint\n",
    }
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert "is truncated or not a PyTorch checkpoint" in _error(path), name


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_is_refused(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    payload = {"net": {"w": torch.zeros(1)}, "epoch": _Evil(marker)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    message = _error(path)
    assert "refus" in message and "system" in message  # names what it would have run
    assert not marker.exists()


def test_payload_without_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "acc.pth"
    torch.save({"acc": 93.0, "epoch": 60}, path)
    message = _error(path)
    assert "no recognisable state dict" in message and "acc, epoch" in message
    torch.save([1, 2, 3], path)
    assert "no recognisable state dict" in _error(path)


# --- atomic writes ---------------------------------------------------------------------------


def _old_and_new(tmp_path: Path) -> tuple[Path, dict, dict]:
    path = tmp_path / "ckpt.pth"
    old = {"net": {"w": torch.ones(4)}, "epoch": 10}
    write_checkpoint(path, old)
    return path, old, {"net": {"w": torch.zeros(4)}, "epoch": 20}


def test_write_checkpoint_replaces(tmp_path: Path) -> None:
    path, _, new = _old_and_new(tmp_path)
    write_checkpoint(path, new)
    assert read_checkpoint(path).epoch == 20
    assert os.listdir(tmp_path) == ["ckpt.pth"]


def test_crash_during_save_keeps_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, new = _old_and_new(tmp_path)
    before = path.read_bytes()
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.seek(0)
        f.truncate(100)  # half-written, then the process "dies"
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_checkpoint(path, new)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert read_checkpoint(path).epoch == 10
    assert os.listdir(tmp_path) == ["ckpt.pth"]


def test_interrupt_and_failed_rename_leave_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, new = _old_and_new(tmp_path)
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(path, new)
    monkeypatch.undo()

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(CheckpointError, match="disk full writing") as info:
        write_checkpoint(path, new)
    monkeypatch.undo()
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.pth"]

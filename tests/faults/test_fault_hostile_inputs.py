"""Items 3, 12 and 13 of the fault campaign: hostile or damaged inputs are refused from what
they declare, before any large allocation, with a message naming the file."""

from __future__ import annotations

import lzma
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cifar_fixture import write_cifar10, write_imagefolder
from PIL import Image

from engine.checkpoints import sparse_format
from engine.checkpoints.io import read_checkpoint
from engine.config import DataOptions
from engine.data.sources import load_split
from engine.errors import CheckpointError, DataError
from engine.models.resnets import build_model


def _compact_file(path: Path, **entry_changes: object) -> Path:
    """A compact-format file of one half-zero tensor, with its table entry altered."""
    weight = torch.arange(1.0, 4097.0).reshape(64, 64)
    weight[weight % 2 == 0] = 0
    payload = sparse_format.encode_state_dict({"w": weight})
    payload["sparse"]["w"].update(entry_changes)
    torch.save(payload, path)
    return path


def test_a_declared_terabyte_tensor_is_refused_before_allocating(tmp_path: Path) -> None:
    path = _compact_file(tmp_path / "shape.pth", shape=[2**40])
    with pytest.raises(CheckpointError, match=r"shape\.pth is a damaged compact .*more than"):
        read_checkpoint(path)


def test_a_stream_that_inflates_past_its_shape_is_stopped(tmp_path: Path) -> None:
    bomb = lzma.compress(b"\xff" * (16 << 20))  # 16 MB of mask from a few kB of file
    mask = torch.frombuffer(bytearray(bomb), dtype=torch.uint8)
    path = _compact_file(tmp_path / "stream.pth", mask=mask)
    assert path.stat().st_size < 64_000
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"stream\.pth .*more or less than its shape"):
        read_checkpoint(path)
    assert time.perf_counter() - start < 5, "decoding stops at the declared size"


def test_an_unknown_recorded_model_name_falls_back_to_the_keys(tmp_path: Path) -> None:
    state = build_model("resnet20", 10).state_dict()
    torch.save({"net": state, "model": "resnet9999"}, tmp_path / "named.pth")
    assert read_checkpoint(tmp_path / "named.pth").model == "resnet20"
    torch.save({"net": {"a.weight": torch.zeros(3)}, "model": "resnet9999"}, tmp_path / "x.pth")
    assert read_checkpoint(tmp_path / "x.pth").model is None  # "pass --model", not a crash


def test_an_image_bomb_in_a_folder_is_refused_from_its_header(tmp_path, monkeypatch) -> None:
    root = write_imagefolder(tmp_path / "folder", per_class=2)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 64x64 image stands in for a bomb
    bomb = root / "test" / "cat" / "bomb.png"
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(bomb)
    options = DataOptions(dataset="imagefolder", data_dir=str(root))
    with pytest.raises(DataError, match=r"bomb\.png: image is far larger than 32x32"):
        load_split(options, train=False)


@pytest.mark.parametrize("labels", [["x", 0], 7, [True, 1]])
def test_cifar_labels_that_are_not_integers_are_named(tmp_path, labels) -> None:
    write_cifar10(tmp_path, per_class_train=1, per_class_test=1)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    data = np.zeros((2, 3072), dtype=np.uint8)
    batch.write_bytes(pickle.dumps({"data": data, "labels": labels}, protocol=2))
    options = DataOptions(data_dir=str(tmp_path), skip_checksum=True)
    with pytest.raises(DataError, match="test_batch: 'labels' must be a list of integers"):
        load_split(options, train=False)


def _resume_fails(tmp_path: Path, payload: dict) -> str:
    from tiny_runs import tiny_train_config

    from engine.training.train import train

    path = tmp_path / "damaged.pth"
    torch.save({"net": build_model("resnet20", 10).state_dict(), **payload}, path)
    with pytest.raises(CheckpointError) as info:
        train(tiny_train_config(tmp_path, epochs=2), resume=str(path))
    assert str(path) in str(info.value)
    assert not list((tmp_path / "checkpoints").glob("*.pth")), "nothing trained, nothing written"
    return str(info.value)


def test_a_negative_epoch_is_blamed_on_the_checkpoint(tmp_path: Path) -> None:
    assert "records epoch -5; expected 0 to --epochs (2)" in _resume_fails(tmp_path, {"epoch": -5})


def test_a_damaged_optimizer_state_is_named(tmp_path: Path) -> None:
    torn = {"state": {0: {"momentum_buffer": torch.zeros(1)}}, "param_groups": [{"params": [0]}]}
    payload = {"epoch": 1, "optimizer": torn, "scheduler": {"last_epoch": 1}}
    assert "damaged optimizer or scheduler state" in _resume_fails(tmp_path, payload)


class _Code:
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_protocol_4_pickle_with_code_says_so(tmp_path: Path) -> None:
    path = tmp_path / "code.pth"
    path.write_bytes(pickle.dumps({"net": {"w": torch.zeros(1)}, "x": _Code()}, protocol=4))
    with pytest.raises(CheckpointError, match=r"code\.pth contains code objects \(builtins\.print"):
        read_checkpoint(path)

"""Issue 23, items 3, 4 and 5 for checkpoints: a small hostile file is refused from what it
declares (shapes against the model's own, zip sizes from the directory) before anything large
is allocated; code is named as code whatever the pickle protocol; a FIFO never hangs; NaN and
non-float weights are refused by every command alike. Every file is built here, all small."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from engine.checkpoints import sparse_format
from engine.checkpoints.io import load_state, read_checkpoint
from engine.errors import CheckpointError
from engine.models.resnets import build_model
from tui import cli


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_model("resnet20").state_dict()


def sparse_bomb(path: Path) -> Path:
    """A compact file of resnet20 whose one entry declares 2^27 float64 weights (1 GB)."""
    state = _state()
    state["layer3.0.conv1.weight"][::2] = 0  # pruned: stored in the compact form
    payload = sparse_format.encode_state_dict(state)
    payload["sparse"]["layer3.0.conv1.weight"].update(shape=[2**27], dtype="float64")
    torch.save(payload, path)
    return path


def extra_bomb(path: Path) -> Path:
    """resnet20's weights plus a 200M-element tensor that takes 4 bytes on disk."""
    torch.save({"net": _state(), "blob": torch.zeros(1).expand(200_000_000)}, path)
    return path


def zip_bomb(path: Path) -> Path:
    """A torch zip whose data.pkl inflates to 8 MB from a few kB (deflated)."""
    torch.save({"w": torch.zeros(4)}, path.with_suffix(".plain"))
    with (
        zipfile.ZipFile(path.with_suffix(".plain")) as source,
        zipfile.ZipFile(path, "w") as bomb,
    ):
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                data += b"\x00" * (8 << 20)
                bomb.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
            else:
                bomb.writestr(info, data)
    return path


class Code:
    def __reduce__(self):
        return (os.system, ("echo this ran",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_code_in_a_pickle_of_any_protocol_is_named_as_code(tmp_path: Path, protocol) -> None:
    path = tmp_path / f"p{protocol}.pth"
    torch.save({"net": _state(), "x": Code()}, path, pickle_protocol=protocol)
    with pytest.raises(CheckpointError, match="system") as info:
        read_checkpoint(path)
    assert "truncated" not in str(info.value)


def test_a_plain_protocol_4_file_says_so(tmp_path: Path) -> None:
    torch.save(_state(), tmp_path / "p4.pth", pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(CheckpointError, match="pickled with protocol"):
        read_checkpoint(tmp_path / "p4.pth")


def test_a_compact_file_is_checked_against_the_model_before_decoding(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"does not fit resnet20: .*before decoding"):
        read_checkpoint(sparse_bomb(tmp_path / "sparse.pth"))


def test_tensors_beyond_what_the_model_holds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"besides the .* resnet20 weights.*MAX_EXTRA_MB"):
        read_checkpoint(extra_bomb(tmp_path / "extra.pth"))
    torch.save({"net": _state(), "optimizer": {"m": torch.zeros(270_000)}}, tmp_path / "ok.pth")
    assert read_checkpoint(tmp_path / "ok.pth").model == "resnet20"  # optimizer state is fine


def test_a_zip_that_inflates_is_refused_from_its_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PRUNELAB_MAX_PICKLE_MB", "1")
    path = zip_bomb(tmp_path / "zip.pth")
    assert path.stat().st_size < 100_000
    with pytest.raises(CheckpointError, match=r"inflates to 8 MB.*PRUNELAB_MAX_PICKLE_MB"):
        read_checkpoint(path)


def test_hostile_checkpoints_take_no_more_memory_than_a_benign_one(tmp_path: Path) -> None:
    """Peak RSS of one process reading each file, measured after a benign file's."""
    files = [sparse_bomb(tmp_path / "s.pth"), extra_bomb(tmp_path / "e.pth")]
    torch.save(_state(), tmp_path / "benign.pth")
    script = (
        "import json, resource, sys\n"
        "from engine.checkpoints.io import read_checkpoint\n"
        "read_checkpoint(sys.argv[1])\n"
        "peak = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]\n"
        "for path in sys.argv[2:]:\n"
        "    try:\n"
        "        read_checkpoint(path)\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__, file=sys.stderr)\n"
        "    peak.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "print(json.dumps(peak))\n"
    )
    args = [sys.executable, "-c", script, str(tmp_path / "benign.pth"), *map(str, files)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    peaks = json.loads(done.stdout)
    assert done.stderr.split() == ["CheckpointError"] * len(files)
    assert max(peaks) - peaks[0] < 100_000, peaks  # kB: under 100 MB above the benign read


def test_a_fifo_checkpoint_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pth"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="named pipe"):
        read_checkpoint(fifo)
    result = CliRunner().invoke(cli.app, ["export", str(fifo), "--level", "50"])
    assert result.exit_code == 1 and "named pipe" in result.stderr


def test_non_float_weights_are_refused_not_cast(tmp_path: Path) -> None:
    state = _state()
    state["conv1.weight"] = state["conv1.weight"].to(torch.int64)
    with pytest.raises(
        CheckpointError, match=r"tensors of another type \(conv1.weight: file int64"
    ):
        load_state(build_model("resnet20"), state, "x.pth")


def test_export_refuses_nan_weights_like_sweep_unless_allowed(tmp_path: Path) -> None:
    state = _state()
    state["linear.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    args = ["export", str(tmp_path / "nan.pth"), "--level", "50", "--run-dir", str(tmp_path)]
    refused = CliRunner().invoke(cli.app, [*args, "-o", str(tmp_path / "a.pth")])
    assert refused.exit_code == 1 and "non-finite weights" in refused.stderr
    assert not (tmp_path / "a.pth").exists()
    allowed = CliRunner().invoke(
        cli.app, [*args, "-o", str(tmp_path / "b.pth"), "--allow-nonfinite", "--quiet"]
    )
    assert allowed.exit_code == 0, allowed.output

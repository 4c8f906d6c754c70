"""The Python API (engine.api): an in-memory model and data give the CLI's numbers, write run
folders the CLI lists, refuse bad values as the CLI does; the example script runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_cli import invoke

from engine import api
from engine.checkpoints.io import load_state, read_checkpoint
from engine.config import DataOptions
from engine.data.sources import load_split
from engine.errors import ConfigError
from engine.models.resnets import build_model

ROOT = Path(__file__).resolve().parent.parent
LEVELS = "0,50,90"
COMPARED = ("level_percent", "accuracy", "accuracy_ci95", "nonzero_parameters", "macs")


def trained_model(checkpoint: str) -> torch.nn.Module:
    model = build_model("resnet20")
    load_state(model, read_checkpoint(checkpoint), checkpoint)
    return model


def synthetic_test(count: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    split = load_split(DataOptions(dataset="synthetic", test_subset=count), train=False)
    return split.images, split.labels


def test_api_sweep_returns_the_clis_numbers(trained_checkpoint: str, tmp_path: Path) -> None:
    result = invoke(
        [
            "sweep",
            trained_checkpoint,
            "--dataset",
            "synthetic",
            "--test-subset",
            200,
            "--levels",
            LEVELS,
            "--method",
            "global",
            "--device",
            "cpu",
            "--run-dir",
            tmp_path / "cli",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.stderr
    cli_points = json.loads(result.stdout)["points"]
    model = trained_model(trained_checkpoint)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ours = api.sweep(
        model, synthetic_test(), levels=LEVELS, method="global", run_dir=tmp_path / "api"
    )
    assert [[getattr(p, k) for k in COMPARED] for p in ours.points] == [
        [p[k] for k in COMPARED] for p in cli_points
    ]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # untouched
    listed = invoke(["runs", "--run-dir", tmp_path / "api", "--json"])
    assert listed.exit_code == 0 and Path(ours.run_dir).name in listed.stdout


def test_api_takes_a_dataset_and_a_dataloader_alike(trained_checkpoint: str) -> None:
    images, labels = synthetic_test(64)
    model = trained_model(trained_checkpoint)
    pairs = api.sweep(model, (images, labels), levels="0,50")
    dataset = torch.utils.data.TensorDataset(images, labels)
    loader = torch.utils.data.DataLoader(dataset, batch_size=10)
    for data in (dataset, loader):
        other = api.sweep(model, data, levels="0,50")
        assert [p.accuracy for p in other.points] == [p.accuracy for p in pairs.points]
    assert pairs.run_dir == ""  # no run_dir: a temporary folder, removed


def test_api_refuses_bad_values_naming_the_option(trained_checkpoint: str) -> None:
    model = trained_model(trained_checkpoint)
    with pytest.raises(ConfigError, match="levels"):
        api.sweep(model, synthetic_test(16), levels="0:200:10")
    with pytest.raises(ConfigError, match="method"):
        api.sweep(model, synthetic_test(16), method="magic")
    with pytest.raises(TypeError, match="tolerence"):
        api.sweep(model, synthetic_test(16), tolerence=2)


def test_progress_lines_are_plain_prints(trained_checkpoint: str, capsys) -> None:
    api.sweep(trained_model(trained_checkpoint), synthetic_test(32), levels="0,50", progress=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("level 0%: ") and "95%" in lines[0]


def test_example_script_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = ROOT / "examples" / "api_quickstart.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "best level:" in done.stdout and "wrote " in done.stdout
    assert (tmp_path / "small.pth").is_file()

"""Prune and recover from the CLI: `finetune`, `train --prune-to`, recovery sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import TINY, invoke


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A resnet20 trained 2 epochs on 512 synthetic images: well above chance."""
    root = tmp_path_factory.mktemp("trained")
    args = ["--epochs", 2, "--batch-size", 64, "--train-subset", 512, "--test-subset", 128]
    result = invoke(
        ["train", *TINY, *args, "--run-dir", root / "runs", "--checkpoint-dir", root / "ck"]
    )
    assert result.exit_code == 0, result.output
    return root / "ck" / "synthetic_resnet20_ckpt_epoch2.pth"


def test_finetune_reports_one_shot_recovered_and_the_measured_sparsity(trained, tmp_path):
    args = ["finetune", trained, *TINY, "--train-subset", 256, "--test-subset", 128]
    args += ["--level", 60, "--method", "global", "--epochs", 1, "--batch-size", 64]
    args += ["--run-dir", tmp_path / "runs", "--checkpoint-dir", tmp_path / "ck"]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("SYNTHETIC data: 60% global:") and "one-shot" in last
    assert "after 1 epoch of fine-tuning on 256 training images" in last
    assert "measured sparsity 60" in last and "sparsity" in result.stdout  # table column
    # a second run may not overwrite the first run's checkpoints: its own --checkpoint-dir
    data = json.loads(invoke([*args[:-1], tmp_path / "ck2", "--json"]).stdout)
    assert data["sparsity"] == pytest.approx(60, abs=0.01) and data["level_percent"] == 60
    assert data["recovered_accuracy"] is not None and data["oneshot_accuracy"] is not None
    assert data["history"][0]["sparsity"] == pytest.approx(60, abs=0.01)
    resumed = invoke(["finetune", "--resume", data["checkpoint"], "--epochs", 2, "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert [h["epoch"] for h in json.loads(resumed.stdout)["history"]] == [1, 2]


def test_finetune_needs_a_checkpoint_and_names_bad_options(tmp_path):
    result = invoke(["finetune", *TINY])
    assert result.exit_code == 2 and "CHECKPOINT" in result.stderr
    result = invoke(["finetune", tmp_path / "x.pth", "--level", 101])
    assert result.exit_code == 2 and "--level" in result.stderr


def test_train_prunes_gradually_and_shows_sparsity(tmp_path):
    args = ["train", *TINY, "--epochs", 2, "--batch-size", 32, "--prune-to", 50]
    args += ["--prune-end", 1, "--run-dir", tmp_path / "runs", "--checkpoint-dir", tmp_path]
    data = json.loads(invoke([*args, "--json"]).stdout)
    assert [h["sparsity"] for h in data["history"]] == [pytest.approx(50, abs=0.01)] * 2
    assert data["sparsity"] == pytest.approx(50, abs=0.01)
    bad = invoke([*args[:-4], "--prune-end", 3])
    assert bad.exit_code == 2 and "--prune-end" in bad.stderr


def test_recovery_sweep_json_and_two_curves(trained, tmp_path):
    common = [*TINY, "--train-subset", 128, "--test-subset", 64, "--method", "global"]
    common += ["--finetune-epochs", 1, "--batch-size", 64, "--run-dir", tmp_path / "runs"]
    args = ["sweep", trained, *common, "--levels", "0,80"]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert "+1ep ft" in result.stdout and "control" in result.stdout  # both curves, the control
    last = result.stdout.strip().splitlines()[-1]
    assert "one-shot: " in last and "after 1 epoch of fine-tuning" in last
    data = json.loads(invoke([*args, "--json"]).stdout)
    assert all(p["accuracy_finetuned"] is not None for p in data["points"])
    assert data["control_accuracy"] == data["points"][0]["accuracy_finetuned"]
    found = invoke(["find", trained, *common, "--coarse-step", 50, "--resolution", 50])
    assert found.exit_code == 0, found.output
    assert "best_level_finetuned=" in found.stdout and "control=" in found.stdout

"""Item 7 of the fault campaign at the command line: `export -o` onto its own source is refused
and leaves the file alone; a sweep of a checkpoint its run no longer recognises says so."""

from __future__ import annotations

from pathlib import Path

import torch
from tiny_runs import tiny_train_config
from typer.testing import CliRunner

from engine.training.train import train
from tui import cli

ENV = {"NO_COLOR": "1", "COLUMNS": "200", "FORCE_COLOR": None, "TTY_COMPATIBLE": None}


def invoke(*args: object):
    return CliRunner(env=ENV).invoke(cli.app, [str(a) for a in args])


def test_export_onto_its_own_source_is_refused(tmp_path: Path) -> None:
    checkpoint = train(tiny_train_config(tmp_path, epochs=1)).checkpoint
    before = Path(checkpoint).read_bytes()
    result = invoke("export", checkpoint, "--level", "50", "-o", checkpoint)
    assert result.exit_code == 2, result.output
    assert "is the checkpoint being exported" in result.stderr
    assert Path(checkpoint).read_bytes() == before


def test_a_sweep_warns_when_its_checkpoint_changed_after_its_run(tmp_path: Path) -> None:
    checkpoint = train(tiny_train_config(tmp_path, epochs=1)).checkpoint
    payload = torch.load(checkpoint, weights_only=True)
    payload["net"] = {k: v.clone() for k, v in payload["net"].items()}
    payload["net"]["linear.bias"] += 1.0  # another file under the same name, same run_dir
    torch.save(payload, checkpoint)
    result = invoke(
        "sweep", checkpoint, "--levels", "0", "--test-subset", "32", "--device", "cpu",
        "--run-dir", tmp_path / "runs",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "is not what run" in result.output and "SHA-256 differs" in result.output

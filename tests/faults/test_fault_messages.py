"""Issue 23, item 8: values no command can use get one line naming the option (exit 2) from the
one validation source, empty names and paths are named as empty, and a damaged config.json of
a run is named as the file it is, not as an option the user typed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.config import TrainConfig
from tui import cli

HUGE = "99999999999999999999"


def invoke(*args: object):
    env = {"COLUMNS": "120", "NO_COLOR": "1"}
    return CliRunner(env=env).invoke(cli.app, [str(a) for a in args])


def one_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "unexpected" not in result.output and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("option", ["--epochs", "--batch-size", "--seed", "--train-subset"])
def test_huge_integers_exit_2_naming_the_option(tmp_path: Path, option: str) -> None:
    result = invoke("train", "--dataset", "synthetic", option, HUGE, "--run-dir", tmp_path)
    assert option in one_error(result, 2)


def test_every_whole_number_option_refuses_what_overflows_int64() -> None:
    problems = TrainConfig(test_subset=2**70, epochs=1).problems()
    assert [p.field for p in problems] == ["test_subset"]


def test_empty_checkpoint_run_and_output_are_named(tmp_path: Path) -> None:
    assert "checkpoint file is required" in one_error(invoke("sweep", ""), 2)
    assert "run name is empty" in one_error(invoke("report", "", "--run-dir", tmp_path), 1)
    line = one_error(invoke("export", "x.pth", "--level", "50", "-o", ""), 2)
    assert "--output" in line and "empty" in line


def test_export_of_a_run_with_a_damaged_config_names_the_file(tmp_path: Path) -> None:
    run = tmp_path / "20260101-000000-sweep-resnet20"
    run.mkdir()
    record = {"kind": "sweep", "model": "resnet20", "created": "2026-01-01T00:00:00"}
    (run / "run.json").write_text(json.dumps({**record, "status": "completed"}))
    (run / "config.json").write_text(json.dumps({"checkpoint": "x.pth", "method": "bogus"}))
    line = one_error(invoke("export", run, "--level", "50"), 2)
    assert "config.json is damaged: method" in line and "--method" not in line

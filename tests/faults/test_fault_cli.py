"""The campaign's CLI findings (items 1, 4, 11-14): damaged runs listed by `runs`/`report`, bad
values exit 2 naming the option, usage errors in the one-line style, closed pipes, Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_fault_run_folders import DAMAGES, make_damaged
from typer.testing import CliRunner

from tui import cli

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "FORCE_COLOR": None}


def invoke(*args: object, **env: str | None):
    return CliRunner(env={**ENV, **env}).invoke(cli.app, [str(a) for a in args])


def usage_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) >= 1 and all(line.startswith("error: ") for line in lines), result.stderr
    return lines[0]


def test_runs_and_report_name_every_damaged_run(tmp_path: Path) -> None:
    folders = make_damaged(tmp_path)
    result = invoke("runs", "--run-dir", tmp_path)
    assert result.exit_code == 0, result.output
    for folder in folders:
        assert folder.name in result.stdout
    damaged = [line for line in result.stdout.splitlines() if line.startswith("damaged: ")]
    assert len(damaged) >= 8 and any("not a JSON object" in line for line in damaged)
    listed = invoke("runs", "--run-dir", tmp_path, "--json")
    assert listed.exit_code == 0 and listed.stdout.count('"damage"') == len(DAMAGES)
    for folder in folders:
        report = invoke("report", folder, "--run-dir", tmp_path)
        assert report.exit_code in (0, 1), report.output
        assert "Traceback" not in report.output and "unexpected" not in report.output
    report = invoke("report", folders[-1], "--run-dir", tmp_path)  # duplicate epochs
    assert report.stdout.count("│ 2 ") + report.stdout.count(" 2 ") >= 1


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["runs", "--kind", "bogus"], "--kind"),
        (["sweep", "x.pth", "--levels", "0:100:1e-300"], "--levels"),
        (["sweep", "x.pth", "--levels", "0:100:0.0001"], "--levels"),
        (["find", "x.pth", "--coarse-step", "1e-300"], "--coarse-step"),
        (["sensitivity", "x.pth", "--levels", "0"], "--levels"),
        (["train", "--seed", "99999999999999999999999"], "--seed"),
    ],
)
def test_bad_values_exit_2_naming_the_option(args: list[str], option: str) -> None:
    line = usage_error(invoke(*args))
    assert option in line


def test_run_dir_that_is_a_file_and_one_that_is_missing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "--run-dir" in usage_error(invoke("runs", "--run-dir", blocker))
    missing = invoke("runs", "--run-dir", tmp_path / "nowhere")
    assert missing.exit_code == 0 and "does not exist yet" in missing.stdout


def test_lr_problem_is_not_blamed_on_eta_min() -> None:
    result = invoke("train", "--lr", "-1")
    assert "--lr" in usage_error(result) and "--eta-min" not in result.stderr


def test_usage_errors_are_one_plain_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["prunelab", "train", "--lr", "abc"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.startswith("error: invalid value for --lr:") and "╭" not in err
    assert err.count("\n") == 1


def test_columns_zero_still_prints(tmp_path: Path) -> None:
    make_damaged(tmp_path)
    result = invoke("runs", "--run-dir", tmp_path, COLUMNS="0")
    assert result.exit_code == 0 and "20260101" in result.stdout


PRUNELAB = shutil.which("prunelab")


@pytest.mark.skipif(PRUNELAB is None, reason="the console script is not installed")
def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    make_damaged(tmp_path)
    runs = subprocess.Popen(
        [PRUNELAB, "runs", "--json", "--run-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert runs.stdout is not None
    runs.stdout.read(10)
    runs.stdout.close()  # like `| head -c 10`
    _, err = runs.communicate(timeout=120)
    assert b"BrokenPipe" not in err and b"Traceback" not in err


@pytest.mark.skipif(PRUNELAB is None, reason="the console script is not installed")
@pytest.mark.parametrize("after_module", ["typer", "torch"])
def test_one_ctrl_c_early_stops_cleanly(tmp_path: Path, after_module: str) -> None:
    """SIGINT right after typer is imported (our commands and torch still loading), and right
    after torch is (the command about to start), each found by its import line, not a clock.
    typer is imported only by the entry point after it installed the handler, so the signal
    cannot land before it; Python's own start-up is outside any program's reach."""
    args = [PRUNELAB, "train", "--dataset", "synthetic", "--model", "resnet20", "--device", "cpu"]
    args += ["--run-dir", str(tmp_path / "runs"), "--checkpoint-dir", str(tmp_path / "ck")]
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}  # import lines on stderr: a clock
    args += ["--train-subset", "64", "--test-subset", "32", "--epochs", "1"]  # ends regardless
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert child.stderr is not None
    try:
        for line in child.stderr:
            if line.split(b"|")[-1].strip() == after_module.encode():
                break
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=300)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert b"Traceback" not in err and b"second Ctrl-C" not in err, err

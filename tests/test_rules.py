"""Rules beyond a config's own fields live in the engine (engine/sweep/rules.py and the configs'
problems()): the entry points enforce them, and the CLI says the same words before it starts."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from engine.config import SweepConfig
from engine.errors import ConfigError
from engine.sweep.rules import find_problems, sensitivity_problems, sweep_resume_problem
from engine.sweep.run import find_best
from engine.sweep.sensitivity import run_sensitivity
from tui.cli import app as cli_app

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cli(args: list[str]):
    result = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"}).invoke(cli_app, args)
    return result.exit_code, ANSI.sub("", result.stderr)


@pytest.mark.parametrize("step", [0.0, -5.0, 150.0, float("nan")])
def test_find_refuses_a_coarse_step_outside_0_100_in_the_engine(tmp_path, step):
    config = SweepConfig(checkpoint=str(tmp_path / "none.pth"), dataset="synthetic")
    with pytest.raises(ConfigError) as caught:
        find_best(config, coarse_step=step)  # before any file is read
    assert caught.value.field == "coarse_step"
    assert find_problems(step)[0].message in str(caught.value)


def test_sensitivity_without_a_level_above_0_is_refused_not_silently_emptied(tmp_path):
    config = SweepConfig(checkpoint=str(tmp_path / "none.pth"), levels=(0.0,), dataset="synthetic")
    with pytest.raises(ConfigError, match="at least one level above 0"):
        run_sensitivity(config)
    assert not sensitivity_problems(SweepConfig(checkpoint="x", levels=(0.0, 50.0)))


def test_recovery_sweeps_on_several_devices_are_a_config_problem():
    config = SweepConfig(checkpoint="x.pth", finetune_epochs=1, devices=2)
    assert [p.field for p in config.problems()] == ["devices"]
    assert not SweepConfig(checkpoint="x.pth", finetune_epochs=1).problems()


@pytest.mark.parametrize(
    "args, rule",
    [
        (["find", "x.pth", "--coarse-step", "0"], find_problems(0.0)[0]),
        (
            ["sensitivity", "x.pth", "--levels", "0"],
            sensitivity_problems(SweepConfig(checkpoint="x", levels=(0.0,)))[0],
        ),
        (
            ["sweep", "x.pth", "--finetune-epochs", "1", "--devices", "2"],
            SweepConfig(checkpoint="x", finetune_epochs=1, devices=2).problems()[0],
        ),
    ],
)
def test_the_cli_says_the_engines_words(args, rule):
    code, stderr = cli(args)
    assert code == 2
    assert rule.message in stderr and "--" + rule.field.replace("_", "-") in stderr


def test_only_sweeps_resume_as_sweeps(tmp_path):
    assert sweep_resume_problem("r", "find") is None
    run = tmp_path / "runs" / "20260101-000000-train-resnet20"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"kind": "train", "model": "resnet20", "status": "stopped"}')
    code, stderr = cli(["sweep", "--resume", str(run), "--run-dir", str(tmp_path / "runs")])
    assert code == 1
    assert sweep_resume_problem(str(run), "train") in stderr

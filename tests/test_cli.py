"""The `prunelab` CLI through typer's CliRunner: outputs, files, JSON, exit codes, interrupts.

Every run is tiny: ResNet-20 on 64 synthetic training images and 32 test images on the CPU.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import types
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.config import TrainConfig
from engine.events import BatchProgress, SweepPoint
from engine.options import field_default
from tui import cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# No colours, no forced terminal, wide help: the output is what a pipe would get.
ENV = {
    "COLUMNS": "200",
    "FORCE_COLOR": None,
    "PY_COLORS": None,
    "TTY_COMPATIBLE": None,
    "NO_COLOR": "1",
}
TINY = [
    "--dataset",
    "synthetic",
    "--model",
    "resnet20",
    "--train-subset",
    "64",
    "--test-subset",
    "32",
    "--device",
    "cpu",
]


def invoke(args: list[str], **env: str | None):
    result = CliRunner(env={**ENV, **env}).invoke(cli.app, [str(a) for a in args])
    result.clean_stdout = ANSI.sub("", result.stdout)  # type: ignore[attr-defined]
    return result


def one_line_error(result) -> str:
    """The failure message: exactly one line on stderr, no traceback."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """One real training run (1 epoch) shared by the tests that need a checkpoint."""
    root = tmp_path_factory.mktemp("trained")
    runs, checkpoints = root / "runs", root / "checkpoints"
    result = invoke(
        [
            "train",
            *TINY,
            "--epochs",
            1,
            "--batch-size",
            32,
            "--run-dir",
            runs,
            "--checkpoint-dir",
            checkpoints,
        ]
    )
    assert result.exit_code == 0, result.output
    checkpoint = checkpoints / "synthetic_resnet20_ckpt_epoch1.pth"
    return {"root": root, "runs": runs, "checkpoint": checkpoint, "output": result.stdout}


@pytest.fixture(scope="module")
def swept(trained) -> Path:
    """One finished sweep of the trained checkpoint."""
    result = invoke(
        [
            "sweep",
            trained["checkpoint"],
            *TINY,
            "--levels",
            "0,50,90",
            "--run-dir",
            trained["runs"],
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


# --------------------------------------------------------------------------------------------
# help, aliases, the TUI entry


def test_train_help_shows_every_field_with_the_seed_defaults():
    result = invoke(["train", "--help"])
    assert result.exit_code == 0
    text = result.clean_stdout
    for f in fields(TrainConfig):
        assert cli.option_name(f.name) in text, f.name
    for name in ("batch_size", "lr", "momentum", "weight_decay", "epochs", "t_max"):
        assert f"[default: {field_default(TrainConfig, name)}]" in text, name
    for alias in (
        "--batch_size",
        "--learning_rate",
        "--learning-rate",
        "--weight_decay",
        "--T_max",
    ):
        assert alias in text
    for panel in ("Model", "Data", "Training", "Device", "Checkpoints", "Output"):
        assert f"─ {panel} " in text


def test_sweep_help_shows_pruning_options_and_seed_levels():
    text = invoke(["sweep", "--help"]).clean_stdout
    for name in ("--method", "--levels", "--include-classifier", "--tolerance", "--refine"):
        assert name in text
    for name in ("--bn-recalibrate", "--early-stop", "--resume", "--json-lines"):
        assert name in text
    assert "[default: 0:100:5]" in text


def test_seed_spellings_set_the_same_fields(monkeypatch, tmp_path):
    seen = {}

    def fake_train(config, on_event, stop, resume=None):
        seen["config"] = config
        from engine.training.train import TrainResult

        return TrainResult("completed", str(tmp_path), 0, None, None, None)

    monkeypatch.setattr("engine.training.train.train", fake_train)
    result = invoke(
        [
            "train",
            "--batch_size",
            64,
            "--learning_rate",
            0.05,
            "--momentum",
            0.8,
            "--weight_decay",
            0.001,
            "--epochs",
            3,
            "--T_max",
            7,
        ]
    )
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert (config.batch_size, config.lr, config.momentum) == (64, 0.05, 0.8)
    assert (config.weight_decay, config.epochs, config.t_max) == (0.001, 3, 7)
    assert invoke(["train", "--learning-rate", 0.2, "--lr", 0.3, "--json"]).exit_code == 0
    assert seen["config"].lr == 0.3  # the last one given wins, like any repeated option


def test_no_command_without_a_tty_prints_help():
    result = invoke([])
    assert result.exit_code == 0
    assert "Usage" in result.clean_stdout
    for command in ("train", "sweep", "find", "sensitivity", "export", "runs", "report", "tui"):
        assert command in result.clean_stdout


@pytest.fixture
def fake_app(monkeypatch) -> list[bool]:
    """Stands in for tui.app.PrunelabApp; records each run()."""
    opened: list[bool] = []
    fake = types.ModuleType("tui.app")

    class PrunelabApp:
        def run(self):
            opened.append(True)

    fake.PrunelabApp = PrunelabApp  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tui.app", fake)
    return opened


def test_tui_command_opens_the_app(fake_app):
    assert invoke(["tui"]).exit_code == 0
    assert fake_app == [True]


def test_no_command_in_a_terminal_opens_the_app(fake_app, monkeypatch):
    monkeypatch.setattr(cli, "interactive", lambda: True)
    assert invoke([]).exit_code == 0
    assert fake_app == [True]


def test_export_help_shows_formats_and_defaults():
    text = invoke(["export", "--help"]).clean_stdout
    assert "[default: sparse]" in text and "[default: layerwise]" in text


# --------------------------------------------------------------------------------------------
# train


def test_train_writes_checkpoint_and_run_files(trained):
    assert trained["checkpoint"].is_file()
    (run,) = [p for p in trained["runs"].iterdir() if "-train-" in p.name]
    assert (run / "metrics.jsonl").is_file()
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    out = trained["output"]
    assert "SYNTHETIC" in out
    assert "epoch 1/1" in out
    assert str(trained["checkpoint"]) in out.splitlines()[-1]


def test_train_json_is_one_document(tmp_path):
    result = invoke(
        [
            "train",
            *TINY,
            "--epochs",
            1,
            "--batch-size",
            64,
            "--run-dir",
            tmp_path / "runs",
            "--checkpoint-dir",
            tmp_path / "ck",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "completed"
    assert data["synthetic"] is True
    assert data["epochs_completed"] == 1
    assert Path(data["checkpoint"]).is_file()
    assert len(data["history"]) == 1


def test_train_on_cifar_format_data(cifar_dir, tmp_path):
    result = invoke(
        [
            "train",
            "--dataset",
            "cifar10",
            "--data-dir",
            cifar_dir,
            "--skip-checksum",
            "--model",
            "resnet20",
            "--epochs",
            1,
            "--batch-size",
            50,
            "--device",
            "cpu",
            "--run-dir",
            tmp_path / "runs",
            "--checkpoint-dir",
            tmp_path / "ck",
            "--quiet",
        ]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "1/1 epochs" in lines[0]
    assert "SYNTHETIC" not in result.stdout
    assert (tmp_path / "ck" / "cifar10_resnet20_ckpt_epoch1.pth").is_file()


def test_interrupt_saves_a_checkpoint_that_resume_continues(monkeypatch, tmp_path):
    """Ctrl-C during the first epoch: exit 130 with a resumable checkpoint; --resume finishes."""
    import engine.training.train

    real_train = engine.training.train.train

    def train_with_ctrl_c(config, on_event, stop, resume=None):
        def hook(event):
            on_event(event)
            if isinstance(event, BatchProgress) and not hook.sent:
                hook.sent = True
                signal.raise_signal(signal.SIGINT)  # what the terminal sends on Ctrl-C

        hook.sent = False
        return real_train(config, hook, stop, resume=resume)

    monkeypatch.setattr("engine.training.train.train", train_with_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    args = ["--run-dir", tmp_path / "runs", "--checkpoint-dir", tmp_path / "ck"]
    result = invoke(["train", *TINY, "--epochs", 2, "--batch-size", 32, *args])
    assert result.exit_code == 130, result.output
    assert signal.getsignal(signal.SIGINT) is before  # our handler is gone again
    stopped = tmp_path / "ck" / "synthetic_resnet20_ckpt_stopped.pth"
    assert stopped.is_file()
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("stopped:") and f"prunelab train --resume {stopped}" in last
    assert "stopping" in result.stderr

    monkeypatch.setattr("engine.training.train.train", real_train)
    resumed = invoke(["train", "--resume", stopped, "--json"])
    assert resumed.exit_code == 0, resumed.output
    data = json.loads(resumed.stdout)
    assert data["status"] == "completed"
    assert [h["epoch"] for h in data["history"]] == [1, 2]
    assert data["checkpoint"].endswith("synthetic_resnet20_ckpt_epoch2.pth")


def test_resume_overrides_only_the_options_typed(monkeypatch, trained):
    seen = {}

    def fake_train(config, on_event, stop, resume=None):
        from engine.training.train import TrainResult

        seen["config"], seen["resume"] = config, resume
        return TrainResult("completed", "runs/x", 0, None, None, None)

    monkeypatch.setattr("engine.training.train.train", fake_train)
    result = invoke(["train", "--resume", trained["checkpoint"], "--epochs", 5, "--quiet"])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.epochs == 5  # typed
    assert config.batch_size == 32 and config.model == "resnet20"  # from the checkpoint
    assert config.dataset == "synthetic" and config.train_subset == 64
    assert seen["resume"] == str(trained["checkpoint"])


# --------------------------------------------------------------------------------------------
# bad values, missing files


@pytest.mark.parametrize(
    ("args", "option", "allowed"),
    [
        (["train", "--batch-size", "0"], "--batch-size", "from 1 to 65536"),
        (["train", "--batch_size", "0"], "--batch-size", "from 1 to 65536"),
        (["train", "--model", "resnet51"], "--model", "one of resnet50"),
        (["train", "--device", "tpu"], "--device", "cuda:N"),
        (["train", "--lr", "-1", "--eta-min", "0"], "--lr", "from 0 to 10"),
        (["sweep", "x.pth", "--levels", "0:200:5"], "--levels", "from 0 to 100"),
        (["sweep", "x.pth", "--levels", "a:b"], "--levels", "start:stop:step"),
        (["sweep", "x.pth", "--method", "foo"], "--method", "one of layerwise, global, structured"),
        (["find", "x.pth", "--tolerance", "-1"], "--tolerance", "from 0 to 100"),
        (["find", "x.pth", "--coarse-step", "0"], "--coarse-step", "allowed"),
        (["sensitivity", "x.pth", "--levels", "101"], "--levels", "from 0 to 100"),
        (["export", "x.pth", "--level", "120"], "--level", "from 0 to 100"),
        (["export", "x.pth", "--level", "50", "--format", "zip"], "--format", "sparse, dense"),
    ],
)
def test_bad_values_exit_2_naming_the_option(args, option, allowed):
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert f"invalid value for {option}:" in first
    assert allowed in first


def test_every_bad_value_is_reported_at_once():
    result = invoke(["sweep", "x.pth", "--levels", "x", "--tolerance", "-1", "--seed", "-3"])
    assert result.exit_code == 2
    for option in ("--levels", "--tolerance", "--seed"):
        assert f"invalid value for {option}" in result.stderr


def test_json_and_json_lines_together_is_a_usage_error():
    result = invoke(["train", "--json", "--json-lines"])
    assert result.exit_code == 2
    assert "--json-lines" in result.stderr


@pytest.mark.parametrize("command", ["sweep", "find", "sensitivity", "export"])
def test_missing_checkpoint_exits_1_with_one_line(command, tmp_path):
    args = [command, tmp_path / "nope.pth", "--device", "cpu"]
    if command == "export":
        args = [command, tmp_path / "nope.pth", "--level", "50"]
    result = invoke(args)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "checkpoint not found" in line and "nope.pth" in line


def test_missing_data_exits_1_saying_how_to_get_it(tmp_path):
    result = invoke(
        [
            "train",
            "--data-dir",
            tmp_path / "none",
            "--device",
            "cpu",
            "--checkpoint-dir",
            tmp_path / "ck",
            "--run-dir",
            tmp_path / "runs",
        ]
    )
    assert result.exit_code == 1
    assert "--download" in one_line_error(result)


def test_missing_resume_checkpoint_exits_1(tmp_path):
    result = invoke(["train", "--resume", tmp_path / "gone.pth"])
    assert result.exit_code == 1
    assert "gone.pth" in one_line_error(result)


def test_corrupt_checkpoint_exits_1(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a checkpoint" * 10)
    result = invoke(["sweep", bad, *TINY, "--run-dir", tmp_path / "runs"])
    assert result.exit_code == 1
    assert "bad.pth" in one_line_error(result)


def test_debug_shows_the_traceback(tmp_path):
    result = invoke(["sweep", tmp_path / "nope.pth", "--device", "cpu", "--debug"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "checkpoint not found" in result.stderr


# --------------------------------------------------------------------------------------------
# sweep, find, sensitivity, export


def test_sweep_writes_files_and_shows_table_chart_and_answer(trained, tmp_path):
    result = invoke(
        [
            "sweep",
            trained["checkpoint"],
            *TINY,
            "--levels",
            "0:90:45",
            "--run-dir",
            tmp_path / "runs",
        ]
    )
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    for name in ("sweep.jsonl", "sweep.csv", "summary.json", "run.json", "config.json"):
        assert (run / name).is_file(), name
    out = result.clean_stdout
    assert "SYNTHETIC" in out
    assert out.count("level ") >= 3  # a line per level
    assert "top-1 accuracy vs sparsity" in out  # the plotext chart
    assert "dense " in out  # the baseline in its legend
    last = out.strip().splitlines()[-1]
    assert "of weights removed within" in last or "no pruned level" in last
    assert str(run) in last


def test_sweep_json_is_one_document(swept):
    summary = json.loads((swept / "summary.json").read_text())
    assert summary["levels"] == 3
    points = [json.loads(line) for line in (swept / "sweep.jsonl").read_text().splitlines()]
    assert [p["level_percent"] for p in points] == [0.0, 50.0, 90.0]


def test_sweep_json_lines_stream_events_then_the_result(trained, tmp_path):
    result = invoke(
        [
            "sweep",
            trained["checkpoint"],
            *TINY,
            "--levels",
            "0,60",
            "--run-dir",
            tmp_path,
            "--json-lines",
        ]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [r["event"] for r in records]
    assert kinds.count("SweepPoint") == 2
    assert "RunStarted" in kinds and "RunFinished" in kinds
    assert kinds[-1] == "Result"
    assert len(records[-1]["points"]) == 2


def test_sweep_live_progress_in_a_terminal(trained, tmp_path):
    """With a (forced) terminal the bars run and the per-level lines still print."""
    result = invoke(
        ["sweep", trained["checkpoint"], *TINY, "--levels", "0,50", "--run-dir", tmp_path],
        FORCE_COLOR="1",
        TTY_COMPATIBLE="1",
        NO_COLOR=None,
    )
    assert result.exit_code == 0, result.output
    assert "level" in result.clean_stdout and "SYNTHETIC" in result.clean_stdout


def test_interrupted_sweep_keeps_its_points_and_resumes(monkeypatch, trained, tmp_path):
    import engine.sweep.run

    real_sweep = engine.sweep.run.run_sweep

    def sweep_with_ctrl_c(config, on_event, stop, **kwargs):
        def hook(event):
            on_event(event)
            if isinstance(event, SweepPoint):
                signal.raise_signal(signal.SIGINT)

        return real_sweep(config, hook, stop, **kwargs)

    monkeypatch.setattr("engine.sweep.run.run_sweep", sweep_with_ctrl_c)
    runs = tmp_path / "runs"
    result = invoke(
        ["sweep", trained["checkpoint"], *TINY, "--levels", "0,30,60", "--run-dir", runs]
    )
    assert result.exit_code == 130, result.output
    (run,) = runs.iterdir()
    assert len((run / "sweep.jsonl").read_text().splitlines()) == 1
    last = result.stdout.strip().splitlines()[-1]
    assert f"prunelab sweep --resume {run}" in last

    monkeypatch.setattr("engine.sweep.run.run_sweep", real_sweep)
    resumed = invoke(
        ["sweep", "--resume", run.name, "--run-dir", runs, "--device", "cpu", "--json"]
    )
    assert resumed.exit_code == 0, resumed.output
    data = json.loads(resumed.stdout)
    assert [p["level_percent"] for p in data["points"]] == [0.0, 30.0, 60.0]
    assert data["status"] == "completed"


def test_sweep_resume_of_a_training_run_exits_1(trained):
    (train_run,) = [p for p in trained["runs"].iterdir() if "-train-" in p.name]
    result = invoke(["sweep", "--resume", train_run, "--device", "cpu"])
    assert result.exit_code == 1
    assert "not a sweep" in one_line_error(result)


def test_sweep_without_checkpoint_or_resume_is_a_usage_error():
    result = invoke(["sweep"])
    assert result.exit_code == 2
    assert "CHECKPOINT" in result.stderr


def test_find_prints_one_line_a_script_can_read(trained, tmp_path):
    result = invoke(
        [
            "find",
            trained["checkpoint"],
            *TINY,
            "--coarse-step",
            50,
            "--resolution",
            25,
            "--run-dir",
            tmp_path,
            "--quiet",
        ]
    )
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    pairs = dict(item.split("=", 1) for item in line.split())
    assert set(pairs) >= {"best_level_percent", "accuracy", "baseline", "tolerance", "method"}
    assert pairs["tolerance"] == "1" and pairs["data"] == "SYNTHETIC"
    float(pairs["baseline"])


def test_sensitivity_table_and_files(trained, tmp_path):
    args = ["sensitivity", trained["checkpoint"], *TINY, "--layers", "conv1,layer1.0.conv1"]
    result = invoke([*args, "--levels", "50", "--run-dir", tmp_path])
    assert result.exit_code == 0, result.output
    assert "layer1.0.conv1" in result.clean_stdout and "SYNTHETIC" in result.clean_stdout
    (run,) = tmp_path.iterdir()
    assert (run / "sensitivity.csv").is_file()
    data = json.loads(invoke([*args, "--levels", "50", "--run-dir", tmp_path, "--json"]).stdout)
    assert set(data["accuracy"]) == {"conv1", "layer1.0.conv1"}
    assert list(data["accuracy"]["conv1"]) == ["50"]


def test_sensitivity_by_a_score_says_so(trained, tmp_path):
    args = ["sensitivity", trained["checkpoint"], *TINY, "--layers", "conv1", "--levels", "50"]
    result = invoke([*args, "--score", "random", "--run-dir", tmp_path])
    assert result.exit_code == 0, result.output
    assert "per-layer sensitivity, random score" in result.clean_stdout
    assert "most sensitive at 50%: conv1 " in result.clean_stdout
    data = json.loads(invoke([*args, "--score", "random", "--run-dir", tmp_path, "--json"]).stdout)
    assert data["score"] == "random"


def test_sensitivity_unknown_layer_exits_1(trained, tmp_path):
    args = ["sensitivity", trained["checkpoint"], *TINY, "--layers", "nope", "--run-dir", tmp_path]
    result = invoke(args)
    assert result.exit_code == 1
    assert "nope" in one_line_error(result)


def test_export_writes_a_smaller_file_every_command_accepts(trained, tmp_path):
    out_file = tmp_path / "pruned.pth"
    args = ["export", trained["checkpoint"], "--level", 80, "--method", "global", "-o", out_file]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert out_file.is_file()
    assert "sparse encoding" in result.clean_stdout
    assert result.stdout.strip().splitlines()[-1].startswith(f"wrote {out_file}")
    data = json.loads(invoke([*args, "--json"]).stdout)
    assert data["format"] == "sparse" and data["file_bytes"] < data["dense_file_bytes"]
    swept = invoke(["sweep", out_file, *TINY, "--levels", "0", "--run-dir", tmp_path, "--json"])
    assert swept.exit_code == 0, swept.output
    assert json.loads(swept.stdout)["points"][0]["sparsity_percent"] >= 79


# --------------------------------------------------------------------------------------------
# runs, report


def test_runs_lists_newest_first(trained, swept):
    data = json.loads(invoke(["runs", "--run-dir", trained["runs"], "--json"]).stdout)
    assert [r["kind"] for r in data][-1] == "train"
    assert data[0]["created"] >= data[-1]["created"]
    assert all(r["synthetic"] for r in data)
    text = invoke(["runs", "--run-dir", trained["runs"]]).clean_stdout
    assert swept.name in text and "SYNTHETIC" in text
    assert text.index(swept.name) < text.index("-train-")


def test_runs_on_an_empty_folder(tmp_path):
    result = invoke(["runs", "--run-dir", tmp_path])
    assert result.exit_code == 0
    assert "no runs" in result.stdout


def test_report_tables_and_one_overlaid_chart(trained, swept):
    (train_run,) = [p for p in trained["runs"].iterdir() if "-train-" in p.name]
    result = invoke(["report", swept, train_run.name, "--run-dir", trained["runs"]])
    assert result.exit_code == 0, result.output
    out = result.clean_stdout
    assert out.count("top-1 accuracy vs sparsity") == 1
    assert "train loss" in out  # the training run's table
    data = json.loads(
        invoke(["report", swept, swept, "--run-dir", trained["runs"], "--json"]).stdout
    )
    assert [r["kind"] for r in data["runs"]] == ["sweep", "sweep"]
    assert data["runs"][0]["result"]["baseline_accuracy"] is not None


def test_report_table_fits_an_80_column_terminal(swept):
    wide = invoke(["report", swept, "--run-dir", swept.parent]).clean_stdout
    narrow = invoke(["report", swept, "--run-dir", swept.parent], COLUMNS="80").clean_stdout
    drawn = [
        line
        for line in narrow.splitlines()
        if set(line) & set("─│┤┬") or line.lstrip().startswith("level")
    ]
    assert len(drawn) > 10 and max(len(line) for line in drawn) <= 80  # prose wraps softly
    assert "left out" not in wide and "left out" in narrow  # the caption says what went
    assert "acc%" in narrow or "top-1" in narrow  # the accuracy column always stays


def test_report_unknown_run_exits_1(trained):
    result = invoke(["report", "no-such-run", "--run-dir", trained["runs"]])
    assert result.exit_code == 1
    assert "no-such-run" in one_line_error(result)


def test_report_png_without_matplotlib_says_how_to_install(monkeypatch, swept, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    result = invoke(["report", swept, "--png", tmp_path / "chart.png"])
    assert result.exit_code == 1
    assert "pip install 'prunelab[png]'" in one_line_error(result)
    assert not (tmp_path / "chart.png").exists()


def test_report_png(swept, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "chart.png"
    result = invoke(["report", swept, "--png", target, "--quiet"])
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.stdout.strip() == f"chart written to {target}"


def test_find_target_speedup_and_sweep_x_in_the_users_units(trained, tmp_path):
    args = [*TINY, "--method", "structured", "--run-dir", tmp_path]
    result = invoke(
        ["find", trained["checkpoint"], *args, "--coarse-step", 50, "--resolution", 50]
        + ["--target-speedup", "1.01", "--latency-batch", "2", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    pairs = dict(item.split("=", 1) for item in line.split())
    assert pairs["target_speedup"] == "1.01" and pairs["timed_on"] == "CPU,batch2"
    assert "speedup" in pairs
    human = invoke(  # a person reads the answer in words above the key=value line
        ["find", trained["checkpoint"], *args, "--coarse-step", 50, "--resolution", 50]
        + ["--target-speedup", "1000", "--latency-batch", "2"]
    )
    assert human.exit_code == 0, human.output
    assert "no level measured reached 1000x faster (CPU, batch 2)" in human.clean_stdout
    listed = invoke(["runs", "--run-dir", tmp_path, "--kind", "find"], COLUMNS="200")
    assert "no level reached 1000x faster, dense" in listed.clean_stdout  # not a tolerance
    result = invoke(
        ["sweep", trained["checkpoint"], *args, "--levels", "50", "--x", "macs", "--json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    dense, half = document["points"]
    assert half["macs"] < dense["macs"] and half["latency_ms"] is None  # timing is opt-in
    assert document["x"] == "macs"
    human = invoke(
        ["sweep", trained["checkpoint"], *args, "--levels", "50", "--x", "macs"]
        + ["--tolerance", "100"]
    )
    assert human.exit_code == 0, human.output
    assert "times fewer MACs than dense" in human.clean_stdout  # the chart's x-axis
    assert "x fewer MACs (50% of filters removed)" in human.clean_stdout
    assert "cost of each level (slim network)" in human.clean_stdout
    assert "latency not timed: pass --latency-batch N" in human.clean_stdout
    # coupled: a residual channel leaves every conv that writes it, so the slim net is smaller
    plain = [*TINY, "--run-dir", tmp_path, "--levels", "50", "--json"]
    coupled = invoke(["sweep", trained["checkpoint"], *plain, "--method", "coupled"])
    assert coupled.exit_code == 0, coupled.output
    assert json.loads(coupled.stdout)["points"][1]["macs"] < half["macs"]
    result = invoke(["sweep", trained["checkpoint"], *args, "--levels", "50", "--x", "speed"])
    assert result.exit_code == 2 and "--x" in one_line_error(result)
    result = invoke(["sweep", trained["checkpoint"], *args, "--target-speedup", "2"])
    assert result.exit_code == 2  # find's option, not sweep's


def test_prose_wraps_at_words_on_a_terminal_and_stays_one_line_in_a_pipe(monkeypatch):
    import io

    from rich.console import Console

    from tui.cli.output import Output

    text = "no pruned level stays within 1.0 point of 55.3%; 300 test images measure accuracy"
    monkeypatch.delenv("COLUMNS", raising=False)
    out = Output()
    buffer = io.StringIO()
    out.console = Console(file=buffer, force_terminal=True, width=40, color_system=None)
    out.live = True  # a terminal
    out.line(text)
    lines = buffer.getvalue().splitlines()
    assert len(lines) > 1 and all(len(line) <= 40 for line in lines)
    assert " ".join(line.strip() for line in lines) == text  # cut between words only
    out.live = False  # a pipe: one line, whatever its length
    buffer.seek(0), buffer.truncate()
    out.line(text)
    assert buffer.getvalue() == text + "\n"


def test_export_of_a_sweep_run_folder_gives_the_sweeps_masks(trained, tmp_path):
    """`prunelab export RUN --level L` prunes as that sweep did (global, min density, random
    score and its seed), through the engine's export_from_run; the sweep's own settings cannot
    be overridden, and a folder that is not a sweep run is refused in one line."""
    import torch

    from engine.checkpoints.io import read_checkpoint

    runs = tmp_path / "runs"
    sweep = ["sweep", trained["checkpoint"], *TINY, "--levels", "0,60", "--run-dir", runs]
    sweep += ["--method", "global", "--min-density", "0.3", "--score", "random", "--seed", "7"]
    swept = invoke([*sweep, "--json"])
    assert swept.exit_code == 0, swept.output
    document = json.loads(swept.stdout)
    run = Path(document["run_dir"])
    sparsity = [p for p in document["points"] if p["level_percent"] == 60][0]["sparsity_percent"]

    out_file = tmp_path / "level60.pth"
    args = ["export", run, "--level", 60, "--format", "dense", "-o", out_file]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    state = read_checkpoint(str(out_file)).state_dict
    convs = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 4]
    zeros = sum(int((w == 0).sum()) for w in convs) / sum(w.numel() for w in convs)
    assert 100 * zeros == pytest.approx(sparsity, abs=0.01)  # the sweep's own level
    # every layer keeps at least min density 0.3: global alone would empty some
    assert all(float((w != 0).float().mean()) >= 0.3 - 1e-6 for w in convs)
    assert torch.is_tensor(convs[0])

    refused = invoke(["export", run, "--level", 60, "--method", "layerwise"])
    assert refused.exit_code == 2
    assert "its own settings decide --method" in refused.stderr
    not_a_run = invoke(["export", tmp_path, "--level", 60])
    assert not_a_run.exit_code == 2 and "CHECKPOINT" in not_a_run.stderr
    assert "Traceback" not in not_a_run.output


def test_command_list_wraps_each_description_as_one_paragraph():
    """`prunelab --help` at 80 columns: every line break in the command list is the wrap's own
    (the next word would not have fit), never a line break of the docstring's source."""
    output = invoke(["--help"], COLUMNS="80").clean_stdout
    lines = output.splitlines()
    top = next(i for i, line in enumerate(lines) if "Commands" in line)
    rows = []
    for line in lines[top + 1 :]:
        if not line.startswith("│"):
            break
        rows.append(line.strip("│").rstrip())
    column = len(rows[0]) - len(rows[0].lstrip()) + len(rows[0].split()[0])
    column += len(rows[0][column:]) - len(rows[0][column:].lstrip())  # where descriptions start
    width = len(lines[top]) - 2 - column - 1  # inside the box, less the right padding
    continued = 0
    for this, after in zip(rows, rows[1:], strict=False):
        if after[:column].strip():  # the next row starts another command
            continue
        continued += 1
        text, next_word = this[column:].rstrip(), after[column:].split()[0]
        assert len(text) + 1 + len(next_word) > width, (this, after)
    assert continued >= 5

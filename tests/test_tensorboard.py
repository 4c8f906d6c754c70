"""`--tensorboard DIR`: the engine's event sink writes what the app charts, per run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import TINY, invoke

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from engine.config import TrainConfig  # noqa: E402
from engine.errors import ConfigError  # noqa: E402


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard would show for one run folder: tag -> [(step, value)]."""
    found: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return found


def test_train_and_sweep_log_what_the_app_charts(trained_checkpoint, tmp_path):
    """Training: loss per step, accuracy and lr per epoch, the settings and the result as
    hparams. A sweep: top-1 with its 95% interval per level (step = level in 0.01%)."""
    board = tmp_path / "tb"
    args = ["--run-dir", tmp_path / "runs", "--tensorboard", board, "--json"]
    checkpoints = ["--checkpoint-dir", tmp_path / "checkpoints"]
    trained = invoke(["train", *TINY, "--epochs", 2, "--batch-size", 32, *checkpoints, *args])
    assert trained.exit_code == 0, trained.output
    swept = invoke(["sweep", trained_checkpoint, *TINY, "--levels", "0,50", *args])
    assert swept.exit_code == 0, swept.output
    runs = sorted(board.iterdir())
    assert len(runs) == 2  # one folder per run, named as its run folder
    train_run = next(r for r in runs if "-train-" in r.name)
    sweep_run = next(r for r in runs if "-sweep-" in r.name)
    assert (tmp_path / "runs" / train_run.name).is_dir()

    logged = scalars(train_run)
    assert [step for step, _ in logged["accuracy/test"]] == [1, 2]
    assert len(logged["lr"]) == 2 and len(logged["accuracy/train"]) == 2
    assert len(logged["train/loss_per_step"]) >= 1
    assert "result/accuracy" in logged  # the hparams' metric: the best test accuracy

    logged = scalars(sweep_run)
    assert [step for step, _ in logged["sweep/top1"]] == [0, 5000]
    low = dict(logged["sweep/top1_ci95_low"])
    high = dict(logged["sweep/top1_ci95_high"])
    for step, value in logged["sweep/top1"]:
        assert low[step] <= value <= high[step]


def test_a_missing_tensorboard_package_is_named(monkeypatch):
    """Without the package, the config says which extra to install (CLI exit 2, app field)."""
    monkeypatch.setattr("engine.data.options.tensorboard_missing", lambda: True)
    problems = TrainConfig(tensorboard="tb").problems()
    assert [p.field for p in problems] == ["tensorboard"]
    assert isinstance(problems[0], ConfigError)
    assert "pip install 'prunelab[tensorboard]'" in problems[0].message

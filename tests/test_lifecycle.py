"""One run lifecycle (engine.runs.lifecycle.Run) for every kind, and the operations on past runs.

Every kind x {completed, stopped, failed}: run.json says the status (with the reason when it
failed), and the event stream holds exactly one RunStarted and one RunFinished that agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_runs import tiny_train_config
from typer.testing import CliRunner

from engine.checkpoints.io import read_checkpoint
from engine.config import SweepConfig
from engine.events import (
    CheckpointSaved,
    Notice,
    RunFinished,
    RunStarted,
    SensitivityPoint,
    SweepPoint,
)
from engine.export.config import ExportConfig
from engine.export.writer import export_pruned
from engine.models.resnets import build_model
from engine.operations import (
    RESUMERS,
    export_config_from_run,
    export_from_run,
    resume_run,
    why_not_resumable,
)
from engine.options import parse_levels
from engine.pruning.pruner import Pruner
from engine.runs.lifecycle import Run
from engine.runs.lifecycle import read_run_info as read_run
from engine.runs.record import read_jsonl
from engine.runs.summaries import SUMMARIES
from engine.sweep.run import find_best, run_sweep
from engine.sweep.sensitivity import run_sensitivity
from engine.training.finetune import finetune
from engine.training.finetune_config import FinetuneConfig
from engine.training.train import train
from tui.cli import app as cli_app

KINDS = ("train", "finetune", "sweep", "find", "sensitivity", "export")


def sweep_config(checkpoint: str, root: Path, **changes) -> SweepConfig:
    base = dict(
        checkpoint=checkpoint,
        dataset="synthetic",
        test_subset=64,
        device="cpu",
        levels=parse_levels("0,50"),
        run_dir=str(root / "runs"),
        eval_batch_size=64,
    )
    return SweepConfig(**{**base, **changes})


def start(kind: str, checkpoint: str, root: Path, on_event, stop, epochs: int = 1):
    """Run one `kind` on tiny inputs; returns its result."""
    if kind == "train":
        return train(tiny_train_config(root, epochs=epochs, train_subset=64), on_event, stop)
    if kind == "finetune":
        base = tiny_train_config(root, epochs=epochs, train_subset=64).to_dict()
        base = {k: v for k, v in base.items() if k in FinetuneConfig.__dataclass_fields__}
        config = FinetuneConfig(**{**base, "checkpoint": checkpoint, "level": 50.0})
        return finetune(config, on_event, stop)
    if kind == "sweep":
        return run_sweep(sweep_config(checkpoint, root), on_event, stop)
    if kind == "find":
        return find_best(sweep_config(checkpoint, root), on_event, stop, coarse_step=50)
    if kind == "sensitivity":
        config = sweep_config(checkpoint, root, levels=parse_levels("50"))
        return run_sensitivity(config, on_event, stop, layers=["conv1"])
    config = ExportConfig(
        checkpoint=checkpoint, level=50, output=str(root / "e.pth"), run_dir=str(root / "runs")
    )
    return export_pruned(config, on_event, stop)


@pytest.mark.parametrize("outcome", ["completed", "stopped", "failed"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_starts_and_finishes_once(kind, outcome, trained_checkpoint, tmp_path):
    events = []

    def on_event(event):
        events.append(event)
        work = not isinstance(event, (RunStarted, RunFinished))
        if outcome == "failed" and work and any(isinstance(e, RunStarted) for e in events):
            raise RuntimeError("boom")  # the first piece of work after the start

    stop = (lambda: True) if outcome == "stopped" else None
    if outcome == "failed":
        with pytest.raises(RuntimeError, match="boom"):
            start(kind, trained_checkpoint, tmp_path, on_event, stop)
    else:
        start(kind, trained_checkpoint, tmp_path, on_event, stop)
    started = [e for e in events if isinstance(e, RunStarted)]
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert len(started) == len(finished) == 1
    assert started[0].kind == finished[0].kind == kind
    assert events[-1] is finished[0] and finished[0].status == outcome
    info = read_run(finished[0].run_dir)
    assert info.kind == kind and info.record.status == outcome and info.record.finished
    assert isinstance(info.summary, SUMMARIES[kind])
    if outcome == "failed":
        assert info.record.reason == finished[0].reason == "RuntimeError: boom"
        assert info.headline() == "failed: RuntimeError: boom"
    if outcome == "completed":
        assert info.headline(), "a completed run has a headline"


def test_lifecycle_ends_once_and_keeps_the_first_end(tmp_path):
    events = []
    run = Run("sweep", events.append)
    run.open(tmp_path, model="m", config={}, device="cpu", data="", synthetic=False)
    run.start(parameters=1)
    with pytest.raises(ValueError), run.guard():
        raise ValueError("bad")
    run.finish("completed")
    assert [type(e).__name__ for e in events] == ["RunStarted", "RunFinished"]
    assert read_run(run.dir).record.status == "failed"


def test_cuda_out_of_memory_fails_with_the_fix(tmp_path):
    run = Run("sweep")
    run.open(tmp_path, model="m", config={}, device="cpu", data="", synthetic=False)
    run.start(parameters=1)
    with (
        pytest.raises(Exception, match="try --eval-batch-size 32"),
        run.guard(oom_hint="try --eval-batch-size 32"),
    ):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")
    assert "try --eval-batch-size 32" in read_run(run.dir).record.reason


def test_export_from_a_global_sweep_with_min_density_gives_the_sweeps_masks(
    trained_checkpoint, tmp_path
):
    config = sweep_config(
        trained_checkpoint, tmp_path, method="global", min_density=0.4, levels=parse_levels("80")
    )
    sweep = run_sweep(config)
    result = export_from_run(sweep.run_dir, 80, "dense", output=str(tmp_path / "x.pth"))
    exported = read_checkpoint(result.path).state_dict
    model = build_model("resnet20")
    model.load_state_dict(read_checkpoint(trained_checkpoint).state_dict)
    pruner = Pruner(model, "global", False, 0.4)
    pruner.set_level(80)
    for name, module in pruner.layers:
        assert torch.equal(exported[f"{name}.weight"] == 0, module.weight == 0), name
    swept = read_jsonl(Path(sweep.run_dir) / "sweep.jsonl")[-1]
    assert result.sparsity_percent == pytest.approx(swept["sparsity_percent"])
    # without the sweep's min_density the masks would differ: the setting matters here
    plain = build_model("resnet20")
    plain.load_state_dict(read_checkpoint(trained_checkpoint).state_dict)
    Pruner(plain, "global", False, 0.0).set_level(80)
    assert any(
        not torch.equal(exported[f"{n}.weight"] == 0, m.weight == 0)
        for n, m in Pruner(plain, "global").layers
    )
    saved = export_config_from_run(sweep.run_dir, 80)
    assert (saved.method, saved.min_density, saved.model) == ("global", 0.4, "resnet20")


def test_a_find_run_resumes_as_a_find(trained_checkpoint, tmp_path):
    points = []

    def stop():
        return len(points) >= 1

    config = sweep_config(trained_checkpoint, tmp_path, tolerance=0.0, resolution=10.0)
    first = find_best(
        config, lambda e: points.append(e) if isinstance(e, SweepPoint) else None, stop
    )
    assert first.status == "stopped"
    info = read_run(first.run_dir)
    assert why_not_resumable(info) is None
    resumed = resume_run(first.run_dir)
    full = find_best(
        sweep_config(trained_checkpoint, tmp_path / "b", tolerance=0.0, resolution=10.0)
    )
    assert read_run(first.run_dir).kind == "find"
    # the same search as an uninterrupted find: it stopped at the first miss, then bisected
    assert [p.level_percent for p in resumed.points] == [p.level_percent for p in full.points]
    assert why_not_resumable(read_run(first.run_dir)) is not None  # completed now


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs in the process."""


# where each kind is killed: once it has saved something to go on from
KILL_AT = {"train": CheckpointSaved, "finetune": CheckpointSaved, "sweep": SweepPoint}
KILL_AT["find"] = SweepPoint


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_killed_reads_interrupted_and_resumes_by_the_one_rule(
    kind, trained_checkpoint, tmp_path, monkeypatch
):
    events = []

    def on_event(event):
        events.append(event)
        work = KILL_AT.get(kind, (Notice, SweepPoint, SensitivityPoint))
        if isinstance(event, work) and any(isinstance(e, RunStarted) for e in events):
            raise Killed

    # a kill writes nothing more; the kernel drops the writer's lock, and its PID is gone
    monkeypatch.setattr(Run, "_end", lambda self, status, reason: self.release())
    with pytest.raises(Killed):
        start(kind, trained_checkpoint, tmp_path, on_event, None, epochs=2)
    monkeypatch.undo()
    monkeypatch.setattr("engine.runs.lock.pid_alive", lambda pid: False)
    run_dir = next(e for e in events if isinstance(e, RunStarted)).run_dir
    info = read_run(run_dir)
    assert (info.kind, info.record.status) == (kind, "interrupted")
    assert not any(isinstance(e, RunFinished) for e in events)
    if kind not in RESUMERS:
        assert why_not_resumable(info) == f"a {kind} run cannot be resumed; start it again"
        return
    assert why_not_resumable(info) is None
    listed = CliRunner().invoke(cli_app, ["runs", "--run-dir", str(tmp_path / "runs"), "--json"])
    (row,) = [r for r in json.loads(listed.stdout) if r["path"] == run_dir]
    verb = "sweep" if kind in ("sweep", "find") else kind
    assert row["status"] == "interrupted" and row["resume"].startswith(f"prunelab {verb} --resume")
    resumed = []
    resume_run(run_dir, resumed.append)
    finished = [e for e in resumed if isinstance(e, RunFinished)]
    assert len(finished) == 1 and finished[0].status == "completed"
    assert finished[0].run_dir == run_dir  # the same folder goes on
    assert read_run(run_dir).record.status == "completed"


def test_a_sweep_headline_says_when_no_pruned_level_qualifies():
    from engine.runs.summaries import SweepSummary

    kept = SweepSummary(baseline_accuracy=54.26, tolerance=1.0, best_level_percent=30.0)
    kept.best_accuracy = 53.5
    assert kept.headline() == "30% removed at 53.50%, dense 54.26%"
    for none in (0.0, None):  # the answer is level 0: only the dense model is within
        summary = SweepSummary(baseline_accuracy=54.26, tolerance=1.0, best_level_percent=none)
        assert summary.headline() == "no pruned level within 1 pt of dense 54.26%"


def test_a_speed_target_headline_says_the_speed_not_a_tolerance():
    from engine.runs.summaries import SweepSummary

    found = SweepSummary(baseline_accuracy=54.5, best_level_percent=47.5, best_accuracy=10.2)
    found.target_speedup, found.speedup = 2.0, 2.05
    assert found.headline() == (
        "2.05x faster at 47.5% removed: 10.20%, dense 54.50% (target 2x faster)"
    )
    found.best_level_percent = None
    assert found.headline() == "no level reached 2x faster, dense 54.50%"

"""Issue 23, item 7: the last lost-work cases. A completed sweep with a torn line is repaired by
`--resume` (the level computed again, sweep.jsonl rewritten with whole lines only); a killed
fine-tuning keeps a rolling checkpoint it resumes from; a `running` run whose PID now belongs
to another process reads as interrupted."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
from injector import Killed, kill_after
from tiny_runs import tiny_train_config

import engine.training.loop as train_loop_module
from engine.checkpoints.io import read_checkpoint
from engine.config import SweepConfig
from engine.events import Notice
from engine.models.resnets import build_model
from engine.operations import export_from_run, resume_run, why_not_resumable
from engine.options import parse_levels
from engine.runs.files import process_start
from engine.runs.lifecycle import read_run_info
from engine.runs.record import read_run
from engine.sweep.run import run_sweep
from engine.training.finetune import finetune, finetune_resume_config
from engine.training.finetune_config import FinetuneConfig


def dense_checkpoint(tmp_path: Path) -> str:
    torch.manual_seed(0)
    path = tmp_path / "dense.pth"
    torch.save(build_model("resnet20").state_dict(), path)
    return str(path)


def test_a_completed_sweep_with_a_torn_line_is_repaired_by_resume(tmp_path: Path) -> None:
    config = SweepConfig(
        checkpoint=dense_checkpoint(tmp_path),
        dataset="synthetic",
        test_subset=64,
        device="cpu",
        levels=parse_levels("0,50,90"),
        run_dir=str(tmp_path / "runs"),
        eval_batch_size=64,
    )
    run = Path(run_sweep(config).run_dir)
    assert why_not_resumable(read_run_info(run)) == f"{run.name} already completed"
    lines = (run / "sweep.jsonl").read_bytes().splitlines(keepends=True)
    (run / "sweep.jsonl").write_bytes(b"".join(lines[:-1]) + lines[-1][:30])  # 90% torn
    assert why_not_resumable(read_run_info(run)) is None, "a damaged completed sweep can go on"
    repaired = resume_run(run)
    assert repaired.status == "completed"
    assert sorted(p.level_percent for p in repaired.points) == [0.0, 50.0, 90.0]
    records = [json.loads(line) for line in (run / "sweep.jsonl").read_text().splitlines()]
    assert sorted(r["level_percent"] for r in records) == [0.0, 50.0, 90.0], "no fragment left"
    assert why_not_resumable(read_run_info(run)) == f"{run.name} already completed"
    # the sweep recorded the checkpoint's hash: exporting from a changed file warns
    torch.manual_seed(1)
    torch.save(build_model("resnet20").state_dict(), config.checkpoint)
    events: list = []
    export_from_run(run, 50.0, output=str(tmp_path / "level50.pth"), on_event=events.append)
    warnings = [e.text for e in events if isinstance(e, Notice) and e.level == "warning"]
    assert any("is not the file run" in text for text in warnings), warnings


def test_a_killed_finetune_resumes_from_its_rolling_checkpoint(tmp_path, monkeypatch) -> None:
    base = tiny_train_config(tmp_path, train_subset=128, test_subset=32).to_dict()
    base = {k: v for k, v in base.items() if k in FinetuneConfig.__dataclass_fields__}
    changes = dict(checkpoint=dense_checkpoint(tmp_path), level=50.0, epochs=1)
    changes.update(checkpoint_every=10, checkpoint_minutes=1.0)
    config = FinetuneConfig(**{**base, **changes})
    clock = iter(range(0, 10**6, 60))  # every reading of the clock is one minute later
    monkeypatch.setattr(train_loop_module, "now_s", lambda: float(next(clock)))
    kill_after(monkeypatch, train_loop_module, "evaluate", calls=1)  # dies in the test pass
    with pytest.raises(Killed):
        finetune(config)
    monkeypatch.undo()
    rolling = list((tmp_path / "checkpoints").glob("*_rolling-*.pth"))
    assert len(rolling) == 1, "the fine-tuning run kept its own rolling checkpoint"
    assert read_checkpoint(rolling[0]).extra["position"]["batch"] > 0, "mid-epoch"
    resumed = finetune(finetune_resume_config(rolling[0]), resume=rolling[0])
    assert resumed.status == "completed" and resumed.epochs_completed == 1


def test_a_running_run_whose_pid_is_another_process_reads_interrupted(tmp_path: Path) -> None:
    record = {
        "kind": "train",
        "model": "resnet20",
        "created": "2026-01-01T00:00:00",
        "status": "running",
        "pid": os.getpid(),  # alive, but it is this test, not the run's writer
        "host": socket.gethostname(),
    }
    mine = process_start(os.getpid())
    assert mine is not None, "the test machine has /proc"
    reused = tmp_path / "20260101-000000-train-resnet20"
    reused.mkdir()
    (reused / "run.json").write_text(json.dumps({**record, "pid_started": mine - 3600}))
    assert read_run(reused).record.status == "interrupted"
    live = tmp_path / "20260101-000001-train-resnet20"
    live.mkdir()
    (live / "run.json").write_text(json.dumps({**record, "pid_started": mine}))
    assert read_run(live).record.status == "running"

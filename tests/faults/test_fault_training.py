"""Items 5-10 of the fault campaign in training runs: full disks, clobbered checkpoints, duplicate
epochs after a resume, bad folders found late, a kill between rolling checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from injector import Killed, full_disk, kill_after
from tiny_runs import tiny_train_config

import engine.training.loop as train_loop_module
import engine.training.train as train_module
from engine.checkpoints.io import read_checkpoint, write_checkpoint
from engine.errors import CheckpointError, ConfigError, PrunelabError
from engine.events import Notice
from engine.runs.record import changed_checkpoints, list_runs, load_run, read_metrics
from engine.training.train import train


def tiny(tmp_path: Path, **changes):
    return tiny_train_config(tmp_path, train_subset=128, test_subset=32, **changes)


def test_full_run_folder_keeps_the_epoch_in_the_checkpoint(tmp_path: Path) -> None:
    config = tiny(tmp_path, epochs=1)
    runs = tmp_path / "runs"
    runs.mkdir()
    # room for the first run.json and config.json, not for what the epoch's end writes
    free = 2 * len(json.dumps(config.to_dict(), indent=2)) + 1500
    with full_disk(runs, free=free), pytest.raises(PrunelabError, match="disk full writing"):
        train(config)
    checkpoint = tmp_path / "checkpoints" / "synthetic_resnet20_ckpt_epoch1.pth"
    assert read_checkpoint(checkpoint).epoch == 1, "the checkpoint was written first"


def test_torch_writer_failure_on_a_full_disk_is_named(tmp_path, monkeypatch) -> None:
    def torn(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(CheckpointError, match=r"disk full writing .*ck\.pth \(.*MB needed"):
        write_checkpoint(tmp_path / "ck.pth", {"net": {"w": torch.zeros(1000)}})
    assert list(tmp_path.iterdir()) == [], "no temp file left"


def test_a_bad_checkpoint_dir_is_found_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="checkpoint_dir: .* a file") as info:
        train(tiny(tmp_path, checkpoint_dir=str(blocker)))
    assert info.value.field == "checkpoint_dir"
    with pytest.raises(ConfigError, match="run_dir: .*cannot be created"):
        train(tiny(tmp_path, run_dir=str(blocker / "runs")))
    assert not (tmp_path / "runs").exists(), "no run folder for a run that cannot save"


def test_checkpoints_are_never_clobbered_and_hashes_are_recorded(tmp_path: Path) -> None:
    first = train(tiny(tmp_path, epochs=1))
    record = load_run(first.run_dir)
    assert list(record.checkpoints) == [first.checkpoint]
    before = Path(first.checkpoint).read_bytes()
    with pytest.raises(ConfigError, match="exists .*--overwrite or another --checkpoint-dir"):
        train(tiny(tmp_path, epochs=1))
    assert Path(first.checkpoint).read_bytes() == before
    assert changed_checkpoints(record) == []
    second = train(tiny(tmp_path, epochs=1, overwrite=True, seed=1))
    assert second.checkpoint == first.checkpoint
    assert changed_checkpoints(record) == [first.checkpoint], "the first run can tell"


def test_a_name_taken_while_running_goes_to_the_runs_own_file(tmp_path, monkeypatch) -> None:
    notices: list[str] = []
    real_save = train_loop_module.EpochLoop._save
    taken = tmp_path / "checkpoints" / "synthetic_resnet20_ckpt_epoch1.pth"

    def race(self, *args, **kwargs):
        write_checkpoint(taken, {"net": {"w": torch.zeros(1)}})  # another process, meanwhile
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(train_loop_module.EpochLoop, "_save", race)
    result = train(
        tiny(tmp_path, epochs=1),
        on_event=lambda e: notices.append(e.text) if isinstance(e, Notice) else None,
    )
    assert result.checkpoint.endswith(f"epoch1-{Path(result.run_dir).name}.pth")
    assert any("written by another run meanwhile" in n for n in notices)
    assert torch.load(taken, weights_only=True)["net"]["w"].numel() == 1, "theirs untouched"


def test_resume_from_an_older_checkpoint_keeps_one_line_per_epoch(tmp_path: Path) -> None:
    result = train(tiny(tmp_path, epochs=3, checkpoint_every=1))
    epoch1 = Path(result.checkpoint).with_name("synthetic_resnet20_ckpt_epoch1.pth")
    train(train_module.resume_config(epoch1), resume=epoch1)
    lines = (Path(result.run_dir) / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert [h["epoch"] for h in read_metrics(result.run_dir)[0]] == [1, 2, 3]


def test_fewer_epochs_than_the_checkpoint_holds_is_refused(tmp_path: Path) -> None:
    result = train(tiny(tmp_path, epochs=2, checkpoint_every=1))
    with pytest.raises(ConfigError, match="fewer than the 2 epochs"):
        train_module.resume_config(result.checkpoint, epochs=1)


def test_a_kill_loses_at_most_the_rolling_interval(tmp_path, monkeypatch) -> None:
    clock = iter(range(0, 10**6, 60))  # every reading of the clock is one minute later
    monkeypatch.setattr(train_loop_module, "now_s", lambda: float(next(clock)))
    config = tiny(tmp_path, epochs=2, checkpoint_every=10, checkpoint_minutes=1.0)
    kill_after(monkeypatch, train_loop_module, "evaluate", calls=2)  # dies in epoch 2's test pass
    with pytest.raises(Killed):
        train(config)
    monkeypatch.undo()
    rolling = list((tmp_path / "checkpoints").glob("*_rolling-*.pth"))
    assert len(rolling) == 1, "the run's own rolling file, nothing else"
    position = read_checkpoint(rolling[0]).extra["position"]
    assert (position["epoch"], position["batch"]) == (2, 3), "only the last batch was lost"
    resumed = train(train_module.resume_config(rolling[0]), resume=rolling[0])
    assert resumed.status == "completed" and resumed.epochs_completed == 2
    assert not rolling[0].exists(), "superseded by the final checkpoint"
    assert [r.record.status for r in list_runs(tmp_path / "runs")] == ["completed"]

"""Recovery sweeps: one-shot and fine-tuned accuracy per level, the control, iterative pruning,
and stop/resume inside a level's fine-tuning."""

import dataclasses
import json
from pathlib import Path

import pytest
from tiny_runs import tiny_train_config

from engine.config import SweepConfig
from engine.errors import ConfigError
from engine.events import BatchProgress, SweepPoint
from engine.sweep.run import find_best, run_sweep
from engine.sweep.store import read_sweep


def recovery_config(root, checkpoint, **changes) -> SweepConfig:
    base = tiny_train_config(root, train_subset=256, test_subset=200).to_dict()
    base = {k: v for k, v in base.items() if k in SweepConfig.__dataclass_fields__}
    base.update(checkpoint=checkpoint, model="auto", levels=(0.0, 50.0, 90.0), method="global")
    base.update(finetune_epochs=1, batch_size=64, tolerance=5.0)
    return SweepConfig(**{**base, **changes})


def test_every_level_is_fine_tuned_beside_its_one_shot_accuracy(trained_checkpoint, tmp_path):
    events = []
    # 16 fine-tuning steps per level: 4 (256 images) are too few to recover from 90% reliably
    config = recovery_config(tmp_path, trained_checkpoint, train_subset=1024)
    result = run_sweep(config, on_event=events.append)
    assert result.status == "completed"
    assert [p.level_percent for p in result.points] == [0, 50, 90]
    assert all(p.accuracy_finetuned is not None for p in result.points)
    assert result.control_accuracy == result.points[0].accuracy_finetuned  # dense, fine-tuned
    high = result.points[-1]
    assert high.accuracy_finetuned > high.accuracy  # 90% recovers
    assert result.best_level_finetuned is not None
    assert result.best_level_finetuned >= (result.best_level_percent or 0)
    sentence = result.sentence()
    assert sentence.startswith("one-shot: ") and "after 1 epoch of fine-tuning" in sentence
    points = [e for e in events if isinstance(e, SweepPoint)]
    assert [p.accuracy_finetuned is not None for p in points] == [True] * 3
    assert any(isinstance(e, BatchProgress) for e in events)  # fine-tuning shows progress
    run = Path(result.run_dir)
    lines = [json.loads(x) for x in (run / "sweep.jsonl").read_text().splitlines()]
    assert all("accuracy_finetuned" in line for line in lines)
    assert (run / "finetune" / "level-90" / "metrics.jsonl").is_file()
    assert not list(run.glob("finetune/**/*.pth"))  # each level's weights were dropped
    again = read_sweep(run)
    assert again.best_level_finetuned == result.best_level_finetuned
    assert again.control_accuracy == result.control_accuracy
    # fine-tuning a level leaves the next level's one-shot evaluation untouched
    plain = run_sweep(dataclasses.replace(config, finetune_epochs=0, run_dir=str(tmp_path / "p")))
    assert [p.accuracy for p in plain.points] == [p.accuracy for p in result.points]


def test_without_control_recovered_levels_are_judged_against_dense(trained_checkpoint, tmp_path):
    result = run_sweep(recovery_config(tmp_path, trained_checkpoint, control=False))
    assert result.points[0].accuracy_finetuned is None and result.control_accuracy is None
    assert "(dense)" in result.sentence()


def test_cumulative_sweeps_prune_each_level_from_the_last(trained_checkpoint, tmp_path):
    result = run_sweep(recovery_config(tmp_path, trained_checkpoint, cumulative=True))
    assert result.status == "completed"
    assert [round(p.sparsity_percent) for p in result.points] == [0, 50, 90]
    assert (Path(result.run_dir) / "finetune" / "chain.pth").is_file()
    assert "iterative" in result.sentence()
    with pytest.raises(ConfigError, match="cumulative"):
        run_sweep(recovery_config(tmp_path, trained_checkpoint, cumulative=True, refine=True))
    with pytest.raises(ConfigError, match="finetune"):
        run_sweep(recovery_config(tmp_path, trained_checkpoint, cumulative=True, finetune_epochs=0))


def test_stop_inside_a_level_resumes_there(trained_checkpoint, tmp_path):
    straight = run_sweep(recovery_config(tmp_path / "a", trained_checkpoint))
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 32  # in the fine-tuning of level 90 (4 test + 4 train batches a level)

    stopped = run_sweep(recovery_config(tmp_path / "b", trained_checkpoint), stop=stop)
    assert stopped.status == "stopped"
    run = Path(stopped.run_dir)
    assert list(run.glob("finetune/level-*/*_stopped.pth")), "the level's state was saved"
    resumed = run_sweep(recovery_config(tmp_path / "b", trained_checkpoint), resume_run=run)
    assert resumed.status == "completed"
    for a, b in zip(straight.points, resumed.points, strict=True):
        assert (a.level_percent, a.accuracy) == (b.level_percent, b.accuracy)
        assert a.accuracy_finetuned == pytest.approx(b.accuracy_finetuned, abs=1.0)


def test_find_judges_the_recovered_curve(trained_checkpoint, tmp_path):
    config = recovery_config(tmp_path, trained_checkpoint, resolution=20.0)
    result = find_best(config, coarse_step=50)
    assert result.finetune_epochs == 1 and result.best_level_finetuned is not None

"""Sweeps on a small trained model: points, files, resume, refine, BN recalibration, sensitivity."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from engine.checkpoints.io import read_checkpoint
from engine.config import SweepConfig
from engine.events import RunFinished, RunStarted, SensitivityPoint, SweepFinished, SweepPoint
from engine.models.resnets import build_model
from engine.options import parse_levels
from engine.runs.lifecycle import read_run_info
from engine.runs.record import read_jsonl
from engine.sweep.answer import (
    DENSE_KERNELS,
    PointResult,
    SweepResult,
    best_level,
    fastest_enough,
    make_result,
    reaches,
    speed_bracket,
)
from engine.sweep.run import find_best, run_sweep
from engine.sweep.sensitivity import run_sensitivity
from engine.sweep.store import SensitivityResult, read_sensitivity, read_sweep


def config_for(checkpoint, tmp_path, **changes) -> SweepConfig:
    base = dict(
        checkpoint=checkpoint,
        dataset="synthetic",
        test_subset=100,
        device="cpu",
        levels=parse_levels("0:100:25"),
        run_dir=str(tmp_path / "runs"),
        eval_batch_size=50,
    )
    return SweepConfig(**{**base, **changes})


def point(level, accuracy, evaluated=True):
    return PointResult(level, level, level, 0, accuracy, 0.0, None, 0, 0, 0.0, evaluated=evaluated)


def test_best_level_on_a_synthetic_curve():
    # 50% dips 1.5 points, 60% is back within: pooled, 50-60% lose 1.0 point, so 60% counts.
    curve = [point(0, 93.0), point(20, 92.9), point(40, 92.1), point(50, 91.5), point(60, 92.5)]
    assert best_level(curve, 93.0, 1.0).level_percent == 60
    # past a real drop a lucky point does not count: 70-80% pooled lose 2.5 points
    curve += [point(70, 89.0), point(80, 92.0)]
    assert best_level(curve, 93.0, 1.0).level_percent == 60
    assert best_level(curve, 93.0, 3.0).level_percent == 80
    assert best_level(curve, 93.0, 0.0).level_percent == 0
    assert best_level(curve + [point(10, None, evaluated=False)], 93.0, 1.0).level_percent == 60
    assert best_level(curve, None, 1.0) is None
    result = SweepResult("completed", "r", "resnet20", "layerwise", curve, 93.1, 1.0, 62.0, 92.5)
    assert result.sentence() == "62% of weights removed within 1.0 point of 93.1%"
    result.method = "structured"  # the accuracy is the slim network's: say so
    assert "channels removed" in result.sentence()
    result.method = "layerwise"
    result.best_level_ci95 = [40.0, 70.0]
    assert result.sentence().endswith("(95% interval of the best level: 40-70%)")
    # nothing qualifies and the bootstrap agrees: "interval ... 0%" would only repeat it
    result.best_level_percent, result.best_level_ci95 = 0.0, [0.0, 0.0]
    assert result.sentence() == "no pruned level stays within 1.0 point of 93.1%"
    assert result.level_interval() is None  # the table legend leaves it out as well


def test_sweep_points_files_and_events(trained_checkpoint, tmp_path):
    events = []
    result = run_sweep(config_for(trained_checkpoint, tmp_path), on_event=events.append)
    levels = [p.level_percent for p in result.points]
    assert levels == [0.0, 25.0, 50.0, 75.0, 100.0]
    for p in result.points:
        assert p.sparsity_percent == pytest.approx(p.level_percent, abs=0.01)
        assert p.evaluated and 0.0 <= p.accuracy <= 100.0
        assert sum(map(sum, p.confusion)) == 100
        assert len(p.per_layer) == 19  # resnet20: 19 convs; the classifier is spared
        assert p.sparse_bytes <= p.dense_bytes or p.level_percent == 0
    assert result.points[-1].accuracy <= 20.0  # nothing left: about chance
    assert result.baseline_accuracy == result.points[0].accuracy > 30.0
    run = tmp_path / "runs"
    (run_dir,) = list(run.iterdir())
    assert len(read_jsonl(run_dir / "sweep.jsonl")) == 5
    assert (run_dir / "sweep.csv").read_text().splitlines()[0].startswith("level_percent,")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best_level_percent"] == result.best_level_percent
    assert summary["sentence"] == result.sentence()
    assert [type(e) for e in events if isinstance(e, SweepPoint)] == [SweepPoint] * 5
    assert isinstance(events[-2], SweepFinished) and isinstance(events[-1], RunFinished)
    assert events[-1].status == "completed"
    again = read_sweep(run_dir)
    assert [p.accuracy for p in again.points] == [p.accuracy for p in result.points]


def test_sweep_restores_an_in_memory_model(trained_checkpoint, tmp_path):
    model = build_model("resnet20")
    model.load_state_dict(read_checkpoint(trained_checkpoint).state_dict)
    before = copy.deepcopy(model.state_dict())
    run_sweep(config_for(trained_checkpoint, tmp_path, bn_recalibrate=2), model=model)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())


def test_interrupted_sweep_resumes_only_missing_levels(trained_checkpoint, tmp_path):
    seen = []

    def stop():
        return len(seen) >= 2

    config = config_for(trained_checkpoint, tmp_path)
    first = run_sweep(
        config, on_event=lambda e: seen.append(e) if isinstance(e, SweepPoint) else None, stop=stop
    )
    assert first.status == "stopped" and len(first.points) == 2
    computed = []
    second = run_sweep(
        config,
        on_event=lambda e: computed.append(e) if isinstance(e, SweepPoint) else None,
        resume_run=first.run_dir,
    )
    assert second.status == "completed"
    assert [p.level_percent for p in second.points] == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert len(read_jsonl(f"{first.run_dir}/sweep.jsonl")) == 5  # 2 kept + 3 new, none recomputed
    full = run_sweep(config_for(trained_checkpoint, tmp_path / "b"))
    assert [p.accuracy for p in second.points] == [p.accuracy for p in full.points]


def test_refine_bisects_to_the_resolution(trained_checkpoint, tmp_path):
    config = config_for(trained_checkpoint, tmp_path, refine=True, resolution=5.0, tolerance=0.0)
    result = run_sweep(config)
    refined = [p for p in result.points if p.refined]
    assert refined, "expected bisection points"
    best = result.best_level_percent
    above = [p.level_percent for p in result.points if p.level_percent > best and p.evaluated]
    assert min(above) - best <= 5.0


def test_find_best_stops_at_first_miss(trained_checkpoint, tmp_path):
    result = find_best(config_for(trained_checkpoint, tmp_path, tolerance=0.0, resolution=5.0))
    coarse = [p.level_percent for p in result.points if not p.refined]
    assert coarse == sorted(coarse) and len(coarse) < 11  # stopped scanning at the first miss
    assert result.best_level_percent is not None


def test_bn_recalibration_reported_beside_plain_accuracy(trained_checkpoint, tmp_path):
    result = run_sweep(
        config_for(trained_checkpoint, tmp_path, bn_recalibrate=2, levels=(0.0, 50.0))
    )
    assert all(p.accuracy_bn_recalibrated is not None for p in result.points)
    # the baseline stays the plain accuracy
    assert result.baseline_accuracy == result.points[0].accuracy


def test_early_stop_records_not_evaluated(trained_checkpoint, tmp_path):
    # 10 test images per class: a network with (almost) no weights left predicts one class = 10%
    config = config_for(
        trained_checkpoint,
        tmp_path,
        levels=parse_levels("0,99.99,100"),
        early_stop=1,
        test_subset=10,
        subset_per_class=True,
    )
    result = run_sweep(config)
    assert [p.evaluated for p in result.points] == [True, True, False]
    assert result.points[1].accuracy <= 11.0  # the chance-level point that triggered the stop
    assert result.points[2].accuracy is None and result.points[2].sparsity_percent == 100.0


def test_sensitivity_table(trained_checkpoint, tmp_path):
    events = []
    result = run_sensitivity(
        config_for(trained_checkpoint, tmp_path, levels=parse_levels("50,90")),
        on_event=events.append,
        layers=["conv1", "layer3.2.conv2"],
    )
    assert result.layers == ["conv1", "layer3.2.conv2"] and result.levels == [50.0, 90.0]
    assert set(result.accuracy["conv1"]) == {50.0, 90.0}
    assert len([e for e in events if isinstance(e, SensitivityPoint)]) == 4
    csv = (tmp_path / "runs").glob("*/sensitivity.csv")
    assert next(csv).read_text().splitlines()[0] == "layer,50,90"


def test_sensitivity_ranks_by_the_runs_score_and_records_it(trained_checkpoint, tmp_path):
    layers = ["conv1", "layer3.2.conv2"]
    by = {}
    for score in ("l1", "random"):
        config = config_for(trained_checkpoint, tmp_path / score, levels=(90.0,), score=score)
        events = []
        by[score] = run_sensitivity(config, events.append, layers=layers)
        (started,) = [e for e in events if isinstance(e, RunStarted)]
        assert started.data, "the app's headline says where the images come from (JPEG)"
    assert by["l1"].score == "l1" and by["random"].score == "random"
    # random order removes weights |w| ranking keeps: some layer's accuracy moves
    assert any(by["l1"].accuracy[n] != by["random"].accuracy[n] for n in layers)
    run_dir = Path(by["random"].run_dir)
    assert read_sensitivity(run_dir).score == "random"
    # `prunelab runs` and the Runs screen show this headline
    assert read_run_info(run_dir).headline().startswith("random score: 2 layers x 1 level, dense")
    assert not read_run_info(by["l1"].run_dir).headline().startswith("l1")
    # a killed run has no summary: its config still names the score
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").unlink()
    assert read_sensitivity(run_dir).score == "random"
    # a run written before scores existed reads back as l1 (no score anywhere)
    del summary["score"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    run_json = json.loads((run_dir / "run.json").read_text())
    del run_json["config"]["score"]
    (run_dir / "run.json").write_text(json.dumps(run_json))
    assert read_sensitivity(run_dir).score == "l1"


def test_most_sensitive_layers_compare_the_highest_level_all_have():
    accuracy = {
        "conv1": {50.0: 80.0, 90.0: 20.0},
        "layer1.0.conv1": {50.0: 85.0, 90.0: 60.0},
        "layer1.0.conv2": {50.0: 70.0},  # a stopped run: 90% not measured for this layer
        "linear": {},
    }
    result = SensitivityResult("r", list(accuracy), [50.0, 90.0], 90.0, accuracy)
    assert result.comparison_level() == 50.0
    assert result.most_sensitive(2) == ["layer1.0.conv2", "conv1"]
    del accuracy["layer1.0.conv2"]
    assert result.comparison_level() == 90.0
    assert result.most_sensitive() == ["conv1", "layer1.0.conv1"]
    assert SensitivityResult("r", [], [], None, {}).most_sensitive() == []


def test_stop_during_a_level_drops_only_that_level(trained_checkpoint, tmp_path):
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        # each level: one check before it, then one per test batch (100 images, batches of 50)
        return calls["n"] == 5  # the first batch of the second level

    config = config_for(trained_checkpoint, tmp_path)
    result = run_sweep(config, stop=stop)
    assert result.status == "stopped"
    assert [p.level_percent for p in result.points] == [0.0]
    assert len(read_jsonl(f"{result.run_dir}/sweep.jsonl")) == 1
    resumed = run_sweep(config, resume_run=result.run_dir)
    assert [p.level_percent for p in resumed.points] == [0.0, 25.0, 50.0, 75.0, 100.0]


def test_structured_sweep_records_the_slim_networks_cost(trained_checkpoint, tmp_path):
    # cheap by default: parameters and MACs counted, latency not timed
    config = config_for(
        trained_checkpoint, tmp_path, method="structured", levels=(50.0,), tolerance=100.0
    )
    plain = run_sweep(config)
    dense, half = plain.points
    assert half.parameters < dense.parameters and half.macs < 0.4 * dense.macs
    assert half.latency_ms is None and half.speedup is None and plain.timed_on == ""
    assert "50% of filters removed" in plain.sentence()
    config = dataclasses.replace(config, latency_batch=4, x="latency")
    result = run_sweep(config)
    dense, half = result.points
    assert dense.speedup == 1.0 and half.latency_ms > 0 and half.latency_batch > 0
    assert half.speedup is not None
    assert result.timed_on == "CPU, batch 4" and "filters removed" in result.sentence()
    gain = result.gain(50.0)  # measured on a busy machine: faster, or no measurable speedup
    assert "CPU, batch 4)" in gain and gain in result.sentence()
    assert half.speedup_range[0] <= half.speedup <= half.speedup_range[1]
    rows = (Path(result.run_dir) / "sweep.csv").read_text().splitlines()
    assert "parameters,macs,latency_ms,latency_batch,speedup" in rows[0]
    assert read_sweep(result.run_dir).sentence() == result.sentence()  # the report says the same
    # in the user's units: MACs and parameters need no timing
    macs = make_result(dataclasses.replace(config, x="macs"), "r", plain.points, "completed", False)
    assert macs.gain(50.0).endswith("x fewer MACs")


def test_unstructured_levels_claim_no_speedup(trained_checkpoint, tmp_path):
    config = config_for(trained_checkpoint, tmp_path, levels=(50.0,), x="macs", tolerance=100.0)
    result = run_sweep(config)
    dense, half = result.points
    assert half.macs == dense.macs and half.parameters == dense.parameters
    assert DENSE_KERNELS in result.sentence()


def test_find_target_speedup_answers_with_the_most_accurate_fast_enough_level(
    trained_checkpoint, tmp_path
):
    config = config_for(trained_checkpoint, tmp_path, method="structured", target_speedup=1.01)
    found = find_best(config, coarse_step=50)
    assert found.target_speedup == 1.01 and found.timed_on.endswith("batch 64")  # the default
    fast = [p for p in found.points if p.speedup is not None and reaches(p, 1.01)]
    if found.best_level_percent is None:
        assert not fast and "no level measured reached" in found.sentence()
    else:
        best = max(fast, key=lambda p: (p.accuracy, -p.level_percent))
        assert found.best_level_percent == best.level_percent
        assert found.gain(found.best_level_percent) in found.sentence()
        assert "CPU, batch 64)" in found.sentence() and "target 1.01x" in found.sentence()
    # on given points: the most accurate level at or above the target, the lower one on a tie
    curve = [point(0, 90.0), point(25, 89.0), point(50, 85.0), point(75, 85.0)]
    for p, speedup in zip(curve, (1.0, 1.3, 2.1, 3.0), strict=True):
        p.speedup = speedup
    assert fastest_enough(curve, 2.0).level_percent == 50
    assert fastest_enough(curve, 1.2).level_percent == 25
    assert fastest_enough(curve, 5.0) is None
    assert speed_bracket(curve, 2.0) == (25, 50) and speed_bracket(curve, 1.0) is None
    # a median that reaches the target on a busy machine is not enough: its whole range must
    curve[3].speedup_range = [1.4, 4.5]
    assert fastest_enough(curve, 2.0).level_percent == 50 and not reaches(curve[3], 2.0)
    curve[2].speedup_range = [1.9, 2.3]
    assert fastest_enough(curve, 2.0) is None and speed_bracket(curve, 2.0) is None


def test_an_answer_in_speed_times_every_level():
    from engine.config import DEFAULT_LATENCY_BATCH
    from engine.sweep.run import _with_timing

    config = SweepConfig(checkpoint="c.pt")
    assert _with_timing(config).latency_batch == 0  # off by default: a few seconds per level
    assert _with_timing(dataclasses.replace(config, x="latency")).latency_batch == (
        DEFAULT_LATENCY_BATCH
    )
    told = dataclasses.replace(config, target_speedup=2.0, latency_batch=8)
    assert _with_timing(told).latency_batch == 8


def test_a_slim_files_costs_are_the_slim_networks(trained_checkpoint, tmp_path):
    """Sweeping a `--format slim` file reports what that slim network costs, not its dense
    architecture's: level 0's parameters and MACs are the slim module's own counts (and torch's
    FlopCounterMode's), masked levels keep them, structured levels take more channels out."""
    from torch.utils.flop_counter import FlopCounterMode

    from engine.checkpoints.io import read_slim
    from engine.export.config import ExportConfig
    from engine.export.writer import export_pruned
    from engine.models.resnets import count_parameters

    out = tmp_path / "slim.pt"
    export_pruned(
        ExportConfig(
            checkpoint=trained_checkpoint,
            level=50,
            method="structured",
            format="slim",
            output=str(out),
            run_dir=str(tmp_path / "export-runs"),
        )
    )
    slim = read_slim(out)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        slim(torch.zeros(1, 3, 32, 32))
    slim_macs = counter.get_total_flops() // 2
    events = []
    masked = run_sweep(
        config_for(str(out), tmp_path, levels=(50.0,), x="macs", tolerance=100.0), events.append
    )
    zero, half = masked.points
    started = next(e for e in events if isinstance(e, RunStarted))
    assert zero.parameters == count_parameters(slim) == started.parameters
    assert zero.macs == slim_macs
    assert (half.parameters, half.macs) == (zero.parameters, zero.macs)  # zeros, dense kernels
    config = config_for(str(out), tmp_path, method="structured", levels=(75.0,), latency_batch=2)
    zero, more = run_sweep(config).points
    assert (zero.parameters, zero.macs) == (count_parameters(slim), slim_macs)
    assert more.parameters < zero.parameters and more.macs < zero.macs
    assert zero.speedup == 1.0 and more.speedup is not None  # timed against the slim file

"""Gradual pruning while training: the cubic schedule, masks that only grow, exactly the target."""

import pytest
import torch
from tiny_runs import tiny_train_config

from engine.checkpoints.io import read_checkpoint
from engine.config import TrainConfig
from engine.errors import ConfigError
from engine.events import EpochEnded
from engine.models.resnets import build_model
from engine.pruning.gradual import CubicSchedule
from engine.pruning.pruner import amount_to_prune, measure_sparsity, prunable_layers
from engine.training.train import train


def test_cubic_schedule_rises_fast_then_slowly_to_the_target():
    schedule = CubicSchedule(target=90.0, start_step=10, end_step=110, every=10)
    assert schedule.level_at(0) == schedule.level_at(10) == 0.0
    assert schedule.level_at(19) == 0.0  # rises only at update steps
    assert schedule.level_at(20) == pytest.approx(90 * (1 - 0.9**3))
    assert schedule.level_at(60) == pytest.approx(90 * (1 - 0.5**3))
    assert schedule.level_at(110) == schedule.level_at(500) == 90.0
    levels = [schedule.level_at(s) for s in range(10, 111, 10)]
    gains = [b - a for a, b in zip(levels, levels[1:], strict=False)]
    assert gains == sorted(gains, reverse=True)  # fast first, slow last
    auto = CubicSchedule.for_epochs(80, 2, 3, steps_per_epoch=8, every=0)
    assert (auto.start_step, auto.end_step, auto.every) == (8, 24, 1)


def test_prune_epochs_are_checked():
    assert TrainConfig(prune_to=90, epochs=8).prune_epochs() == (1, 6)
    problems = TrainConfig(prune_to=90, epochs=4, prune_end=5).problems()
    assert [p.field for p in problems] == ["prune_end"]
    assert not TrainConfig(prune_to=0, epochs=4, prune_end=5).problems()  # off: not checked


@pytest.mark.parametrize("method", ["global", "layerwise"])
def test_training_prunes_gradually_to_exactly_the_target(tmp_path, method):
    config = tiny_train_config(
        tmp_path,
        epochs=3,
        prune_to=80,
        prune_start=1,
        prune_end=2,
        prune_every=2,
        prune_method=method,
    )
    events = []
    result = train(config, on_event=events.append)
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    sparsity = [e.sparsity for e in epochs]
    assert 0 < sparsity[0] < sparsity[1] == sparsity[2]  # rising, then fixed after prune_end
    assert result.sparsity == sparsity[2] == pytest.approx(80, abs=0.01)
    model = build_model("resnet20")
    model.load_state_dict(read_checkpoint(result.checkpoint).state_dict)
    layers = prunable_layers(model)
    measured = measure_sparsity(model, layers)
    if method == "global":
        expected = amount_to_prune(80, measured.prunable)
    else:
        expected = sum(amount_to_prune(80, m.weight.numel()) for _, m in layers)
    assert measured.prunable_zeros == expected
    payload = torch.load(result.checkpoint, weights_only=True)
    assert payload["gradual"]["level"] == 80 and payload["kind"] == "train"


def test_gradual_stop_and_resume_equals_unbroken(tmp_path):
    def config(root):
        return tiny_train_config(root, epochs=2, prune_to=60, prune_end=2, prune_every=3)

    straight = train(config(tmp_path / "a"))
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 12  # inside epoch 2, masks already grown

    stopped = train(config(tmp_path / "b"), stop=stop)
    assert stopped.status == "stopped"
    assert 0 < torch.load(stopped.checkpoint, weights_only=True)["gradual"]["level"] < 60
    resumed = train(config(tmp_path / "b"), resume=stopped.checkpoint)
    a = read_checkpoint(straight.checkpoint).state_dict
    b = read_checkpoint(resumed.checkpoint).state_dict
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert resumed.sparsity == straight.sparsity


def test_bad_gradual_options_fail_before_any_file(tmp_path):
    with pytest.raises(ConfigError, match="prune_start"):
        train(tiny_train_config(tmp_path, epochs=2, prune_to=50, prune_start=3))
    assert not (tmp_path / "runs").exists()

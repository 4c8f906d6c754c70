"""Training: falling loss, events, files, and stop-and-resume that equals an unbroken run."""

import json

import pytest
import torch
from tiny_runs import tiny_train_config

from engine.checkpoints.io import read_checkpoint
from engine.config import TrainConfig
from engine.errors import CheckpointError, ConfigError, DataError
from engine.events import BatchProgress, CheckpointSaved, EpochEnded, RunFinished, RunStarted
from engine.models.resnets import build_model
from engine.training.recipe import checkpoint_name
from engine.training.train import resume_config, train


def tiny(tmp_path, **changes) -> TrainConfig:
    return tiny_train_config(tmp_path, **changes)


def test_training_streams_events_and_writes_files(tmp_path):
    events = []
    result = train(tiny(tmp_path, checkpoint_every=1), on_event=events.append)
    assert result.status == "completed" and result.epochs_completed == 2
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStarted and kinds[-1] is RunFinished
    assert events[0].parameters == 269_722 and events[0].synthetic
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert epochs[1].train_loss < epochs[0].train_loss  # it learns
    assert epochs[0].lr == pytest.approx(0.01) and epochs[1].lr < 0.01  # cosine, per epoch
    assert all(e.images_per_s > 0 and e.seconds > 0 for e in epochs)
    progress = [e for e in events if isinstance(e, BatchProgress)]
    assert progress and progress[-1].batch == progress[-1].batches == 8
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert [s.epoch for s in saved] == [1, 2]
    run_dir = tmp_path / "runs" / next((tmp_path / "runs").iterdir()).name
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert json.loads((run_dir / "config.json").read_text())["model"] == "resnet20"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"


def test_checkpoint_is_seed_compatible_and_resumable(tmp_path):
    config = tiny(tmp_path, epochs=1)
    result = train(config)
    assert result.checkpoint.endswith("synthetic_resnet20_ckpt_epoch1.pth")
    assert checkpoint_name(TrainConfig(), 60) == "cifar10_resnet50_ckpt_epoch60.pth"
    payload = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert payload["epoch"] == 1
    assert {"net", "acc", "optimizer", "scheduler", "rng", "config", "history"} <= set(payload)
    build_model("resnet20").load_state_dict(payload["net"])  # the seed's own loading code
    assert resume_config(result.checkpoint, epochs=5).epochs == 5


def final_weights(path):
    return read_checkpoint(path).state_dict


def test_stop_and_resume_equals_unbroken_training(tmp_path):
    straight = train(tiny(tmp_path / "a"))
    # 1 epoch, then resume for the second: the schedule and data order continue exactly
    first = train(tiny(tmp_path / "b", epochs=1))
    resumed = train(tiny(tmp_path / "b"), resume=first.checkpoint)
    assert resumed.status == "completed"
    a, b = final_weights(straight.checkpoint), final_weights(resumed.checkpoint)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert [h["epoch"] for h in resumed.history] == [1, 2]


def test_stop_mid_epoch_saves_and_resumes_exactly(tmp_path):
    straight = train(tiny(tmp_path / "a"))
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 12  # inside epoch 2: 8 train + 1 test batch checks in epoch 1

    events = []
    stopped = train(tiny(tmp_path / "b"), on_event=events.append, stop=stop)
    assert stopped.status == "stopped"
    assert stopped.checkpoint.endswith("_stopped.pth")
    assert isinstance(events[-1], RunFinished) and events[-1].status == "stopped"
    position = torch.load(stopped.checkpoint, weights_only=True)["position"]
    assert position["epoch"] == 2 and position["batch"] == 3
    resumed = train(tiny(tmp_path / "b"), resume=stopped.checkpoint)
    a, b = final_weights(straight.checkpoint), final_weights(resumed.checkpoint)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert resumed.history[-1]["train_loss"] == pytest.approx(
        straight.history[-1]["train_loss"], rel=1e-4
    )


def test_resume_from_a_seed_checkpoint(tmp_path):
    seed_file = tmp_path / "cifar10_resnet20_ckpt_epoch1.pth"
    torch.save({"net": build_model("resnet20").state_dict(), "epoch": 1}, seed_file)
    result = train(tiny(tmp_path), resume=seed_file)
    assert [h["epoch"] for h in result.history] == [2]
    assert result.history[0]["lr"] < 0.01  # the schedule was advanced to epoch 1


def test_wrong_model_for_resume(tmp_path):
    first = train(tiny(tmp_path, epochs=1))
    with pytest.raises(CheckpointError, match="pass --model resnet20"):
        train(tiny(tmp_path, model="resnet32"), resume=first.checkpoint)


def test_bad_config_and_missing_data_fail_before_any_file(tmp_path):
    with pytest.raises(ConfigError, match="batch_size"):
        train(tiny(tmp_path, batch_size=0))
    with pytest.raises(DataError, match="--download"):
        train(tiny(tmp_path, dataset="cifar10", data_dir=str(tmp_path / "nowhere")))
    assert not (tmp_path / "runs").exists()


def test_trains_on_the_cifar_format_fixture(cifar_dir, tmp_path):
    config = tiny(
        tmp_path,
        dataset="cifar10",
        data_dir=cifar_dir,
        skip_checksum=True,
        train_subset=0,
        test_subset=0,
        epochs=1,
    )
    result = train(config)
    assert result.status == "completed" and result.final_test_acc is not None


@pytest.mark.filterwarnings("error::UserWarning")  # no torch warning about the schedule's order
def test_stop_during_the_test_pass_resumes_with_only_the_test_pass(tmp_path):
    straight = train(tiny(tmp_path / "a"))
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] == 9  # 8 training batches, then the first test batch of epoch 1

    stopped = train(tiny(tmp_path / "b"), stop=stop)
    assert stopped.status == "stopped" and stopped.history == []
    position = torch.load(stopped.checkpoint, weights_only=True)["position"]
    assert (position["epoch"], position["batch"]) == (1, 8)
    resumed = train(tiny(tmp_path / "b"), resume=stopped.checkpoint)
    a, b = final_weights(straight.checkpoint), final_weights(resumed.checkpoint)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert resumed.history[0]["test_acc"] == pytest.approx(straight.history[0]["test_acc"])

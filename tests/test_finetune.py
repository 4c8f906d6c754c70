"""Masked fine-tuning: pruned weights stay bit-exactly 0, the run recovers, stop/resume is exact."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from tiny_runs import tiny_train_config

from engine.checkpoints.io import read_checkpoint
from engine.errors import ConfigError, PrunelabError
from engine.events import EpochEnded, Notice, RunFinished, RunStarted
from engine.models.resnets import build_model
from engine.pruning.masks import MaskSet, pack_bits, unpack_bits
from engine.pruning.pruner import amount_to_prune, measure_sparsity, prunable_layers
from engine.training.finetune import Rewind, cosine_to_zero, finetune, finetune_resume_config
from engine.training.finetune_config import FinetuneConfig
from engine.training.train import train


def tiny_finetune(root, checkpoint, **changes) -> FinetuneConfig:
    base = tiny_train_config(root, train_subset=256, test_subset=200, batch_size=64).to_dict()
    base = {k: v for k, v in base.items() if k in FinetuneConfig.__dataclass_fields__}
    base.update(checkpoint=checkpoint, level=70.0, method="global", epochs=2, lr=0.01)
    return FinetuneConfig(**{**base, **changes})


def zero_bits(tensor: torch.Tensor) -> bool:
    """Every element is +0.0, bit for bit."""
    return bool((tensor.view(torch.int32) == 0).all())


def masked_step(model, masks: MaskSet, optimizer) -> None:
    """One SGD step on a random batch, then the masks, as fine-tuning does."""
    model.train()
    images, labels = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    optimizer.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    optimizer.step()
    masks.apply()


def test_pruned_weights_stay_bit_exact_zero_through_momentum_and_decay():
    torch.manual_seed(0)
    model = build_model("resnet20")
    masks = MaskSet.prune(model, 60, "global")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    bn = model.bn1
    running_before = bn.running_mean.clone()
    kept_before = [w.detach().clone() for w in masks.weights]
    for _ in range(4):
        masked_step(model, masks, optimizer)
        for weight, pruned in zip(masks.weights, masks.pruned, strict=True):
            assert zero_bits(weight.detach()[pruned])
    # without the mask those weights would have moved: their momentum is not zero
    buffers = [optimizer.state[w]["momentum_buffer"] for w in masks.weights]
    assert any(b[p].abs().sum() > 0 for b, p in zip(buffers, masks.pruned, strict=True))
    # kept weights and BatchNorm train
    moved = [
        (w.detach() != k)[~p].any()
        for w, k, p in zip(masks.weights, kept_before, masks.pruned, strict=True)
    ]
    assert all(moved)
    assert not torch.equal(bn.running_mean, running_before)


@pytest.mark.parametrize("method", ["structured", "coupled"])
def test_removed_channels_stay_removed_through_training(method):
    """A removed filter's BatchNorm scale and shift are held at 0 too: through a residual add
    the channel's shift would otherwise train back, the channel would emit a constant, and the
    trained network would no longer be the one with those channels taken out."""
    from engine.pruning.slim import kept_channels, slim_model

    torch.manual_seed(0)
    model = build_model("resnet20")
    masks = MaskSet.prune(model, 50, method)
    widths = {name: w.shape[0] for name, w in zip(masks.names, masks.weights, strict=True)}
    alive = {name: len(kept) for name, kept in kept_channels(model).items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
    for _ in range(3):
        masked_step(model, masks, optimizer)
    assert {n: len(k) for n, k in kept_channels(model).items()} == alive
    assert all(alive[n] == widths[n] - amount_to_prune(50, widths[n]) for n in alive)
    # and so the trained network still is its slim network, logit for logit
    model.eval()
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert (slim_model(model).eval()(images) - model(images)).abs().max() <= 1e-4
    # the BatchNorm masks go through a checkpoint and come back
    again = MaskSet.from_state(model, masks.state(), "test")
    assert set(again.norms) == set(masks.norms) and len(again.norms) == len(alive)
    for name, (_, removed) in masks.norms.items():
        assert torch.equal(again.norms[name][1], removed)


def test_masks_pack_eight_per_byte_and_round_trip():
    mask = torch.rand(3, 5, 7) > 0.5
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(mask.numel() / 8)
    assert torch.equal(unpack_bits(packed, mask.numel()).view(mask.shape), mask)


def test_masks_survive_channels_last_and_reload():
    model = build_model("resnet20").to(memory_format=torch.channels_last)
    masks = MaskSet.prune(model, 50, "layerwise")
    other = build_model("resnet20").to(memory_format=torch.channels_last)
    other.load_state_dict(model.state_dict())
    again = MaskSet.from_state(other, masks.state(), "test")
    for a, b in zip(masks.pruned, again.pruned, strict=True):
        assert torch.equal(a, b)


def test_cosine_reaches_zero_and_rewind_replays_the_source_schedule(trained_checkpoint):
    at = cosine_to_zero(0.1, 100)
    assert at(0) == pytest.approx(0.1) and at(50) == pytest.approx(0.05) and at(100) == 0
    source = read_checkpoint(trained_checkpoint)  # trained 2 epochs, lr 0.01, T_max 20
    rewind = Rewind.of(source, 1)
    lr_at = rewind.lr_at(steps_per_epoch=10)
    expected = 0.5 * 0.01 * (1 + math.cos(math.pi * 1 / 20))  # the lr of its epoch 2
    assert lr_at(0) == pytest.approx(expected) and lr_at(9) == lr_at(0)


def test_finetune_recovers_at_exactly_the_level(trained_checkpoint, tmp_path):
    events = []
    result = finetune(tiny_finetune(tmp_path, trained_checkpoint), on_event=events.append)
    assert result.status == "completed" and result.epochs_completed == 2
    assert isinstance(events[0], RunStarted) and events[0].kind == "finetune"
    assert isinstance(events[-1], RunFinished) and events[-1].kind == "finetune"
    assert any(isinstance(e, Notice) and "one-shot" in e.text for e in events)
    assert result.oneshot_accuracy < result.dense_accuracy
    assert result.recovered_accuracy > result.oneshot_accuracy
    assert result.best_epoch in (1, 2)
    # the measured zeros are exactly the level's count, in the result and in the checkpoint
    layers = prunable_layers(build_model("resnet20"))
    count = sum(w.numel() for _, m in layers for w in [m.weight])
    assert result.pruned_weights == amount_to_prune(70, count) == result.prunable_weights * 0.7 // 1
    model = build_model("resnet20")
    model.load_state_dict(read_checkpoint(result.checkpoint).state_dict)
    measured = measure_sparsity(model, prunable_layers(model))
    assert measured.prunable_zeros == result.pruned_weights
    assert result.sparsity == pytest.approx(70.0, abs=1e-3)
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert [e.sparsity for e in epochs] == [pytest.approx(70.0, abs=1e-3)] * 2
    assert epochs[0].lr == pytest.approx(0.01) and epochs[1].lr < 0.01  # per-step cosine
    run = json.loads(
        (tmp_path / "runs" / next((tmp_path / "runs").iterdir()) / "run.json").read_text()
    )
    assert (
        run["kind"] == "finetune" and run["summary"]["oneshot_accuracy"] == result.oneshot_accuracy
    )
    assert run["config"]["level"] == 70 and run["config"]["lr"] == 0.01
    assert "ft70global" in result.checkpoint and result.checkpoint.endswith("epoch2.pth")


def test_finetune_stop_and_resume_equals_unbroken(trained_checkpoint, tmp_path):
    straight = finetune(tiny_finetune(tmp_path / "a", trained_checkpoint))
    calls = {"n": 0}

    def stop():
        calls["n"] += 1  # 2 test passes of 4 batches, then epoch 1: 4 train + 4 test
        return calls["n"] > 8 + 8 + 2

    stopped = finetune(tiny_finetune(tmp_path / "b", trained_checkpoint), stop=stop)
    assert stopped.status == "stopped" and stopped.checkpoint.endswith("_stopped.pth")
    position = torch.load(stopped.checkpoint, weights_only=True)["position"]
    assert (position["epoch"], position["batch"]) == (2, 2)
    config = finetune_resume_config(stopped.checkpoint)
    assert config.level == 70 and config.model == "resnet20"
    resumed = finetune(config, resume=stopped.checkpoint)
    assert resumed.status == "completed"
    assert resumed.oneshot_accuracy == straight.oneshot_accuracy
    a = read_checkpoint(straight.checkpoint).state_dict
    b = read_checkpoint(resumed.checkpoint).state_dict
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert resumed.pruned_weights == straight.pruned_weights


def test_finetune_refuses_what_it_cannot_do(trained_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="level"):
        finetune(tiny_finetune(tmp_path, trained_checkpoint, level=120))
    plain = tmp_path / "plain.pth"
    torch.save(build_model("resnet20").state_dict(), plain)
    with pytest.raises(ConfigError, match="lr_rewind"):
        finetune(tiny_finetune(tmp_path, str(plain), lr_rewind=True))
    with pytest.raises(PrunelabError, match="not a fine-tuning checkpoint"):
        finetune_resume_config(trained_checkpoint)
    # a training run cannot resume a fine-tuning checkpoint (it would lose the mask)
    done = finetune(tiny_finetune(tmp_path / "f", trained_checkpoint, epochs=1))
    with pytest.raises(PrunelabError, match="prunelab finetune"):
        train(tiny_train_config(tmp_path / "t", epochs=3), resume=done.checkpoint)

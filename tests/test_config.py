"""Config: the seed's defaults, one validate() that names the field and what is allowed."""

import math

import pytest

from engine.config import SweepConfig, TrainConfig
from engine.errors import ConfigError
from engine.options import field_meta, format_levels, parse_levels


def test_defaults_are_the_seeds():
    c = TrainConfig()
    assert (c.batch_size, c.lr, c.momentum, c.weight_decay, c.epochs, c.t_max) == (
        128,
        0.01,
        0.9,
        5e-4,
        60,
        20,
    )
    assert c.model == "resnet50" and c.dataset == "cifar10" and c.checkpoint_every == 10
    assert c.problems() == []
    s = SweepConfig(checkpoint="x.pth")
    assert s.levels == tuple(float(v) for v in range(0, 101, 5))
    assert s.method == "layerwise" and not s.include_classifier and s.tolerance == 1.0


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"batch_size": 0}, "batch_size", "from 1 to 65536"),
        ({"lr": -1.0}, "lr", "from 0 to 10"),
        ({"lr": math.nan}, "lr", "not a number"),
        ({"epochs": 2.5}, "epochs", "whole number"),
        ({"model": "vgg16"}, "model", "one of resnet50, resnet18"),
        ({"dataset": "mnist"}, "dataset", "cifar10, imagefolder, synthetic"),
        ({"device": "gpu"}, "device", "auto, cpu, cuda, cuda:N"),
        ({"precision": "fp8"}, "precision", "auto, fp32, bf16"),
        ({"eta_min": 0.5}, "eta_min", "must not exceed lr"),
        ({"checkpoint_dir": " "}, "checkpoint_dir", "must not be empty"),
    ],
)
def test_validate_names_field_and_allowed_values(changes, field, fragment):
    config = TrainConfig(**changes)
    problems = {p.field: p.message for p in config.problems()}
    assert field in problems and fragment in problems[field]
    with pytest.raises(ConfigError) as info:
        config.validate()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_every_bad_value_is_reported_at_once():
    fields = {p.field for p in TrainConfig(batch_size=0, momentum=2.0, seed=-1).problems()}
    assert fields == {"batch_size", "momentum", "seed"}


def test_sweep_config_requires_checkpoint_and_valid_levels():
    fields = {p.field for p in SweepConfig().problems()}
    assert fields == {"checkpoint"}
    bad = SweepConfig(checkpoint="x", levels=(0.0, 120.0), tolerance=-1)
    assert {p.field for p in bad.problems()} == {"levels", "tolerance"}


def test_parse_levels_forms():
    assert parse_levels("0:100:25") == (0.0, 25.0, 50.0, 75.0, 100.0)
    assert parse_levels("0:10:3") == (0.0, 3.0, 6.0, 9.0)
    assert parse_levels("60.5, 0,40,40") == (0.0, 40.0, 60.5)
    assert parse_levels([10, 5]) == (5.0, 10.0)
    assert format_levels(parse_levels("0,12.5")) == "0,12.5"
    for bad in ("", "0:100", "0:100:0", "50:10:5", "a,b", "0:200:5", "-5"):
        with pytest.raises(ValueError):
            parse_levels(bad)


def test_round_trip_and_metadata():
    config = SweepConfig(checkpoint="c.pth", levels=parse_levels("0,50"))
    again = SweepConfig.from_dict({**config.to_dict(), "unknown": 1})
    assert again == config
    meta = field_meta(TrainConfig, "batch_size")
    assert meta["minimum"] == 1 and meta["help"]

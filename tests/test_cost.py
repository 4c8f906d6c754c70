"""Costs are measured on the network that runs: slim MACs fall with the level, dense ones do not."""

import torch

from engine.measure.cost import Cost, count_macs, measure_cost, measure_latency
from engine.models.resnets import build_model
from engine.pruning.pruner import Pruner
from engine.pruning.slim import build_slim, kept_channels, slim_model
from engine.runtime.device import Placement

CPU = Placement(torch.device("cpu"), "fp32", channels_last=False)


def test_slim_macs_fall_and_meta_counts_equal_real_ones():
    model = build_model("resnet20").eval()
    dense = count_macs(model)
    pruner = Pruner(model, "structured")
    previous = dense
    for level in (25, 50, 75):
        pruner.set_level(level)
        slim = slim_model(model)
        macs = count_macs(slim)
        assert macs < previous
        assert count_macs(build_slim("resnet20", kept_channels(model))) == macs  # meta, no compute
        previous = macs
    # half the filters of every conv: roughly a quarter of the MACs (inputs halve too)
    pruner.set_level(50)
    assert 0.2 < count_macs(slim_model(model)) / dense < 0.4
    # masked but not removed (unstructured): dense kernels, the same MACs
    pruner.release()
    Pruner(model, "layerwise").set_level(50)
    assert count_macs(model) == dense


def test_latency_is_a_positive_median_and_speedup_is_a_ratio():
    model = build_model("resnet20")
    assert measure_latency(model, CPU, 2, warmup=1, repeats=3) > 0
    assert model.training  # mode put back
    cost = measure_cost(model)
    assert cost.latency_ms is None and cost.parameters == 269722
    dense = Cost(100, 10, latency_ms=4.0, latency_batch=40.0)
    assert Cost(50, 5, latency_ms=2.0, latency_batch=20.0).speedup_over(dense) == 2.0
    assert Cost(50, 5, latency_ms=2.0).speedup_over(Cost(1, 1, latency_ms=3.0)) == 1.5
    assert Cost(50, 5).speedup_over(dense) is None


def test_level_coster_counts_the_network_each_method_runs():
    from engine.measure.cost import LevelCoster

    model = build_model("resnet20").eval()
    structured = LevelCoster(model, "structured", CPU)
    pruner = Pruner(model, "structured")
    pruner.set_level(50)
    cost = structured.at_level()
    assert cost.macs == count_macs(slim_model(model)) < structured.dense.macs
    assert cost.parameters < structured.dense.parameters and cost.latency_ms is None
    pruner.release()
    timed = LevelCoster(model, "layerwise", CPU, latency_batch=2)
    Pruner(model, "layerwise").set_level(50)
    cost = timed.at_level()  # dense kernels: the same work, a measured (not assumed) latency
    assert cost.macs == timed.dense.macs and cost.latency_batch > 0 and cost.latency_ms > 0


def test_gain_in_the_users_units():
    from engine.measure.cost import cost_fields, gain_phrase

    dense = cost_fields(Cost(1000, 400, 4.0, 420.0), Cost(1000, 400, 4.0, 420.0))
    level = cost_fields(Cost(400, 125, 2.5, 200.0), Cost(1000, 400, 4.0, 420.0))
    assert dense["speedup"] == 1.0 and level["speedup"] == 2.1
    assert gain_phrase("latency", level, dense, "CPU, batch 256") == "2.1x faster (CPU, batch 256)"
    assert gain_phrase("macs", level, dense) == "3.2x fewer MACs"
    assert gain_phrase("params", level, dense) == "2.5x fewer parameters"
    assert gain_phrase("level", level, dense) is None
    untimed = cost_fields(Cost(400, 125), Cost(1000, 400))
    assert gain_phrase("latency", untimed, dense, "CPU") is None


def test_speedup_has_a_measured_range_and_noise_is_no_speedup():
    from engine.measure.cost import _timed, cost_fields, gain_phrase, quartiles

    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0) and quartiles([3.0]) == (3.0, 3.0)
    dense = Cost(1000, 400, 4.0, 420.0, batch_quartiles=(400.0, 440.0))
    fast = cost_fields(Cost(400, 125, 2.5, 200.0, batch_quartiles=(190.0, 210.0)), dense)
    assert fast["speedup"] == 2.1 and fast["speedup_range"] == [400 / 210, 440 / 190]
    where = "CPU, batch 256"
    assert gain_phrase("latency", fast, {}, where) == "2.1x faster (1.90-2.32x, CPU, batch 256)"
    # a masked network timed on dense kernels: a ratio near 1 whose range holds 1 is not "faster"
    same = cost_fields(Cost(1000, 400, 4.0, 410.0, batch_quartiles=(395.0, 430.0)), dense)
    phrase = gain_phrase("latency", same, {}, where)
    assert (
        phrase.startswith("no measurable speedup (1.02x, range 0.93-1.11x")
        and "faster" not in phrase
    )
    slow = cost_fields(Cost(1000, 400, 4.0, 840.0, batch_quartiles=(800.0, 880.0)), dense)
    assert gain_phrase("latency", slow, {}, where).startswith("2.0x slower")
    level = cost_fields(Cost(1000, 400), dense)
    assert gain_phrase("macs", level, cost_fields(dense, dense)) == "the same MACs as dense"
    timed = _timed(Cost(1, 1), build_model("resnet20"), CPU, 2)
    low, high = timed.batch_quartiles
    assert 0 < low <= timed.latency_batch <= high and timed.latency_ms > 0
    assert timed.speedup_range(timed)[0] <= 1.0 <= timed.speedup_range(timed)[1]


def test_a_level_is_timed_against_a_dense_copy_in_alternating_rounds():
    from engine.measure.cost import LevelCoster, cost_fields, time_alternating

    model = build_model("resnet20").eval()
    first, second = time_alternating(model, model, CPU, 2, rounds=2, repeats=2)
    assert len(first) == len(second) == 4 and min(first + second) > 0
    coster = LevelCoster(model, "structured", CPU, latency_batch=2)
    assert coster.reference is not model  # the model is pruned in place; the copy stays dense
    Pruner(model, "structured").set_level(50)
    fields = cost_fields(coster.at_level(), coster.dense)
    low, high = fields["speedup_range"]
    assert low <= fields["speedup"] <= high and fields["latency_batch"] > 0
    assert all(
        torch.count_nonzero(p) == p.numel() for p in coster.reference.parameters() if p.dim() == 4
    )


def test_macs_equal_torchs_flop_counter_on_dense_and_slim_networks():
    from torch.utils.flop_counter import FlopCounterMode

    def torch_macs(model: torch.nn.Module) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(torch.zeros(1, 3, 32, 32))
        return counter.get_total_flops() // 2

    for name in ("resnet20", "resnet18", "resnet20b"):
        model = build_model(name).eval()
        assert count_macs(model) == torch_macs(model)
        Pruner(model, "structured").set_level(50)
        slim = slim_model(model)
        assert count_macs(slim) == torch_macs(slim) < torch_macs(model)

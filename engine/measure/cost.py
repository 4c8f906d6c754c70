"""What a level costs to run, measured: parameters, multiply-accumulates and latency.

MACs are every convolution's and linear layer's multiply-accumulates, counted as torch's
`FlopCounterMode` counts them (BatchNorm, ReLU and adds are not counted), on the network that
actually runs: the slim one for structured levels, the dense one
(zeros included, dense kernels do the work) otherwise. A model on the meta device is counted
without computing anything.

Latency is the median of timed forward passes after warm-up, on the run's device, precision and
memory layout, at batch 1 and at a throughput batch, with the quartiles of the throughput
batch's passes as its spread. A sweep level's speedup is timed against a dense copy in
alternating rounds (dense-level, level-dense, ...), so a change in the machine's load hits both
sides; its range divides the dense quartiles by the level's (the slowest and fastest plausible
ratio). It is opt-in for sweeps: a few seconds per level on a CPU. Nothing here is estimated: a masked (unstructured) network is timed as it runs, on dense
kernels that still multiply the zeros.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from engine.errors import PrunelabError
from engine.measure.fold import fold_batchnorm
from engine.measure.fuse import can_fuse, fuse_conv_activations
from engine.methods import CHANNEL_METHODS
from engine.models.resnets import CifarResNet, count_parameters
from engine.pruning.slim import ChannelSpec, kept_channels, skeleton, slim_model
from engine.runtime.device import Placement, synchronize

INPUT_SIZE = (3, 32, 32)
LATENCY_WARMUP = 3  # untimed passes first: allocator, oneDNN/cuDNN kernel choice
LATENCY_REPEATS = 10  # timed passes; the median is reported
LATENCY_ROUNDS = 3  # a level against dense: alternating rounds of LATENCY_REPEATS // 2 passes


def count_macs(model: nn.Module, input_size: tuple[int, ...] = INPUT_SIZE) -> int:
    """Multiply-accumulates of one image's forward pass through `model`."""
    return macs_at(model, output_positions(model, input_size))


def output_positions(model: nn.Module, input_size: tuple[int, ...] = INPUT_SIZE) -> dict[str, int]:
    """How many output positions (height x width; 1 for a linear layer) each convolution and
    linear layer of `model` produces for one image, by name, from one forward pass. Removing
    channels never changes them, so a slim network's MACs follow from its dense network's
    positions and its own channel counts (`macs_at`), with no forward pass of its own.

    Runs in eval mode (BatchNorm statistics untouched) and puts the mode back."""
    param = next(model.parameters())
    positions: dict[str, int] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, _inputs: object, out: torch.Tensor) -> None:
            if isinstance(module, nn.Linear):  # (1, features), or (1, h, w, features) (ConvNeXt)
                positions[name] = out.numel() // out.shape[-1]
            else:  # (1, channels, h, w)
                positions[name] = math.prod(out.shape[2:])

        return hook

    hooks = [
        m.register_forward_hook(record(name))
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, *input_size, device=param.device, dtype=param.dtype)
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return positions


def macs_at(model: nn.Module, positions: dict[str, int]) -> int:
    """Each convolution's and linear layer's multiply-accumulates at `positions`, as torch's
    FlopCounterMode counts them (BatchNorm, ReLU and adds are not counted; a test holds the
    two equal on every family, slim ones included). Needs no data: `model` may be a skeleton on
    the meta device, counted without importing the compiler stack a meta forward pulls in
    (1.5 s of a sweep's start-up)."""
    total = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            per_position = m.out_channels * m.in_channels // m.groups * math.prod(m.kernel_size)
            total += positions[name] * per_position
        elif isinstance(m, nn.Linear):
            total += positions[name] * m.in_features * m.out_features
    return total


def measure_latency(
    model: nn.Module,
    placement: Placement,
    batch_size: int,
    *,
    warmup: int = LATENCY_WARMUP,
    repeats: int = LATENCY_REPEATS,
    input_size: tuple[int, ...] = INPUT_SIZE,
) -> float:
    """Median milliseconds of one forward pass of `batch_size` images (after `warmup` passes)."""
    times = time_passes(
        model, placement, batch_size, warmup=warmup, repeats=repeats, input_size=input_size
    )
    return statistics.median(times)


def quartiles(times: list[float]) -> tuple[float, float]:
    """(first, third) quartile of timed passes: the spread reported beside their median."""
    if len(times) < 2:
        return times[0], times[0]
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return q1, q3


@torch.inference_mode()
def time_passes(
    model: nn.Module,
    placement: Placement,
    batch_size: int,
    *,
    warmup: int = LATENCY_WARMUP,
    repeats: int = LATENCY_REPEATS,
    input_size: tuple[int, ...] = INPUT_SIZE,
) -> list[float]:
    """Milliseconds of each of `repeats` forward passes of `batch_size` images, after `warmup`."""
    was_training = model.training
    model.eval()
    x = torch.randn(batch_size, *input_size, device=placement.device)
    x = x.contiguous(memory_format=placement.memory_format)
    times = []
    with placement.autocast():
        for i in range(warmup + repeats):
            synchronize(placement.device)
            started = time.perf_counter()
            model(x)
            synchronize(placement.device)
            if i >= warmup:
                times.append(1000.0 * (time.perf_counter() - started))
    model.train(was_training)
    return times


@dataclass
class Cost:
    """One network's measured cost; latencies are None when not measured."""

    parameters: int
    macs: int
    latency_ms: float | None = None  # batch 1
    latency_batch: float | None = None  # milliseconds per throughput batch
    batch_quartiles: tuple[float, float] | None = None  # spread of the throughput batch's passes
    paired: tuple[float, list[float]] | None = None  # (speedup, range) timed against dense

    def speedup_over(self, dense: Cost) -> float | None:
        """Throughput-batch speedup against `dense` (batch-1 when only that was measured); the
        paired timing when there is one."""
        if self.paired is not None:
            return self.paired[0]
        for mine, theirs in (
            (self.latency_batch, dense.latency_batch),
            (self.latency_ms, dense.latency_ms),
        ):
            if mine and theirs:
                return theirs / mine
        return None

    def speedup_range(self, dense: Cost) -> list[float] | None:
        """[low, high] of the throughput-batch speedup: dense quartiles over this level's (the
        first over the third, the third over the first); None when not timed."""
        if self.paired is not None:
            return self.paired[1]
        if self.batch_quartiles is None or dense.batch_quartiles is None:
            return None
        (q1, q3), (d1, d3) = self.batch_quartiles, dense.batch_quartiles
        return [d1 / q3, d3 / q1] if q1 > 0 and q3 > 0 else None


def _timed(cost: Cost, model: nn.Module, placement: Placement, batch_size: int) -> Cost:
    cost.latency_ms = measure_latency(model, placement, 1)
    times = time_passes(model, placement, batch_size)
    cost.latency_batch = statistics.median(times)
    cost.batch_quartiles = quartiles(times)
    return cost


def measure_cost(model: nn.Module, placement: Placement | None = None, batch_size: int = 0) -> Cost:
    """Parameters and MACs of `model`; latency too when a placement and batch size are given."""
    cost = Cost(count_parameters(model), count_macs(model))
    if placement is not None and batch_size > 0:
        _timed(cost, model, placement, batch_size)
    return cost


class LevelCoster:
    """Per sweep level, the cost of the network that level really runs.

    Channels whose BatchNorm scale and shift are both zero emit nothing, whatever the method:
    the network that runs is the slim one of the channels still alive (a structured level's, or
    a slim file's, read back into the dense shapes), MACs counted on its meta skeleton, latency
    timed on the real slim network. A network with every channel alive is the model itself:
    masked zeros do not change what dense kernels compute, so latency is timed on the masked
    model as it is (no speedup is claimed, one is measured). Both sides of a timing run as the
    sweep's evaluation runs them (`timed_network`: BatchNorm folded, ReLUs fused)."""

    def __init__(
        self, model: nn.Module, method: str, placement: Placement, latency_batch: int = 0
    ) -> None:
        self.model = model
        # the shipped ResNets' channels come out by our own surgery, any other model's through
        # its dependency groups (traced once here; the weights say which channels are dead)
        self.removable = isinstance(model, CifarResNet)
        self.structured = method in CHANNEL_METHODS
        self.groups = None
        if not self.removable and (self.structured or _has_dead_norm_channel(model)):
            from engine.pruning.graph import channel_groups

            try:  # a slim file read back dense runs its slim network whatever the method
                self.groups = channel_groups(model)
            except PrunelabError:
                if self.structured:
                    raise
        self.placement = placement
        self.latency_batch = latency_batch
        self.positions = output_positions(model)  # the same at every level
        counted, runs = self._networks()
        self.dense = self._measure(runs, counted)  # level 0: the network as given
        # what each timed level runs against (the model itself is pruned in place)
        self.reference = copy.deepcopy(runs).eval() if latency_batch > 0 else None
        self._timed_reference = (
            timed_network(self.reference, placement) if self.reference is not None else None
        )

    def _networks(self) -> tuple[nn.Module, nn.Module]:
        """(counted, runs) at the model's current weights: a skeleton to count, and the
        network to time (only built when latency is measured)."""
        if self.groups is not None:
            return (graph_slim(self.model, self.groups),) * 2
        if not self.removable:
            return self.model, self.model
        spec = alive_channels(self.model)
        if spec is None:
            return skeleton(self.model), self.model
        counted = slim_model(skeleton(self.model), spec)
        return counted, slim_model(self.model, spec) if self.latency_batch > 0 else counted

    def _measure(self, model: nn.Module, counted: nn.Module) -> Cost:
        cost = Cost(count_parameters(counted), macs_at(counted, self.positions))
        if self.latency_batch > 0:
            model.to(self.placement.device, memory_format=self.placement.memory_format)
            _timed(cost, timed_network(model, self.placement), self.placement, self.latency_batch)
        return cost

    def at_level(self) -> Cost:
        """The current level's cost (the model holds the level's weights), its throughput batch
        timed against the level-0 copy in alternating rounds."""
        if not self.structured and not self.latency_batch:
            return self.dense  # other methods never take a channel out
        counted, runs = self._networks()
        cost = Cost(count_parameters(counted), macs_at(counted, self.positions))
        if self.reference is not None:
            place = self.placement
            runs.to(place.device, memory_format=place.memory_format)
            runs = timed_network(runs, place)
            cost.latency_ms = measure_latency(runs, place, 1)
            reference = self._timed_reference
            dense, level = time_alternating(reference, runs, place, self.latency_batch)
            cost.latency_batch, cost.batch_quartiles = statistics.median(level), quartiles(level)
            (d1, d3), (q1, q3) = quartiles(dense), cost.batch_quartiles
            cost.paired = (statistics.median(dense) / cost.latency_batch, [d1 / q3, d3 / q1])
        return cost


def alive_channels(model: nn.Module) -> ChannelSpec | None:
    """The channel spec of the slim network `model` computes when some channel of a shipped
    ResNet is dead (its BatchNorm scale and shift zero: a structured level, a slim file read
    back into the dense shapes); None when every channel is alive or none can be taken out."""
    if not isinstance(model, CifarResNet):
        return None
    spec = kept_channels(model)
    widths = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    return None if all(len(kept) == widths[conv] for conv, kept in spec.items()) else spec


def graph_slim(model: nn.Module, groups: list | None = None) -> nn.Module:
    """Any traced model with its dead channels taken out (checked against it), or the model
    itself when every channel is alive."""
    from engine.pruning.graph import slim_copy
    from engine.pruning.graph_files import dead_channels

    removed = dead_channels(model, groups)
    return slim_copy(model, removed) if removed else model


@torch.no_grad()
def _has_dead_norm_channel(model: nn.Module) -> bool:
    """A BatchNorm channel whose scale and shift are both zero: a channel method's mark."""
    return any(
        bool(((m.weight == 0) & (m.bias == 0)).any())
        for m in model.modules()
        if isinstance(m, nn.BatchNorm2d) and m.affine
    )


def running_parameters(model: nn.Module) -> int:
    """Parameters of the network `model` really runs: the slim one when channels are dead."""
    if not isinstance(model, CifarResNet):
        try:
            return count_parameters(graph_slim(model) if _has_dead_norm_channel(model) else model)
        except PrunelabError:  # not traceable, or not removable exactly: what it holds
            return count_parameters(model)
    spec = alive_channels(model)
    return count_parameters(model if spec is None else slim_model(skeleton(model), spec))


def timed_network(model: nn.Module, placement: Placement, fuse: bool = True) -> nn.Module:
    """What a latency times (in eval mode), as the sweep's evaluation runs it: `model` with each
    conv -> BatchNorm pair folded into one conv (`engine.measure.fold`) and, on a CPU in fp32, each conv's
    ReLU and residual add in its oneDNN call (`engine.measure.fuse`, unless `fuse` is False); the same
    treatment for a dense network and a slim one. The model itself when nothing folds. Call it
    outside inference mode (fused weights track their version)."""
    folded = fold_batchnorm(model)
    if folded is None:
        return model
    if fuse and can_fuse(placement.device, placement.precision):
        fuse_conv_activations(folded.graph_module)
    return folded


def time_alternating(
    first: nn.Module,
    second: nn.Module,
    placement: Placement,
    batch_size: int,
    rounds: int = LATENCY_ROUNDS,
    repeats: int = LATENCY_REPEATS // 2,
) -> tuple[list[float], list[float]]:
    """Timed passes of two networks in alternating rounds (first-second, second-first, ...), so
    that a change in the machine's load between them hits both; each round warms up once."""
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            model = (first, second)[i]
            times[i].extend(time_passes(model, placement, batch_size, warmup=1, repeats=repeats))
    return times


def cost_fields(cost: Cost, dense: Cost) -> dict[str, float | int | None]:
    """A level's cost as the sweep records it (sweep.jsonl, CSV, --json)."""
    return {
        "parameters": cost.parameters,
        "macs": cost.macs,
        "latency_ms": cost.latency_ms,
        "latency_batch": cost.latency_batch,
        "speedup": cost.speedup_over(dense),
        "speedup_range": cost.speedup_range(dense),
    }


def gain_phrase(axis: str, level: dict, dense: dict, where: str = "") -> str | None:
    """What a level buys in the user's units, e.g. '2.1x faster (CPU, batch 256)' (with the
    measured range when known: '2.1x faster (1.9-2.3x, CPU, batch 256)'), '3.2x fewer MACs',
    '2.5x fewer parameters'; None when that was not measured. A timing whose range holds 1 is
    'no measurable speedup', never 'faster'.

    `level` and `dense` hold cost_fields(); `where` names the device and batch of the timing."""
    if axis == "latency":
        return _speed_phrase(level.get("speedup"), level.get("speedup_range"), where)
    key, noun = {"macs": ("macs", "MACs"), "params": ("parameters", "parameters")}.get(
        axis, (None, "")
    )
    if key is None or not level.get(key) or not dense.get(key):
        return None
    ratio = dense[key] / level[key]
    return f"the same {noun} as dense" if round(ratio, 1) == 1.0 else f"{ratio:.1f}x fewer {noun}"


def _speed_phrase(speedup: float | None, spread: list | None, where: str) -> str | None:
    if not speedup:
        return None
    if spread:
        low, high = spread
        span = f"{low:.2f}-{high:.2f}x, {where}"
        if low <= 1.0 <= high:
            return f"no measurable speedup ({speedup:.2f}x, range {span})"
        if high < 1.0:
            return f"{1 / speedup:.1f}x slower ({speedup:.2f}x, range {span})"
        return f"{speedup:.1f}x faster ({low:.2f}-{high:.2f}x, {where})"
    if round(speedup, 1) == 1.0:
        return f"no measurable speedup ({speedup:.2f}x, {where})"
    if speedup < 1.0:
        return f"{1 / speedup:.1f}x slower ({where})"
    return f"{speedup:.1f}x faster ({where})"

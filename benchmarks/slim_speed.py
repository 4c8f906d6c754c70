"""Structured pruning made real: the slim network against the dense one, in one run.

DENSE  the model as built (or loaded with --checkpoint), eval mode, inference_mode.
SLIM   the same model pruned by --method at --level (filters and their BatchNorm channels zeroed
       by engine.pruning.pruner.Pruner; `coupled` removes a residual channel from every conv that writes
       it), then taken apart by engine.pruning.slim.slim_model: the removed channels are physically gone.

Both run on the same device, precision and memory layout (engine.runtime.device.resolve_placement, as a
sweep would), as a sweep's latency and evaluation run them (engine.measure.cost.timed_network):
BatchNorm folded into the convs and, on a CPU in fp32, each conv's ReLU and residual add fused
into its oneDNN call (--fuse off: folded only; --fold off: neither; always both sides alike),
at batch 1 and at --batch-size, each timed by engine.measure.cost.measure_latency (median
of --repeats passes after warm-up) in --rounds alternating rounds (dense-slim, slim-dense, ...);
the figure is the median over rounds. It also prints parameters, MACs (FlopCounterMode) and the
largest logit difference between the slim network as timed and the masked network.
--profile adds torch.profiler's self time per op and pass, dense beside slim, at --batch-size.

    python benchmarks/slim_speed.py --model resnet50 --level 50 --batch-size 64 --precision fp32
    python benchmarks/slim_speed.py --model resnet50 --level 50 --method coupled --precision fp32
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import add_common_arguments, config_from_args  # noqa: E402
from engine.checkpoints.io import load_state, read_checkpoint  # noqa: E402
from engine.config import SweepConfig  # noqa: E402
from engine.measure.cost import count_macs, time_passes, timed_network  # noqa: E402
from engine.measure.fuse import can_fuse  # noqa: E402
from engine.methods import CHANNEL_METHODS  # noqa: E402
from engine.models.resnets import build_model, count_parameters  # noqa: E402
from engine.pruning.pruner import Pruner  # noqa: E402
from engine.pruning.slim import slim_model  # noqa: E402
from engine.runtime.device import resolve_placement  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_arguments(p)
    p.add_argument("--checkpoint", default=None, help="weights to prune (default: random init)")
    p.add_argument("--level", type=float, default=50.0, help="structured level, percent")
    p.add_argument("--batch-size", type=int, default=64, help="the throughput batch")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--fold", default="on", choices=("on", "off"), help="fold BatchNorm (both)")
    p.add_argument("--fuse", default="on", choices=("on", "off"), help="fuse ReLU/add (both)")
    p.add_argument("--profile", action="store_true", help="per-op self time, dense vs slim")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--method", default="structured", choices=CHANNEL_METHODS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    placement = resolve_placement(config_from_args(SweepConfig, args, checkpoint="-"))
    torch.manual_seed(0)
    dense = build_model(args.model)
    if args.checkpoint:
        load_state(dense, read_checkpoint(args.checkpoint).state_dict, args.checkpoint)
    masked = build_model(args.model)
    masked.load_state_dict(dense.state_dict())
    Pruner(masked, args.method).set_level(args.level)
    slim = slim_model(masked)
    modules = {"dense": dense, "slim": slim}
    for net in (*modules.values(), masked):
        net.to(placement.device, memory_format=placement.memory_format).eval()
    fuse = args.fuse == "on"
    nets = {
        k: timed_network(v, placement, fuse) if args.fold == "on" else v for k, v in modules.items()
    }

    images = torch.randn(8, 3, 32, 32, device=placement.device)
    images = images.contiguous(memory_format=placement.memory_format)
    with torch.inference_mode():
        diff = (nets["slim"](images) - masked(images)).abs().max().item()
    times: dict[tuple[str, int], list[float]] = {}  # each round's median
    fastest: dict[tuple[str, int], float] = {}  # the least disturbed pass on a shared machine
    for r in range(args.rounds):
        order = list(nets) if r % 2 == 0 else list(reversed(nets))
        for name in order:
            for batch in (1, args.batch_size):
                passes = time_passes(
                    nets[name], placement, batch, warmup=args.warmup, repeats=args.repeats
                )
                times.setdefault((name, batch), []).append(statistics.median(passes))
                fastest[(name, batch)] = min(fastest.get((name, batch), math.inf), *passes)
    median = {key: statistics.median(values) for key, values in times.items()}

    print(f"{args.model}, {args.method} {args.level:g}%, on {placement.describe()}")
    fold = "BatchNorm folded" if args.fold == "on" else "BatchNorm not folded"
    if args.fold == "on" and fuse and can_fuse(placement.device, placement.precision):
        fold += ", ReLU and residual add fused"
    print(
        f"threads: {torch.get_num_threads()}, rounds {args.rounds} x {args.repeats} passes, {fold}"
    )
    for name, net in modules.items():
        cells = ", ".join(f"batch {b}: {median[(name, b)]:.1f} ms" for b in (1, args.batch_size))
        print(
            f"{name:>5}: {count_parameters(net):>11,} parameters, "
            f"{count_macs(net) / 1e6:>8.1f} M MACs, {cells}"
        )
    for batch in (1, args.batch_size):
        ratio = median[("dense", batch)] / median[("slim", batch)]
        best = fastest[("dense", batch)] / fastest[("slim", batch)]
        print(f"speedup at batch {batch}: {ratio:.2f}x (fastest passes: {best:.2f}x)")
    print(f"max |slim - masked| logit difference: {diff:.2e}")
    if args.profile:
        print_profile(nets, placement, args.batch_size)


def print_profile(nets: dict, placement, batch_size: int, passes: int = 2) -> None:
    """torch.profiler's self CPU time per op and pass, dense beside slim (ops over 1%)."""
    from torch.profiler import ProfilerActivity, profile

    x = torch.randn(batch_size, 3, 32, 32, device=placement.device)
    x = x.contiguous(memory_format=placement.memory_format)
    table: dict[str, dict[str, float]] = {}
    with torch.inference_mode(), placement.autocast():
        for name, net in nets.items():
            net(x)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(passes):
                    net(x)
            for event in prof.key_averages():
                ms = event.self_cpu_time_total / 1000 / passes
                table.setdefault(event.key, {})[name] = ms
                table.setdefault("(all ops)", {}).setdefault(name, 0.0)
                table["(all ops)"][name] += ms
    total = max(table["(all ops)"].values())
    print(f"torch.profiler, batch {batch_size}, self CPU ms per pass:")
    for op, ms in sorted(table.items(), key=lambda kv: -max(kv[1].values())):
        if max(ms.values()) >= 0.01 * total:
            dense, slim = ms.get("dense", 0.0), ms.get("slim", 0.0)
            print(f"  {op:<28} dense {dense:9.1f}  slim {slim:9.1f}")


if __name__ == "__main__":
    main()

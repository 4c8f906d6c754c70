"""What folding BatchNorm into the convolutions buys an evaluation: the model against its folded
copy (engine.measure.fold), and in fp32 on the CPU also against the folded copy with each conv + ReLU
(+ residual add) fused into one oneDNN call (engine.measure.fuse), same weights, same batches, in one
process, rounds alternating.

Evaluates --images random 32x32 images in batches of --batch-size with the engine's eval path
(channels_last unless --contiguous, inference_mode, autocast for bf16) and prints images/s of
each, the ratios to the model, and the largest logit difference (fp32 rounding for fp32).

    python benchmarks/fold_gain.py --model resnet50 --images 128 --precision fp32,bf16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from engine.measure.fold import fold_batchnorm  # noqa: E402
from engine.measure.fuse import can_fuse, fuse_conv_activations  # noqa: E402
from engine.models.resnets import build_model  # noqa: E402
from engine.runtime.device import Placement  # noqa: E402


def with_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, so the fold is not an identity."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def images_per_s(model: nn.Module, batches: list[torch.Tensor], placement: Placement) -> float:
    started = time.perf_counter()
    with torch.inference_mode(), placement.autocast():
        for x in batches:
            model(x)
    return sum(len(x) for x in batches) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", default="fp32,bf16")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--contiguous", action="store_true")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    fmt = torch.contiguous_format if args.contiguous else torch.channels_last
    model = with_statistics(build_model(args.model)).to(memory_format=fmt)
    folded = fold_batchnorm(model)
    fused = fold_batchnorm(model)
    assert folded is not None and fused is not None
    fused_count = fuse_conv_activations(fused.graph_module)
    x = torch.randn(args.images, 3, 32, 32).contiguous(memory_format=fmt)
    batches = list(x.split(args.batch_size))
    print(
        f"{args.model}, {args.images} images in batches of {args.batch_size}, "
        f"{'contiguous' if args.contiguous else 'channels_last'}, CPU "
        f"({torch.get_num_threads()} threads), {folded.folded_count} conv+BN pairs folded, "
        f"{fused_count} conv+ReLU fused"
    )
    for precision in [p.strip() for p in args.precision.split(",") if p.strip()]:
        placement = Placement(torch.device("cpu"), precision, not args.contiguous)
        nets = {"model": model, "folded": folded}
        if can_fuse(placement.device, precision):
            nets["fused"] = fused
        with torch.inference_mode(), placement.autocast():
            reference = model(batches[0]).float()
            difference = {
                k: (net(batches[0]).float() - reference).abs().max() for k, net in nets.items()
            }
        for net in nets.values():
            images_per_s(net, batches[:1], placement)  # warm-up: oneDNN primitives
        rates: dict[str, list[float]] = {k: [] for k in nets}
        for round_ in range(args.rounds):
            order = list(nets.items())
            for name, net in order if round_ % 2 == 0 else order[::-1]:
                rates[name].append(images_per_s(net, batches, placement))
        a = statistics.median(rates["model"])
        shown = [f"model {a:7.1f} img/s"] + [
            f"{k} {statistics.median(v):7.1f} img/s ({statistics.median(v) / a:.2f}x, "
            f"logits within {difference[k]:.1e})"
            for k, v in rates.items()
            if k != "model"
        ]
        print(f"{precision}: " + ", ".join(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

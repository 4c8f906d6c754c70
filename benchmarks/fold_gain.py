"""What folding BatchNorm into the convolutions buys an evaluation: the model against its folded
copy (engine.fold), same weights, same batches, in one process, rounds alternating.

Evaluates --images random 32x32 images in batches of --batch-size with the engine's eval path
(channels_last unless --contiguous, inference_mode, autocast for bf16) and prints images/s of
both, the ratio, and the largest logit difference (fp32 rounding for fp32).

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

from engine.device import Placement  # noqa: E402
from engine.fold import fold_batchnorm  # noqa: E402
from engine.models import build_model  # noqa: E402


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
    assert folded is not None
    x = torch.randn(args.images, 3, 32, 32).contiguous(memory_format=fmt)
    batches = list(x.split(args.batch_size))
    print(
        f"{args.model}, {args.images} images in batches of {args.batch_size}, "
        f"{'contiguous' if args.contiguous else 'channels_last'}, CPU "
        f"({torch.get_num_threads()} threads), {folded.folded_count} conv+BN pairs folded"
    )
    for precision in [p.strip() for p in args.precision.split(",") if p.strip()]:
        placement = Placement(torch.device("cpu"), precision, not args.contiguous)
        with torch.inference_mode(), placement.autocast():
            difference = (model(batches[0]).float() - folded(batches[0]).float()).abs().max()
        images_per_s(model, batches[:1], placement)  # warm-up: oneDNN primitives
        images_per_s(folded, batches[:1], placement)
        plain, fold = [], []
        for round_ in range(args.rounds):
            order = ((model, plain), (folded, fold))
            for net, out in order if round_ % 2 == 0 else order[::-1]:
                out.append(images_per_s(net, batches, placement))
        a, b = statistics.median(plain), statistics.median(fold)
        print(
            f"{precision}: model {a:7.1f} img/s, folded {b:7.1f} img/s, gain {b / a:.2f}x; "
            f"largest logit difference {difference:.2e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

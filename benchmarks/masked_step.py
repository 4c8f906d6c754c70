"""What holding a pruning mask costs per training step: masked vs plain, in one run.

PLAIN   forward, cross-entropy, backward, SGD step (momentum 0.9, weight decay 5e-4): the step
        body of engine.training.loop.EpochLoop.run (engine.training.loop.train_step).
MASKED  the same step, then `MaskSet.apply()`: one `masked_fill_` per pruned tensor, which is what
        fine-tuning (engine.training.finetune) and gradual pruning (engine.pruning.gradual) add after every step.

Both use the same architecture pruned to --level (global L1) with the same weights, batch, device
and placement (channels_last, autocast as engine.runtime.device decides). The timed steps are split into
--rounds rounds; each round times a block of each way and the order alternates, so a shared
machine's drift hits both. Prints ms/step of each and the overhead of the masked step:

    python benchmarks/masked_step.py --model resnet20 --batch-size 128 --steps 20
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from common import Timer, add_common_arguments, config_from_args, describe_device  # noqa: E402

from engine.config import TrainConfig  # noqa: E402
from engine.models.resnets import build_model  # noqa: E402
from engine.pruning.masks import MaskSet  # noqa: E402
from engine.runtime.device import resolve_placement  # noqa: E402
from engine.training.loop import train_step  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_arguments(p)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--level", type=float, default=90.0, help="percent pruned (global L1)")
    p.add_argument("--steps", type=int, default=20, help="timed steps of each way")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args()
    config = config_from_args(TrainConfig, args, dataset="synthetic")
    placement = resolve_placement(config)
    device = placement.device
    torch.manual_seed(0)
    base = build_model(args.model).to(device, memory_format=placement.memory_format)
    MaskSet.prune(base, args.level, "global")  # both ways train the same pruned weights
    plain, masked = copy.deepcopy(base), copy.deepcopy(base)
    masks = MaskSet.prune(masked, args.level, "global")  # the zeros are already there
    images = torch.randn(args.batch_size, 3, 32, 32, device=device)
    images = images.contiguous(memory_format=placement.memory_format)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)

    def stepper(model, after):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        model.train()

        def step() -> None:
            train_step(model, optimizer, images, labels, placement)
            after()

        return step

    ways = {"plain": stepper(plain, lambda: None), "masked": stepper(masked, masks.apply)}
    timers = {name: Timer(device) for name in ways}
    for step in ways.values():
        for _ in range(args.warmup):
            step()
    per_round = max(1, args.steps // args.rounds)
    for r in range(args.rounds):
        order = list(ways) if r % 2 == 0 else list(reversed(ways))
        for name in order:
            with timers[name]:
                for _ in range(per_round):
                    ways[name]()
    steps = per_round * args.rounds
    ms = {name: 1000 * t.seconds / steps for name, t in timers.items()}
    print(
        f"{args.model}, batch {args.batch_size}, {args.level:g}% global, {describe_device(device)}, "
        f"{steps} steps each in {args.rounds} alternating rounds"
    )
    for name in ways:
        print(f"  {name:<7} {ms[name]:8.2f} ms/step")
    print(f"  masked step overhead: {100 * (ms['masked'] / ms['plain'] - 1):+.1f}%")
    with torch.no_grad():
        exact = all(
            bool((w[p] == 0).all()) for w, p in zip(masks.weights, masks.pruned, strict=True)
        )
    print(f"  pruned weights exactly 0 after the masked steps: {exact}")


if __name__ == "__main__":
    main()

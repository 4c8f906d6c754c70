"""Training images/s: prunelab's step path against a plain torchvision-style loop, in one run.

OURS   engine.data.loader.BatchLoader: the training split resident on the device as uint8, a fresh
       shuffle and random crop (zero padding 4) + horizontal flip per epoch done on the device,
       normalisation last; channels_last and bf16 autocast as engine.runtime.device.resolve_placement
       decides from --precision / --channels-last (auto: bf16 + channels_last on CUDA,
       fp32 + channels_last on CPU); loss and accuracy summed on the device, no `.item()` per step.
PLAIN  torch.utils.data.DataLoader over benchmarks.reference_data.reference_dataset(..., augment=True): PIL
       RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize, the seed's
       transforms; fp32, contiguous, `loss.item()` every step, as the seed's run.py.

Same architecture and initial weights (two copies), same SGD settings (the seed's), batch size,
device and number of steps. engine.training.train.train() runs whole epochs with evaluation, events and
checkpoints, so OURS is a minimal loop built from the engine's pieces (BatchLoader + model + SGD)
around the engine's own step, engine.training.loop.train_step (imported, not copied). Both loops
drop the last partial batch, so every step has the full batch.

Noise: the timed steps are split into --rounds rounds; each round times a block of steps of each
way, and the order alternates (ours-plain, plain-ours, ...), so drift in a shared machine's load
hits both. The ratio is of the summed times. Run from the repository root:

    python benchmarks/train_throughput.py --model resnet50 --steps 20
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from common import (  # noqa: E402
    Timer,
    add_common_arguments,
    auto_workers,
    config_from_args,
    describe_device,
    forever,
)

from benchmarks.reference_data import reference_dataset  # noqa: E402
from engine.config import CHANNELS_LAST, PRECISIONS, TrainConfig  # noqa: E402
from engine.data.loader import BatchLoader  # noqa: E402
from engine.data.sources import load_split  # noqa: E402
from engine.models.resnets import build_model  # noqa: E402
from engine.runtime.device import resolve_placement  # noqa: E402
from engine.training.loop import train_step  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(p)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps of EACH way")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps of each way first")
    p.add_argument("--rounds", type=int, default=4, help="alternate the ways in this many blocks")
    p.add_argument(
        "--precision", default="auto", choices=PRECISIONS, help="ours only; plain is fp32"
    )
    p.add_argument("--channels-last", default="auto", choices=CHANNELS_LAST, help="ours only")
    p.add_argument(
        "--workers", default="auto", help="plain DataLoader workers (auto: 0 on CPU, 2 on CUDA)"
    )
    p.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="set torch.backends.cudnn.benchmark for the plain loop too (the engine sets it on CUDA)",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("batch_size", "steps", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_from_args(TrainConfig, args)
    config.validate()
    placement = resolve_placement(config)
    device = placement.device
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    workers = auto_workers(args.workers, device)
    data = load_split(config, train=True)
    if len(data) < args.batch_size:
        raise SystemExit(f"the training split has {len(data)} images, fewer than one batch")

    torch.manual_seed(args.seed)
    base = build_model(args.model, num_classes=len(data.classes))

    def sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )

    # OURS: the engine's loader and placement, the step of engine.training.loop.train_step.
    ours_model = copy.deepcopy(base).to(device, memory_format=placement.memory_format).train()
    ours_opt = sgd(ours_model)
    loader = BatchLoader(
        data,
        args.batch_size,
        device=device,
        normalization=config.normalization,
        augment=True,
        shuffle=True,
        seed=args.seed,
        channels_last=placement.channels_last,
        drop_last=True,
    )

    def ours_epoch(epoch: int):
        loader.set_epoch(epoch)
        return iter(loader)

    ours_batches = forever(ours_epoch)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)

    def ours_step() -> None:
        nonlocal loss_sum, correct
        images, labels = next(ours_batches)
        logits, images_loss = train_step(ours_model, ours_opt, images, labels, placement)
        loss_sum += images_loss
        correct += (logits.argmax(dim=1) == labels).sum()

    # PLAIN: the seed's loop.
    plain_model = copy.deepcopy(base).to(device).train()
    plain_opt = sgd(plain_model)
    criterion = torch.nn.CrossEntropyLoss()
    dataset = reference_dataset(data, config.normalization, augment=True)
    generator = torch.Generator().manual_seed(args.seed)

    def plain_epoch(_epoch: int):
        return iter(
            torch.utils.data.DataLoader(
                dataset,
                batch_size=args.batch_size,
                shuffle=True,
                num_workers=workers,
                drop_last=True,
                generator=generator,
            )
        )

    plain_batches = forever(plain_epoch)
    plain_losses: list[float] = []

    def plain_step() -> None:
        inputs, labels = next(plain_batches)
        inputs, labels = inputs.to(device), labels.to(device)
        outputs = plain_model(inputs)
        loss = criterion(outputs, labels)
        plain_opt.zero_grad()
        loss.backward()
        plain_opt.step()
        plain_losses.append(loss.item())

    print(f"device   : {describe_device(device)}, torch {torch.__version__}")
    print(f"data     : {data.source}")
    print(
        f"model    : {args.model}, batch {args.batch_size}, {args.steps} timed steps of each way "
        f"in {args.rounds} alternating round(s), {args.warmup} warm-up step(s) each"
    )
    if args.cudnn_benchmark:
        print("cudnn    : torch.backends.cudnn.benchmark = True (both ways)")
    for _ in range(args.warmup):
        ours_step()
        plain_step()

    ours_timer, plain_timer = Timer(device), Timer(device)
    rounds = min(args.rounds, args.steps)
    per_round = [
        args.steps // rounds + (1 if r < args.steps % rounds else 0) for r in range(rounds)
    ]
    for r, count in enumerate(per_round):
        ways = [(ours_timer, ours_step), (plain_timer, plain_step)]
        if r % 2:
            ways.reverse()
        for timer, step in ways:
            with timer:
                for _ in range(count):
                    step()

    images = args.steps * args.batch_size
    ours_ips = images / ours_timer.seconds
    plain_ips = images / plain_timer.seconds
    ratio = ours_ips / plain_ips
    ours_loss = float(loss_sum) / max((args.steps + args.warmup) * args.batch_size, 1)
    layout = "channels_last" if placement.channels_last else "contiguous"
    print()
    print(
        f"ours     : {ours_ips:9.1f} images/s  ({ours_timer.seconds:7.2f} s for {images} images; "
        f"BatchLoader on {device.type}, {placement.precision}, {layout}, mean loss {ours_loss:.3f})"
    )
    print(
        f"plain    : {plain_ips:9.1f} images/s  ({plain_timer.seconds:7.2f} s for {images} images; "
        f"DataLoader workers={workers}, fp32, contiguous, "
        f"mean loss {sum(plain_losses) / len(plain_losses):.3f})"
    )
    print(f"ratio    : ours is {ratio:.2f}x the plain loop's images/s")
    if not (math.isfinite(ours_loss) and all(map(math.isfinite, plain_losses))):
        print("WARNING  : a loss is not finite")
    print(
        f"SUMMARY train_throughput model={args.model} device={device.type} "
        f"precision={placement.precision} batch={args.batch_size} steps={args.steps} "
        f"ours_img_s={ours_ips:.1f} plain_img_s={plain_ips:.1f} ratio={ratio:.2f} "
        f"cudnn_benchmark={int(args.cudnn_benchmark)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Whole epochs through engine.training.train.train(), the path the CLI and the TUI use: images/s of the
training part of each epoch (as the engine reports it), seconds per epoch (training plus the
test pass), and the wall time of the whole call (data loading, model set-up, checkpoint write).

Everything it writes (run folder, checkpoints) goes to a temporary folder that is removed after.

    python benchmarks/train_epoch.py --model resnet20 --epochs 1
    python benchmarks/train_epoch.py --model resnet50 --epochs 1 --device cuda   # GPU check
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from common import add_common_arguments, config_from_args  # noqa: E402

from engine.config import CHANNELS_LAST, PRECISIONS, TrainConfig  # noqa: E402
from engine.events import Event, RunStarted  # noqa: E402
from engine.training.train import train  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(p)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--channels-last", default="auto", choices=CHANNELS_LAST)
    p.add_argument("--compile", action="store_true", help="torch.compile (engine option)")
    p.add_argument("--train-subset", type=int, default=0, help="first N training images (0 = all)")
    p.add_argument("--test-subset", type=int, default=0, help="first N test images (0 = all)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="train_epoch_") as tmp:
        config = config_from_args(
            TrainConfig,
            args,
            checkpoint_every=args.epochs,
            run_dir=str(Path(tmp) / "runs"),
            checkpoint_dir=str(Path(tmp) / "checkpoints"),
        )
        started: list[RunStarted] = []

        def on_event(event: Event) -> None:
            if isinstance(event, RunStarted):
                started.append(event)
                print(f"device : {event.device}, torch {torch.__version__}", flush=True)

        t0 = time.perf_counter()
        result = train(config, on_event=on_event)
        wall = time.perf_counter() - t0
    print(f"model  : {args.model}, batch {args.batch_size}, dataset {args.dataset}")
    for h in result.history:
        memory = f", GPU memory {h['gpu_memory_mb']:.0f} MiB" if h.get("gpu_memory_mb") else ""
        print(
            f"epoch {h['epoch']}: {h['images_per_s']:8.1f} images/s (training), "
            f"{h['seconds']:7.2f} s with the test pass, train loss {h['train_loss']:.3f}, "
            f"test acc {h['test_acc']:.2f}%{memory}"
        )
    print(f"wall   : {wall:.2f} s for the whole train() call (status {result.status})")
    first = result.history[0] if result.history else {}
    print(
        f"SUMMARY train_epoch model={args.model} epochs={len(result.history)} "
        f"img_s={first.get('images_per_s', float('nan')):.1f} "
        f"epoch_s={first.get('seconds', float('nan')):.2f} wall_s={wall:.2f} "
        f"test_acc={result.final_test_acc if result.final_test_acc is not None else float('nan'):.2f}"
    )
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())

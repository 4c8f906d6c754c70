"""What a user waits for: `prunelab sweep` as a whole command against the seed's loop as a whole
process, on the same image folder, the same test images, the same checkpoint and levels.

Each side is a fresh process per round, timed from launch to exit (interpreter start, imports,
reading images and checkpoint, every level, the run files): `prunelab sweep CKPT --dataset
imagefolder ... --json` against `benchmarks/seed_sweep.py` (the seed's loop: reload per level,
`prune.l1_unstructured`, a DataLoader over the ImageFolder; see that file). Rounds alternate the
order (seed-ours, ours-seed, ...); the medians give the ratio. Per level both accuracies are
compared (fp32 must agree within --tolerance points). With several --precision values ours runs in
each and is compared with the same seed timing (the seed's loop is fp32 only).

With fp32 among the precisions it also prints the arithmetic bound: the network's FLOPs times
images times levels against this CPU's best fp32 matrix-multiply rate, i.e. the fastest any dense
fp32 evaluation could be, and the sustained rate a 2x ratio would need.

--startup times `prunelab --help` and a bad option instead (each a fresh process, median of
--rounds), and --ours-only times only our command (e.g. a one-level sweep of 64 images).

Default checkpoint: a randomly initialised model saved in the seed's {'net', 'epoch'} format
(fine for timing; pass --checkpoint for accuracies that mean something).

    python benchmarks/whole_command.py --data-dir DIR --model resnet50 --test-subset 64 --precision fp32,bf16
    python benchmarks/whole_command.py --data-dir DIR --model resnet20 --test-subset 2000
    python benchmarks/whole_command.py --data-dir DIR --model resnet20 --test-subset 64 --levels 0 --ours-only
    python benchmarks/whole_command.py --startup
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED_SCRIPT = Path(__file__).resolve().parent / "seed_sweep.py"
# The targets of the issue that asked for this benchmark (2-core CPU): ratio seed/ours.
TARGETS = {("resnet50", "fp32"): 2.0, ("resnet50", "bf16"): 4.0, ("resnet20", "fp32"): 2.0}
ONE_LEVEL_TARGET_S = 2.5
# bf16 evaluation may move a level's accuracy by at most this many points from fp32, or by one
# image where that is more (with 64 images one image is already 1.6 points).
BF16_BOUND = 1.0
STARTUP_TARGET_S = 0.5


def prunelab_command() -> list[str]:
    """The installed console script, else the same entry point through this interpreter."""
    script = shutil.which("prunelab")
    if script:
        return [script]
    return [sys.executable, "-m", "tui.cli"]


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall seconds from launch to exit, and stdout; a failure prints its stderr and stops."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 2):
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}")
    return seconds, done.stdout


def kept_indices(data_dir: str, count: int, seed: int = 0) -> list[int]:
    """The test images `--test-subset count` keeps, as indices into the ImageFolder's sorted
    file list: the engine's own choice (engine.data.subsets, balanced and seeded) made from the
    folder names alone, so nothing is decoded here."""
    sys.path.insert(0, str(ROOT))
    from engine.data.folders import list_image_folder
    from engine.data.subsets import choose

    classes, samples = list_image_folder(Path(data_dir) / "test")
    labels = [label for _, label in samples]
    keep, _ = choose(labels, tuple(classes), count, seed=seed)
    return list(range(len(labels))) if keep is None else [int(i) for i in keep]


def random_checkpoint(model: str, folder: Path) -> Path:
    import torch

    sys.path.insert(0, str(ROOT))
    from engine.models.resnets import build_model

    torch.manual_seed(0)
    path = folder / f"{model}_random.pth"
    torch.save({"net": build_model(model).state_dict(), "epoch": 0}, path)
    return path


def ours_command(args, checkpoint: Path, precision: str, run_dir: Path) -> list[str]:
    command = prunelab_command() + [
        "sweep",
        str(checkpoint),
        "--model",
        args.model,
        "--dataset",
        "imagefolder",
        "--data-dir",
        args.data_dir,
        "--test-subset",
        str(args.test_subset),
        "--levels",
        args.levels,
        "--normalization",
        args.normalization,
        "--device",
        "cpu",
        "--precision",
        precision,
        "--run-dir",
        str(run_dir),
        "--json",
    ]
    return command + ["--include-classifier"] * args.include_classifier


def seed_command(args, checkpoint: Path, indices: Path) -> list[str]:
    command = [
        sys.executable,
        str(SEED_SCRIPT),
        str(checkpoint),
        "--model",
        args.model,
        "--data-dir",
        args.data_dir,
        "--indices",
        str(indices),
        "--levels",
        args.levels,
        "--normalization",
        args.normalization,
    ]
    return command + ["--include-classifier"] * args.include_classifier


def ours_accuracy(stdout: str) -> dict[float, float]:
    document = json.loads(stdout)
    return {p["level_percent"]: p["accuracy"] for p in document["points"] if p["evaluated"]}


def compare(args, folder: Path) -> int:
    checkpoint = Path(args.checkpoint) if args.checkpoint else random_checkpoint(args.model, folder)
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    indices_file = folder / "indices.json"
    indices_file.write_text(json.dumps(kept_indices(args.data_dir, args.test_subset)))
    seed_times: list[float] = []
    ours_times: dict[str, list[float]] = {p: [] for p in precisions}
    seed_acc: dict[float, float] = {}
    ours_acc: dict[str, dict[float, float]] = {}
    for round_ in range(args.rounds):
        order = ["seed", *precisions] if round_ % 2 == 0 else [*precisions, "seed"]
        for side in order:
            if side == "seed":
                if args.ours_only:
                    continue
                seconds, out = timed(seed_command(args, checkpoint, indices_file))
                result = json.loads(out)
                seed_acc = dict(zip(result["levels"], result["accuracy"], strict=True))
                seed_times.append(seconds)
            else:
                run_dir = folder / f"runs-{side}-{round_}"
                seconds, out = timed(ours_command(args, checkpoint, side, run_dir))
                ours_acc[side] = ours_accuracy(out)
                ours_times[side].append(seconds)
            print(f"round {round_ + 1} {side:>5}: {seconds:7.2f} s", flush=True)

    print(
        f"\n{args.model}, {args.test_subset} test images of {args.data_dir}, levels "
        f"{args.levels}, {args.rounds} round(s), CPU ({os.cpu_count()} cores)"
    )
    if not args.ours_only:
        header = "level   seed  " + "  ".join(f"{p:>6} diff" for p in precisions)
        print(header)
        worst: dict[str, float] = {}
        for level, accuracy in sorted(seed_acc.items()):
            cells = []
            for p in precisions:
                ours = ours_acc[p].get(level)
                diff = abs(ours - accuracy) if ours is not None else float("nan")
                worst[p] = max(worst.get(p, 0.0), diff)
                cells.append(f"{ours:6.2f} {diff:4.2f}" if ours is not None else "   -     -")
            print(f"{level:5g} {accuracy:6.2f}  " + "  ".join(cells))
    seed_median = statistics.median(seed_times) if seed_times else None
    status = 0
    if seed_median is not None:
        print(
            f"seed's loop: median {seed_median:.2f} s  ({', '.join(f'{t:.2f}' for t in seed_times)})"
        )
    for p in precisions:
        median = statistics.median(ours_times[p])
        line = f"prunelab sweep {p}: median {median:.2f} s  ({', '.join(f'{t:.2f}' for t in ours_times[p])})"
        if seed_median is not None:
            ratio = seed_median / median
            target = TARGETS.get((args.model, p))
            line += f"  ratio {ratio:.2f}x"
            if target is not None:
                line += f" (target >= {target:g}x: {'met' if ratio >= target else 'NOT met'})"
            agree = worst[p] <= args.tolerance
            if p == "fp32":
                line += f"; accuracies within {args.tolerance:g} point: {'yes' if agree else 'NO'}"
                status |= 0 if agree else 1
            else:
                line += f"; largest difference from the seed's fp32 {worst[p]:.2f} points"
                if "fp32" in ours_acc and p == "bf16":
                    gap = max(
                        abs(ours_acc[p][lv] - a)
                        for lv, a in ours_acc["fp32"].items()
                        if lv in ours_acc[p]
                    )
                    bound = max(BF16_BOUND, 100.0 / max(args.test_subset, 1))  # >= one image
                    ok = gap <= bound + 1e-9
                    line += f", from ours in fp32 {gap:.2f} (bound {bound:.2f}: "
                    line += f"{'within' if ok else 'EXCEEDED'})"
                    status |= 0 if ok else 1
        elif args.ours_only and len(parse_level_list(args.levels)) == 1:
            line += f" (one level: target < {ONE_LEVEL_TARGET_S:g} s: "
            line += f"{'met' if median < ONE_LEVEL_TARGET_S else 'NOT met'})"
        print(line)
    if seed_median is not None and "fp32" in precisions:
        print(arithmetic_bound(args, seed_median, statistics.median(ours_times["fp32"])))
    return status


def arithmetic_bound(args, seed_seconds: float, ours_seconds: float) -> str:
    """What the convolutions alone must cost: the network's FLOPs per image (torch's own
    FlopCounterMode) times images times levels, against the best fp32 matrix-multiply rate this
    CPU shows (torch.mm, best of several sizes and repeats, timed now). No dense fp32 evaluation
    can go faster, so this says how far a ratio target is reachable at all."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(ROOT))
    from engine.models.resnets import build_model

    model = build_model(args.model).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 32, 32))
    levels = len(parse_level_list(args.levels))
    total = counter.get_total_flops() * args.test_subset * levels
    rate = best_matmul_rate()
    needed = total / (seed_seconds / 2)
    return (
        f"arithmetic: {args.test_subset} images x {levels} levels x "
        f"{counter.get_total_flops() / 1e6:.1f} MFLOP = {total / 1e12:.2f} TFLOP in fp32; this "
        f"CPU's best fp32 matrix multiply runs at {rate / 1e9:.0f} GFLOP/s, so no dense fp32 "
        f"evaluation takes under {total / rate:.1f} s here. prunelab sustained "
        f"{total / ours_seconds / 1e9:.0f} GFLOP/s over its whole command; 2x the seed's "
        f"{seed_seconds:.1f} s needs {needed / 1e9:.0f} GFLOP/s sustained, start-up included "
        f"({100 * needed / rate:.0f}% of that best)."
    )


def best_matmul_rate() -> float:
    """FLOP/s of the fastest fp32 torch.mm among a few square sizes (best of 5 each)."""
    import torch

    best = 0.0
    for n in (1024, 2048, 3072):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        for _ in range(5):
            started = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - started))
    return best


def parse_level_list(text: str) -> tuple[float, ...]:
    sys.path.insert(0, str(ROOT))
    from engine.options import parse_levels

    levels = parse_levels(text)
    return tuple(sorted(set(levels) | {0.0}))


def startup(args) -> int:
    """`prunelab --help` and a bad option as fresh processes; median of --rounds each."""
    cases = {
        "prunelab --help": ["--help"],
        "prunelab sweep --help": ["sweep", "--help"],
        "bad option (sweep --bogus)": ["sweep", "x.pth", "--bogus"],
        "bad value (sweep --levels 0:200:5)": ["sweep", "x.pth", "--levels", "0:200:5"],
        "bad value (train --epochs 0)": ["train", "--epochs", "0"],
    }
    env = {**os.environ, "COLUMNS": "100"}
    for name, argv in cases.items():
        times = [timed(prunelab_command() + argv, env)[0] for _ in range(args.rounds)]
        median = statistics.median(times)
        verdict = "met" if median < STARTUP_TARGET_S else "NOT met"
        print(f"{name:40} median {median:.3f} s (target < {STARTUP_TARGET_S} s: {verdict})")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-dir",
        default=os.environ.get("PRUNELAB_REAL_DATA", "data"),
        help="image folder with test/<class>/* (default: $PRUNELAB_REAL_DATA or data)",
    )
    p.add_argument("--model", default="resnet50")
    p.add_argument("--checkpoint", default="", help="default: random init (timing only)")
    p.add_argument("--test-subset", type=int, default=64)
    p.add_argument("--levels", default="0:100:5")
    p.add_argument("--precision", default="fp32", help="ours: fp32, bf16 or fp32,bf16")
    p.add_argument("--normalization", default="cifar")
    p.add_argument("--include-classifier", action="store_true")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tolerance", type=float, default=0.1, help="fp32 accuracy agreement, points")
    p.add_argument("--ours-only", action="store_true")
    p.add_argument("--startup", action="store_true")
    args = p.parse_args(argv)
    if args.startup:
        return startup(args)
    with tempfile.TemporaryDirectory(prefix="whole_command_") as tmp:
        return compare(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())

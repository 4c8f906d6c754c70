"""A pruning sweep the seed's way against prunelab's run_sweep: same checkpoint, model, levels,
test images and device, in one run; times, the ratio and the level-by-level agreement.

SEED   For every level: torch.load the checkpoint from disk, load_state_dict, then
       torch.nn.utils.prune.l1_unstructured(module, 'weight', amount=level) on every Conv2d and
       Linear (the classifier spared unless --include-classifier, exactly as ours), evaluate with a
       DataLoader over reference_data.reference_dataset(augment=False) (ToTensor + Normalize; batch
       --seed-batch-size, default 100), fp32, contiguous, model.eval(), torch.no_grad(), the
       seed's calculate_accuracy (including its per-image confusion-matrix loop). The seed builds
       the model once and reloads it per level; as published that loop cannot run past the
       second level (load_state_dict meets weight_orig/weight_mask), so after each level this
       benchmark calls prune.remove, which is cheaper than rebuilding the model and so favours
       the seed's way.
OURS   engine.sweep.run.run_sweep (layerwise): the checkpoint read once, magnitudes ranked once,
       nested masks applied in place, the test split resident on the device in large batches,
       channels_last, inference_mode, --precision autocast; every point also written to
       sweep.jsonl as the CLI does. Timed from reading the checkpoint to the returned result. The
       model is built and loaded here (engine.checkpoints.io.read_checkpoint + load_state, what
       run_sweep does itself) and passed in, so a forward hook on its classifier can keep each level's predictions
       (an argmax per batch, left on the device) for the agreement check.

Per level it prints both accuracies, the absolute difference, the prediction agreement (% of
test images given the same class by both ways) and the seconds; then both totals and the ratio.
With --precision other than fp32 our sweep also runs in fp32, and the table shows the bf16-vs-fp32
difference per level; the fp32 run is the one compared with the seed's accuracies.

Default checkpoint (no --checkpoint): training ResNet50 on a CPU is out of reach, so the model is
randomly initialised, its BatchNorm statistics are estimated on training images, and its
classifier is fitted by ridge regression on the frozen random features (common.calibrate_and_probe).
That gives well-above-chance accuracy that pruning the convolutions destroys, so the accuracy
comparison means something; it is written in the seed's {'net', 'epoch'} format to a temporary
folder. --train-epochs N trains with engine.training.train instead (fine for resnet20 on a CPU).

--seed-levels evaluates the seed's way on a few of the levels only (e.g. 0,50,100 on a GPU) and
extrapolates its total per level. --synthetic-test-size N builds an N-image synthetic test split in
CIFAR-10's file format (the engine's synthetic test split has 2,000), read by both ways.

    python benchmarks/sweep_speed.py --model resnet20 --test-subset 200
    python benchmarks/sweep_speed.py --model resnet50 --test-subset 100 --levels 0:100:25 --precision bf16
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.utils.prune as prune  # noqa: E402
from common import (  # noqa: E402
    Timer,
    add_common_arguments,
    auto_workers,
    calibrate_and_probe,
    describe_device,
    save_seed_checkpoint,
    write_synthetic_cifar,
)
from torch import nn  # noqa: E402

from benchmarks.reference_data import reference_dataset  # noqa: E402
from engine.checkpoints.io import load_state, read_checkpoint  # noqa: E402
from engine.config import SEED_LEVELS, SweepConfig, TrainConfig  # noqa: E402
from engine.data.sources import load_split  # noqa: E402
from engine.events import Event, SweepPoint  # noqa: E402
from engine.models.resnets import build_model, classifier_name  # noqa: E402
from engine.options import parse_levels  # noqa: E402
from engine.runtime.device import resolve_placement  # noqa: E402
from engine.sweep.answer import SweepResult  # noqa: E402
from engine.sweep.run import run_sweep  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(p)
    p.add_argument(
        "--checkpoint", default="", help="default: a calibrated random model (see above)"
    )
    p.add_argument("--levels", default=SEED_LEVELS, help="percents: start:stop:step or a list")
    p.add_argument(
        "--seed-levels",
        default="",
        help="run the seed's way on these levels only and extrapolate its time (default: all)",
    )
    p.add_argument(
        "--test-subset",
        type=int,
        default=-1,
        help="first N test images (default 200 on CPU, all on CUDA; 0 = all)",
    )
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="ours")
    p.add_argument(
        "--synthetic-test-size",
        type=int,
        default=0,
        help="build an N-image synthetic test split (CIFAR-10 file format) and use it",
    )
    p.add_argument("--include-classifier", action="store_true", help="prune the classifier too")
    p.add_argument(
        "--eval-batch-size", type=int, default=0, help="ours (0 = the engine's auto default)"
    )
    p.add_argument("--seed-batch-size", type=int, default=100, help="the seed's test DataLoader")
    p.add_argument("--workers", default="auto", help="the seed's DataLoader workers")
    p.add_argument("--train-epochs", type=int, default=0, help="train the default checkpoint")
    p.add_argument("--train-subset", type=int, default=0, help="with --train-epochs")
    p.add_argument("--calibrate-images", type=int, default=256)
    p.add_argument("--probe-images", type=int, default=512)
    p.add_argument("--keep", default="", help="keep the temporary files in this folder")
    args = p.parse_args(argv)
    try:
        args.level_list = parse_levels(args.levels)
        args.seed_level_list = parse_levels(args.seed_levels) if args.seed_levels else None
    except ValueError as exc:
        p.error(str(exc))
    return args


# --------------------------------------------------------------------------------------------
# The seed's way


def seed_state_dict(payload: object) -> dict[str, torch.Tensor]:
    """state['net'] as the seed reads it; also 'state_dict' or a bare dict, `module.` stripped."""
    if isinstance(payload, dict) and isinstance(payload.get("net"), dict):
        payload = payload["net"]
    elif isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    return {k.removeprefix("module."): v for k, v in payload.items()}  # type: ignore[union-attr]


def seed_calculate_accuracy(model, dataloader, device, num_classes):
    """The seed's calculate_accuracy (run.py), returning the predictions as well."""
    model.eval()
    total_correct = 0
    total_images = 0
    confusion_matrix = np.zeros([num_classes, num_classes], int)
    predictions = []
    with torch.no_grad():
        for images, labels in dataloader:
            images = images.to(device)
            labels = labels.to(device)
            outputs = model(images)
            _, predicted = torch.max(outputs.data, 1)
            total_images += labels.size(0)
            total_correct += (predicted == labels).sum().item()
            for i, label in enumerate(labels):
                confusion_matrix[label.item(), predicted[i].item()] += 1
            predictions.append(predicted.cpu())
    return total_correct / total_images * 100, torch.cat(predictions)


def seed_level(model, path, levels_to_prune, level, loader, device, num_classes):
    """One level the seed's way: reload from disk, prune with torch's hooks, evaluate."""
    state = torch.load(path, map_location=device)
    model.load_state_dict(seed_state_dict(state))
    pruned = []
    if level > 0:
        for module in levels_to_prune:
            prune.l1_unstructured(module=module, name="weight", amount=level / 100.0)
            pruned.append(module)
    accuracy, predictions = seed_calculate_accuracy(model, loader, device, num_classes)
    for module in pruned:  # not in the seed (see the module docstring): lets the next reload work
        prune.remove(module, "weight")
    return accuracy, predictions


# --------------------------------------------------------------------------------------------
# Our way


@dataclasses.dataclass
class OursRun:
    result: SweepResult
    seconds: float
    predictions: dict[float, torch.Tensor]


def run_ours(config: SweepConfig, device: torch.device) -> OursRun:
    predictions: dict[float, torch.Tensor] = {}
    current: list[torch.Tensor] = []

    def keep(_module, _inputs, output) -> None:
        current.append(output.argmax(dim=1))

    def on_event(event: Event) -> None:
        if isinstance(event, SweepPoint):
            predictions[event.level_percent] = torch.cat(current) if current else torch.empty(0)
            current.clear()

    timer = Timer(device)
    with timer:
        checkpoint = read_checkpoint(config.checkpoint)
        model = build_model(config.model)
        load_state(model, checkpoint.state_dict, config.checkpoint)
        # The classifier, not the model: sweeps evaluate a BatchNorm-folded graph that shares
        # the model's classifier but not its top-level forward.
        model.get_submodule(classifier_name(model)).register_forward_hook(keep)
        result = run_sweep(config, on_event=on_event, model=model)
    predictions = {k: v.cpu() for k, v in predictions.items()}
    return OursRun(result, timer.seconds, predictions)


# --------------------------------------------------------------------------------------------


def make_checkpoint(args, options: SweepConfig, folder: Path) -> Path:
    """The default checkpoint, in the seed's format (see the module docstring)."""
    path = folder / f"cifar10_{args.model}_ckpt_epoch{args.train_epochs}.pth"
    placement = resolve_placement(options)
    if args.train_epochs > 0:
        from engine.training.train import train

        config = TrainConfig(
            model=args.model,
            dataset=options.dataset,
            data_dir=options.data_dir,
            skip_checksum=options.skip_checksum,
            device=options.device,
            epochs=args.train_epochs,
            train_subset=args.train_subset,
            test_subset=options.test_subset,
            run_dir=str(folder / "train_runs"),
            checkpoint_dir=str(folder / "train_checkpoints"),
        )
        result = train(config)
        print(
            f"checkpoint: trained {args.model} for {args.train_epochs} epoch(s) with engine.training.train, "
            f"test accuracy {result.final_test_acc:.2f}%"
        )
        model = build_model(args.model)
        load_state(model, read_checkpoint(result.checkpoint).state_dict, str(result.checkpoint))
        return save_seed_checkpoint(model, path, args.train_epochs)
    train_data = load_split(dataclasses.replace(options, test_subset=0), train=True)
    torch.manual_seed(0)
    model = build_model(args.model, num_classes=len(train_data.classes))
    fit = calibrate_and_probe(
        model,
        train_data,
        placement,
        options.normalization,
        args.calibrate_images,
        args.probe_images,
    )
    print(
        f"checkpoint: random {args.model}, BatchNorm calibrated on {args.calibrate_images} "
        f"training images, classifier fitted on {args.probe_images} (fit accuracy {fit:.1f}%)"
    )
    return save_seed_checkpoint(model.cpu(), path)


def warm_up(model_name, config: SweepConfig, seed_loader, device) -> None:
    """One untimed forward of each way's layout/precision/batch, so neither pays one-time
    library set-up (oneDNN primitives, cuDNN handles) inside its timing."""
    placement = resolve_placement(config)
    model = build_model(model_name).to(device).eval()
    images, _ = next(iter(seed_loader))
    with torch.no_grad():
        model(images.to(device))
    model.to(memory_format=placement.memory_format)
    test = load_split(config, train=False)
    n = min(placement.eval_batch_size(config.eval_batch_size), len(test))
    x = (test.images[:n].to(device).float() / 255).contiguous(memory_format=placement.memory_format)
    with torch.inference_mode(), placement.autocast():
        model(x)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = tempfile.TemporaryDirectory(prefix="sweep_speed_")
    folder = Path(args.keep) if args.keep else Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)

    dataset, data_dir, skip_checksum = args.dataset, args.data_dir, args.skip_checksum
    if args.synthetic_test_size > 0:
        data_dir = str(write_synthetic_cifar(folder / "data", args.synthetic_test_size))
        dataset, skip_checksum = "cifar10", True
    probe = SweepConfig(device=args.device, checkpoint="-")
    device = resolve_placement(probe).device
    subset = args.test_subset if args.test_subset >= 0 else (200 if device.type == "cpu" else 0)
    config = SweepConfig(
        model=args.model,
        dataset=dataset,
        data_dir=data_dir,
        skip_checksum=skip_checksum,
        test_subset=subset,
        device=args.device,
        precision=args.precision,
        eval_batch_size=args.eval_batch_size,
        run_dir=str(folder / "runs"),
        checkpoint="-",
        levels=args.level_list,
        include_classifier=args.include_classifier,
    )

    if args.checkpoint:
        path = Path(args.checkpoint)
        found = read_checkpoint(path)  # untimed peek: architecture and normalisation
        if found.model and found.model != config.model:
            print(f"note: {path} holds a {found.model}; using that architecture")
            config = dataclasses.replace(config, model=found.model)
        if found.normalization:
            config = dataclasses.replace(config, normalization=found.normalization)
    else:
        path = make_checkpoint(args, config, folder)
    config = dataclasses.replace(config, checkpoint=str(path))
    config.validate()
    fp32_config = dataclasses.replace(config, precision="fp32", run_dir=str(folder / "runs_fp32"))

    test = load_split(config, train=False)
    num_classes = len(test.classes)
    levels = sorted(set(config.levels) | {0.0})  # run_sweep always adds the 0% baseline
    seed_levels = sorted(set(args.seed_level_list)) if args.seed_level_list else levels
    workers = auto_workers(args.workers, device)
    seed_loader = torch.utils.data.DataLoader(
        reference_dataset(test, config.normalization, augment=False),
        batch_size=args.seed_batch_size,
        shuffle=False,
        num_workers=workers,
    )
    seed_model = build_model(config.model, num_classes=num_classes).to(device)
    classifier = classifier_name(seed_model)
    to_prune = [
        m
        for name, m in seed_model.named_modules()
        if isinstance(m, nn.Conv2d)
        or (isinstance(m, nn.Linear) and (args.include_classifier or name != classifier))
    ]

    print(f"device    : {describe_device(device)}, torch {torch.__version__}")
    print(
        f"data      : {test.source}" + (" [synthetic images]" if args.synthetic_test_size else "")
    )
    print(f"checkpoint: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    print(
        f"levels    : {len(levels)} ({', '.join(f'{v:g}' for v in levels)}); classifier "
        f"{'pruned' if args.include_classifier else 'spared'}"
    )
    print(
        f"seed's way: fp32, contiguous, DataLoader batch {args.seed_batch_size}, "
        f"workers={workers}, reload + prune.l1_unstructured per level"
        + (f", on {len(seed_levels)} level(s) only" if seed_levels != levels else "")
    )
    print(
        f"ours      : run_sweep, {config.precision}, eval batch {config.eval_batch_size}, "
        f"channels_last"
    )
    warm_up(config.model, config, seed_loader, device)

    # Timed: ours at the asked precision, the seed's way, ours in fp32 when that differs.
    ours = run_ours(config, device)
    seed_acc: dict[float, float] = {}
    seed_pred: dict[float, torch.Tensor] = {}
    seed_secs: dict[float, float] = {}
    for level in seed_levels:
        timer = Timer(device)
        with timer:
            seed_acc[level], seed_pred[level] = seed_level(
                seed_model, path, to_prune, level, seed_loader, device, num_classes
            )
        seed_secs[level] = timer.seconds
    fp32 = run_ours(fp32_config, device) if config.precision != "fp32" else ours

    ours_points = {p.level_percent: p for p in ours.result.points}
    fp32_points = {p.level_percent: p for p in fp32.result.points}
    extra = config.precision != "fp32"
    head = f"{'level':>6} {'sparsity':>8} {'seed':>7} {'ours':>7} {'|diff|':>6} {'agree%':>7}"
    if extra:
        head += f" {'ours32':>7} {'|d32|':>6} {'agr32%':>7} {'bf-32':>6}"
    head += f" {'seed s':>7} {'ours s':>7}"
    print()
    print(head)
    diffs, diffs32, agrees, agrees32, bf_diffs = [], [], [], [], []

    def against_seed(point, run, level):
        """|accuracy difference| and % of identical predictions against the seed's way."""
        agree = 100.0 * float((run.predictions[level] == seed_pred[level]).double().mean())
        return abs(point.accuracy - seed_acc[level]), agree

    for level in levels:
        point, point32 = ours_points[level], fp32_points[level]
        line = f"{level:6g} {point.sparsity_percent:8.2f}"
        if level in seed_acc:
            d, agree = against_seed(point, ours, level)
            diffs.append(d)
            agrees.append(agree)
            line += f" {seed_acc[level]:7.2f} {point.accuracy:7.2f} {d:6.2f} {agree:7.2f}"
        else:
            line += f" {'-':>7} {point.accuracy:7.2f} {'-':>6} {'-':>7}"
        if extra:
            bf = point.accuracy - point32.accuracy
            bf_diffs.append(abs(bf))
            line += f" {point32.accuracy:7.2f}"
            if level in seed_acc:
                d32, a32 = against_seed(point32, fp32, level)
                diffs32.append(d32)
                agrees32.append(a32)
                line += f" {d32:6.2f} {a32:7.2f}"
            else:
                line += f" {'-':>6} {'-':>7}"
            line += f" {bf:+6.2f}"
        seed_s = f"{seed_secs[level]:7.2f}" if level in seed_secs else f"{'-':>7}"
        line += f" {seed_s} {point.seconds:7.2f}"
        print(line)

    seed_total = sum(seed_secs.values())
    seed_estimate = seed_total / len(seed_levels) * len(levels)
    estimated = seed_levels != levels
    print()
    print(
        f"seed's way : {seed_total:8.2f} s for {len(seed_levels)} level(s)"
        + (f" -> {seed_estimate:.2f} s estimated for {len(levels)}" if estimated else "")
        + f" ({seed_estimate / len(levels):.2f} s/level)"
    )
    print(
        f"ours {config.precision:5s} : {ours.seconds:8.2f} s for {len(levels)} level(s) "
        f"({ours.seconds / len(levels):.2f} s/level, incl. reading the checkpoint and ranking)"
    )
    ratio = seed_estimate / ours.seconds
    print(f"ratio      : {ratio:.2f}x, the seed's way's time / ours ({config.precision})")
    ratio32 = ratio
    if extra:
        ratio32 = seed_estimate / fp32.seconds
        print(
            f"ours fp32  : {fp32.seconds:8.2f} s, ratio {ratio32:.2f}x (the seed's way's time / ours)"
        )
    max_diff = max(diffs) if diffs else float("nan")
    max_diff32 = max(diffs32) if extra and diffs32 else max_diff
    min_agree = min(agrees) if agrees else float("nan")
    print(
        f"accuracy   : max |ours {config.precision} - seed| = {max_diff:.2f} points, "
        f"lowest prediction agreement {min_agree:.2f}%"
    )
    if extra:
        print(
            f"             max |ours fp32 - seed| = {max_diff32:.2f} points, lowest agreement "
            f"{min(agrees32) if agrees32 else float('nan'):.2f}%; max |bf16 - fp32| = "
            f"{max(bf_diffs):.2f} points"
        )
    if config.model == "resnet50" and device.type == "cpu":
        print(
            f"targets    : issue 3, resnet50 on the 2-core CPU: fp32 >= 2x "
            f"({'met' if ratio32 >= 2 else 'NOT met'}: {ratio32:.2f}x), fp32 accuracies within "
            f"0.1 point ({'met' if max_diff32 <= 0.1 else 'NOT met'}: {max_diff32:.2f})"
            + (
                f", bf16 >= 4x ({'met' if ratio >= 4 else 'NOT met'}: {ratio:.2f}x)"
                if config.precision == "bf16"
                else ""
            )
        )
    if config.model == "resnet50" and device.type == "cuda":
        print(
            f"target     : issue 3, 21-level resnet50 sweep of 10k images on an H100 < 15 s: "
            f"{ours.seconds:.2f} s for {len(levels)} levels of {len(test)} images"
        )
    print(
        f"SUMMARY sweep_speed model={config.model} device={device.type} "
        f"precision={config.precision} images={len(test)} levels={len(levels)} "
        f"seed_levels={len(seed_levels)} seed_s={seed_estimate:.2f}{'(est)' if estimated else ''} "
        f"ours_s={ours.seconds:.2f} ratio={ratio:.2f} ours_fp32_s={fp32.seconds:.2f} "
        f"ratio_fp32={ratio32:.2f} max_acc_diff_fp32={max_diff32:.3f} "
        f"min_agreement={min_agree:.2f}"
        + (f" max_bf16_vs_fp32={max(bf_diffs):.3f}" if extra else "")
    )
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

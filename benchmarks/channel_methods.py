"""Which channel method keeps the most accuracy at equal MACs, and our slim network against
Torch-Pruning's own, side by side in one process.

Part 1 (--checkpoint, a shipped CIFAR ResNet such as the real pretrained ResNet-56/20): for each
method (structured, coupled, internal) and score (l1, group), the level whose slim network's
MACs come closest to each --macs fraction of dense (bisected on MAC counts, no data), then its
one-shot accuracy on the test images with a Wilson 95% interval; with --finetune-images N, also
after one epoch of fine-tuning on N training images (SGD, lr 0.01, momentum 0.9, masks held).

Part 2 (--tv resnet18): torchvision's network at --tv-ratio, pruned by prunelab's `coupled`
(dependency groups, l1) and by Torch-Pruning's MetaPruner (MagnitudeImportance p=1, the
classifier ignored): parameters, MACs, the largest logit difference of each slim network against
prunelab's masked network, and latency at --batch-size in alternating rounds, both networks
BatchNorm-folded and fused as a sweep times them (engine.measure.cost.timed_network).

    python benchmarks/channel_methods.py --checkpoint ../shared/pretrained/resnet56-4bfd9763.th \
        --data-dir /tmp/cifar10-jpeg --test-subset 2000
    python benchmarks/channel_methods.py --tv resnet18 --tv-ratio 0.5
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from engine.checkpoints.io import load_state, read_checkpoint  # noqa: E402
from engine.config import DataOptions  # noqa: E402
from engine.data.loader import BatchLoader  # noqa: E402
from engine.data.sources import load_split  # noqa: E402
from engine.measure.cost import count_macs, time_passes, timed_network  # noqa: E402
from engine.measure.evaluate import evaluate  # noqa: E402
from engine.measure.stats import wilson_ci95  # noqa: E402
from engine.models.resnets import build_model, count_parameters  # noqa: E402
from engine.pruning.masks import MaskSet  # noqa: E402
from engine.pruning.pruner import make_pruner  # noqa: E402
from engine.pruning.scores import make_score  # noqa: E402
from engine.pruning.slim import slim_model  # noqa: E402
from engine.runtime.device import Placement  # noqa: E402

CPU = Placement(torch.device("cpu"), "fp32", False)
COMBOS = [(m, s) for m in ("structured", "coupled", "internal") for s in ("l1", "group")]


def level_for(model, method: str, score: str, target: int) -> tuple[float, int]:
    """The level (0.5-point steps) whose slim MACs are closest to `target`, and those MACs."""
    pruner = make_pruner(model, method, score=make_score(score))
    low, high, best = 0.0, 99.0, (0.0, count_macs(model))
    while high - low > 0.5:
        mid = (low + high) / 2
        pruner.set_level(mid)
        macs = count_macs(slim_model(model))
        if abs(macs - target) < abs(best[1] - target):
            best = (mid, macs)
        low, high = (mid, high) if macs > target else (low, mid)
    pruner.release()
    return best


def accuracy(model, loader) -> str:
    result = evaluate(model, loader, CPU)
    low, high = wilson_ci95(result.correct, result.total)
    return f"{result.accuracy:5.1f}% [{low:.1f}, {high:.1f}]"


def finetuned(model, method, score, level, train_loader, test_loader) -> str:
    net = copy.deepcopy(model).train()
    masks = MaskSet.prune(net, level, method, score=make_score(score))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for images, labels in train_loader:
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        masks.apply()
    return accuracy(net.eval(), test_loader)


def resnet_part(args) -> None:
    source = read_checkpoint(args.checkpoint)
    model = build_model(source.model)
    load_state(model, source.state_dict, args.checkpoint)
    model.eval()
    options = DataOptions(
        dataset="imagefolder",
        data_dir=args.data_dir,
        normalization="imagenet",
        test_subset=args.test_subset,
        train_subset=args.finetune_images or None,
    )
    test_loader = BatchLoader(load_split(options, train=False), 250, normalization="imagenet")
    train_loader = None
    if args.finetune_images:
        train_data = load_split(options, train=True)
        train_loader = BatchLoader(train_data, 128, shuffle=True, normalization="imagenet")
    dense_macs = count_macs(model)
    print(f"{source.model}: dense {accuracy(model, test_loader)}, {dense_macs / 1e6:.1f}M MACs")
    print("| MACs target | method | score | level | MACs | one-shot | after 1 epoch |")
    print("|---|---|---|---|---|---|---|")
    for fraction in args.macs:
        for method, score in COMBOS:
            level, macs = level_for(model, method, score, int(fraction * dense_macs))
            pruner = make_pruner(model, method, score=make_score(score))
            pruner.set_level(level)
            one_shot = accuracy(model, test_loader)
            pruner.release()
            tuned = "-"
            if train_loader is not None:
                tuned = finetuned(model, method, score, level, train_loader, test_loader)
            print(
                f"| {fraction:.0%} | {method} | {score} | {level:.1f}% | {macs / 1e6:.1f}M "
                f"| {one_shot} | {tuned} |",
                flush=True,
            )


def tv_part(args) -> None:
    import torch_pruning as tp
    import torchvision

    torch.manual_seed(0)
    size = (3, args.image_size, args.image_size)
    dense = torchvision.models.get_model(args.tv, num_classes=10).eval()
    with torch.no_grad():  # BatchNorms that are not the identity
        for m in dense.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 1.5)
    masked = copy.deepcopy(dense)
    pruner = make_pruner(masked, "coupled")
    pruner.input_size = size
    pruner.set_level(100 * args.tv_ratio)
    ours = pruner.slim()
    theirs = copy.deepcopy(dense)
    example = torch.zeros(1, *size)
    tp_pruner = tp.pruner.MetaPruner(
        theirs,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=args.tv_ratio,
        ignored_layers=[theirs.fc] if hasattr(theirs, "fc") else [],
    )
    tp_pruner.step()
    # Torch-Pruning's own choice of channels, masked by prunelab: what its network must compute
    their_choice = {name: list(idxs) for name, out, idxs in tp_pruner.DG.pruning_history() if out}
    their_masked = copy.deepcopy(dense)
    make_pruner(their_masked, "coupled").set_removed(their_choice)
    x = torch.randn(4, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours_diff = float((ours.eval()(x) - masked(x)).abs().max())
        theirs_diff = float((theirs.eval()(x) - their_masked(x)).abs().max())
        same = float((theirs(x) - masked(x)).abs().max())
    print(f"{args.tv} at {args.tv_ratio:.0%}, {size[1]}x{size[2]} images (random weights)")
    print(f"Torch-Pruning's network against prunelab's masked one: max logit diff {same:.1e}")
    print("| network | parameters | MACs | max logit diff vs its masked network |")
    print("|---|---|---|---|")
    for name, net, diff in (
        ("dense", dense, 0.0),
        ("prunelab coupled slim", ours, ours_diff),
        ("Torch-Pruning MetaPruner", theirs, theirs_diff),
    ):
        print(
            f"| {name} | {count_parameters(net):,} | {count_macs(net, size) / 1e6:.1f}M | {diff:.1e} |"
        )
    a, b = timed_network(ours, CPU), timed_network(theirs, CPU)
    ours_ms, theirs_ms = _alternate(a, b, args, size)
    ratio = statistics.median(theirs_ms) / statistics.median(ours_ms)
    print(
        f"latency at batch {args.batch_size} (median ms): prunelab {statistics.median(ours_ms):.1f}, "
        f"Torch-Pruning {statistics.median(theirs_ms):.1f}; Torch-Pruning / prunelab = {ratio:.2f}x"
    )


def _alternate(first, second, args, size) -> tuple[list[float], list[float]]:
    """Timed passes of two networks in alternating rounds, at `size` images."""
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(args.rounds):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            net = (first, second)[i]
            times[i].extend(
                time_passes(net, CPU, args.batch_size, warmup=1, repeats=5, input_size=size)
            )
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", help="a shipped CIFAR ResNet's weights (part 1)")
    p.add_argument("--data-dir", default="/tmp/cifar10-jpeg")
    p.add_argument("--test-subset", type=int, default=2000)
    p.add_argument("--macs", type=float, nargs="+", default=[0.7, 0.5], help="fractions of dense")
    p.add_argument("--finetune-images", type=int, default=0, help="one epoch on N train images")
    p.add_argument("--tv", help="a torchvision classifier (part 2)")
    p.add_argument("--tv-ratio", type=float, default=0.5)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steadier on a shared CPU)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        resnet_part(args)
    if args.tv:
        tv_part(args)


if __name__ == "__main__":
    main()

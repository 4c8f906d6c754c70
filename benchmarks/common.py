"""Helpers shared by the benchmark scripts (not part of the engine, not imported by it).

Every script in this folder does `sys.path.insert(0, <repo root>)` before importing this module
or `engine`, so `python benchmarks/<script>.py` works from a checkout without `pip install -e .`.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.checkpoints.io import write_checkpoint
from engine.config import DATASETS, MODEL_NAMES, DataOptions
from engine.data.imageset import CIFAR10_CLASSES, ImageSet
from engine.data.loader import BatchLoader
from engine.data.readers import CIFAR_FOLDER
from engine.data.sources import load_split
from engine.models.resnets import BasicBlock, Bottleneck, classifier_name
from engine.runtime.device import Placement, synchronize


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """The options every benchmark shares: what model, on what data, where."""
    p.add_argument("--model", default="resnet50", choices=MODEL_NAMES)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dataset", default="synthetic", choices=DATASETS)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--skip-checksum", action="store_true")


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """A config dataclass from the parsed options that share its field names."""
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names}
    return cls(**{**given, **overrides})


def auto_workers(text: str, device: torch.device) -> int:
    """DataLoader workers for the plain/seed loops: 'auto' = 0 on CPU (forked workers only
    compete with the model for a few cores; the seed's run.py uses 0) and 2 on CUDA
    (kuangliu/pytorch-cifar's setting, kinder to the baseline than 0)."""
    if text == "auto":
        return 0 if device.type == "cpu" else 2
    return int(text)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    return f"cpu ({torch.get_num_threads()} torch threads)"


class Timer:
    """Wall-clock seconds of a block, synchronising the device on entry and exit."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds += time.perf_counter() - self._start


def forever(make_epoch: Callable[[int], Iterator]) -> Iterator:
    """Chain epochs 0, 1, 2, ... of an iterable factory into one endless stream of batches."""
    epoch = 0
    while True:
        yield from make_epoch(epoch)
        epoch += 1


# --------------------------------------------------------------------------------------------
# A larger synthetic test split, in CIFAR-10's on-disk format


def write_synthetic_cifar(root: Path, test_images: int) -> Path:
    """Write root/cifar-10-batches-py/ whose test_batch holds `test_images` synthetic images.

    The engine's synthetic test split has only 2,000 images; timing a 10,000-image sweep needs
    more. The images are the engine's synthetic test split followed by its train split (tiled if
    more are asked for), so they come from the same class templates. The five train batches hold
    the synthetic train split. Read with dataset cifar10 and skip_checksum=True; both the seed's
    way and ours then go through the engine's real CIFAR-10 reader. The data is still synthetic.
    """
    options = DataOptions(dataset="synthetic")
    train = load_split(options, train=True)
    test = load_split(options, train=False)
    pool_images = torch.cat([test.images, train.images])
    pool_labels = torch.cat([test.labels, train.labels])
    index = torch.arange(test_images) % len(pool_labels)
    folder = Path(root) / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, images: torch.Tensor, labels: torch.Tensor) -> None:
        batch = {
            "batch_label": name,
            "labels": [int(v) for v in labels],
            "data": np.ascontiguousarray(images.reshape(len(labels), -1).numpy()),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)

    dump("test_batch", pool_images[index], pool_labels[index])
    parts = torch.arange(len(train)).chunk(5)
    for k, part in enumerate(parts, start=1):
        dump(f"data_batch_{k}", train.images[part], train.labels[part])
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES)}, f, protocol=2)
    return Path(root)


# --------------------------------------------------------------------------------------------
# A checkpoint with something to lose, without training ResNet50 on a CPU


def save_seed_checkpoint(model: nn.Module, path: Path, epoch: int = 0) -> Path:
    """The seed's checkpoint format: exactly {'net': state_dict, 'epoch': E}."""
    net = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_checkpoint(path, {"net": net, "epoch": epoch})
    return path


@torch.no_grad()
def calibrate_and_probe(
    model: nn.Module,
    train: ImageSet,
    placement: Placement,
    normalization: str,
    calibrate_images: int,
    probe_images: int,
    batch_size: int = 128,
    residual_scale: float = 0.3,
) -> float:
    """Make a randomly initialised model a usable classifier, cheaply.

    0. The last BatchNorm weight of every residual branch is multiplied by `residual_scale`. A deep
       random ResNet at init is chaotic: its features hang on input details so tiny that bf16
       rounding flips a quarter of a linear probe's predictions (measured on ResNet50); damped
       branches keep it smooth, like the zero-init-residual trick of trained ResNets.
    1. BatchNorm statistics: reset, then a plain average (momentum None) of the batch statistics
       of `calibrate_images` training images in train mode, without gradient steps.
    2. A linear probe: the classifier is replaced by a ridge regression (closed form, float64)
       from the frozen random features (the classifier's input) to one-hot labels, fitted on
       `probe_images` training images.

    Returns the probe's accuracy (%) on the images it was fitted on. Pruning the convolutions
    then changes the features and costs accuracy, so per-level accuracies mean something.
    """
    device = placement.device
    model.to(device)
    loader = BatchLoader(
        train,
        batch_size,
        device=device,
        normalization=normalization,
        shuffle=True,
        seed=0,
        channels_last=placement.channels_last,
    )
    model.to(memory_format=placement.memory_format)
    for block in model.modules():
        if isinstance(block, (BasicBlock, Bottleneck)):
            last = block.bn3 if isinstance(block, Bottleneck) else block.bn2
            last.weight.mul_(residual_scale)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    seen = 0
    for images, _ in loader:
        if seen >= calibrate_images:
            break
        model(images)
        seen += len(images)
    for m in norms:
        m.momentum = 0.1
    model.eval()

    head = model.get_submodule(classifier_name(model))
    features: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda _m, inputs, _o: features.append(inputs[0].float()))
    labels: list[torch.Tensor] = []
    seen = 0
    try:
        loader.set_epoch(1)
        for images, batch_labels in loader:
            if seen >= probe_images:
                break
            model(images)
            labels.append(batch_labels)
            seen += len(images)
    finally:
        handle.remove()
    x = torch.cat(features).double()
    y = torch.nn.functional.one_hot(torch.cat(labels), head.out_features).double()
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    n, d = xc.shape
    lam = 1e-2 * float((xc * xc).sum()) / max(d, 1) + 1e-8
    if n < d:  # dual form: an n x n system
        w = xc.T @ torch.linalg.solve(
            xc @ xc.T + lam * torch.eye(n, dtype=x.dtype, device=device), yc
        )
    else:
        gram = xc.T @ xc + lam * torch.eye(d, dtype=x.dtype, device=device)
        w = torch.linalg.solve(gram, xc.T @ yc)
    b = y_mean - x_mean @ w
    scale = 10.0  # sharper logits; the argmax is unchanged
    head.weight.copy_((w.T * scale).to(head.weight.dtype))
    head.bias.copy_((b * scale).to(head.bias.dtype))
    predicted = (x @ w + b).argmax(1)
    return 100.0 * float((predicted == y.argmax(1)).double().mean())

"""Data sources: CIFAR-10 read from its on-disk format, image folders, a synthetic stand-in.

Every split is loaded whole into an `ImageSet` (uint8 images on the CPU); `load_split` picks the
source and applies the configured subset. The on-disk formats are read in engine.readers; the
device-side batching and augmentation is engine.loader.BatchLoader.
"""

from __future__ import annotations

import math

import torch

from engine.config import DataOptions
from engine.errors import ConfigError
from engine.imageset import CIFAR10_CLASSES, ImageSet
from engine.readers import load_cifar10, load_imagefolder

# --------------------------------------------------------------------------------------------
# Entry point


def load_split(options: DataOptions, train: bool) -> ImageSet:
    """The train or test split named by `options.dataset`, with the configured subset applied."""
    if options.dataset == "cifar10":
        data = load_cifar10(options, train)
    elif options.dataset == "imagefolder":
        data = load_imagefolder(options.data_dir, train)
    elif options.dataset == "synthetic":
        data = _synthetic(train)
    else:
        raise ConfigError(
            "dataset", f"{options.dataset!r} is not one of cifar10, imagefolder, synthetic"
        )
    count = options.train_subset if train else options.test_subset
    return take_subset(data, count, per_class=options.subset_per_class)


def take_subset(data: ImageSet, count: int, *, per_class: bool = False) -> ImageSet:
    """The first `count` images, or the first `count` of each class (file order kept).

    `count` 0 (or a subset at least as large as the split) keeps everything.
    """
    total = len(data)
    if count <= 0:
        return data
    if per_class:
        keep = torch.zeros(total, dtype=torch.bool)
        for c in torch.unique(data.labels).tolist():
            where = torch.nonzero(data.labels == c).flatten()
            keep[where[:count]] = True
        if bool(keep.all()):
            return data
        index = torch.nonzero(keep).flatten()
        how = f"{count} per class"
    else:
        if count >= total:
            return data
        index = torch.arange(count)
        how = f"first {count}"
    return ImageSet(
        images=data.images[index].contiguous(),
        labels=data.labels[index].clone(),
        classes=data.classes,
        source=_with_count(data.source, f"{len(index)} of {total} images ({how})"),
        synthetic=data.synthetic,
    )


def _with_count(source: str, text: str) -> str:
    head, sep, tail = source.rpartition(", ")
    if sep and tail.endswith(" images"):
        return f"{head}, {text}"
    return f"{source}, {text}"


# --------------------------------------------------------------------------------------------
# Synthetic stand-in: learnable, deterministic, clearly flagged

SYNTHETIC_TRAIN = 10_000
SYNTHETIC_TEST = 2_000
_SYNTHETIC_CACHE: dict[bool, ImageSet] = {}


def _synthetic_templates() -> torch.Tensor:
    """One float (3, 32, 32) template per class: a distinct colour plus a distinct stripe pattern."""
    g = torch.Generator().manual_seed(12345)
    colours = torch.rand(10, 3, 1, 1, generator=g) * 140 + 50
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    patterns = []
    for c in range(10):
        angle = math.pi * c / 10
        freq = 2 * math.pi * (2 + c % 3) / 32
        wave = torch.sin(freq * (x * math.cos(angle) + y * math.sin(angle)))
        patterns.append(wave)
    pattern = torch.stack(patterns).unsqueeze(1)  # (10, 1, 32, 32)
    tint = torch.rand(10, 3, 1, 1, generator=g) * 2 - 1
    return colours + 45 * pattern * tint.sign()


def _synthetic(train: bool) -> ImageSet:
    cached = _SYNTHETIC_CACHE.get(train)
    if cached is None:
        count = SYNTHETIC_TRAIN if train else SYNTHETIC_TEST
        templates = _synthetic_templates()
        g = torch.Generator().manual_seed(1 if train else 2)
        labels = torch.arange(count) % 10
        labels = labels[torch.randperm(count, generator=g)]
        images = torch.empty(count, 3, 32, 32, dtype=torch.uint8)
        for start in range(0, count, 2000):
            part = labels[start : start + 2000]
            noise = torch.randn(len(part), 3, 32, 32, generator=g) * 40
            images[start : start + 2000] = (
                (templates[part] + noise).round_().clamp_(0, 255).to(torch.uint8)
            )
        split = "train" if train else "test"
        cached = ImageSet(
            images=images,
            labels=labels,
            classes=CIFAR10_CLASSES,
            source=f"SYNTHETIC stand-in for CIFAR-10 (not real data), {split} split, {count} images",
            synthetic=True,
        )
        _SYNTHETIC_CACHE[train] = cached
    return ImageSet(
        images=cached.images.clone(),
        labels=cached.labels.clone(),
        classes=cached.classes,
        source=cached.source,
        synthetic=True,
    )

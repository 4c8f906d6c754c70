"""Data sources: CIFAR-10 read from its on-disk format, image folders, a synthetic stand-in.

Every split is loaded into an `ImageSet` (uint8 images on the CPU); `load_split` picks the
source and the configured subset (chosen from the labels before images are decoded). The on-disk formats are read in engine.data.readers; the
device-side batching and augmentation is engine.data.loader.BatchLoader.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.data import memory
from engine.data.imageset import CIFAR10_CLASSES, ImageSet
from engine.data.memory import MEMORY
from engine.data.options import DATASETS, DataOptions
from engine.data.readers import Pick, load_cifar10, load_imagefolder
from engine.data.subsets import Selection, choose
from engine.errors import ConfigError

# --------------------------------------------------------------------------------------------
# Entry point


def load_split(options: DataOptions, train: bool) -> ImageSet:
    """The train or test split named by `options.dataset`, with the configured subset chosen
    (engine.data.subsets: balanced, seeded; an image folder decodes only the chosen files)."""
    count = options.train_subset if train else options.test_subset

    def pick(labels: np.ndarray, classes: tuple[str, ...]) -> tuple[np.ndarray | None, Selection]:
        return choose(labels, classes, count, per_class=options.subset_per_class, seed=options.seed)

    if options.dataset == "cifar10":
        data = take_subset(load_cifar10(options, train), pick)
    elif options.dataset == "imagefolder":
        data = load_imagefolder(options.data_dir, train, pick, options.image_size or 32)
    elif options.dataset == "synthetic":
        data = take_subset(_synthetic(train), pick)
    elif options.dataset == MEMORY:
        data = take_subset(memory.split(options.data_dir, train), pick)
    else:
        raise ConfigError("dataset", f"{options.dataset!r} is not one of {', '.join(DATASETS)}")
    if len(data) == 0:
        split = "train" if train else "test"
        raise ConfigError("data_dir", f"the {split} split of {data.source} holds 0 images")
    return data


def take_subset(data: ImageSet, pick: Pick) -> ImageSet:
    """The images `pick` chooses from the labels (all of them when it returns None)."""
    keep, selection = pick(data.labels.numpy(), data.classes)
    if keep is None:
        data.selection = selection
        return data
    index = torch.from_numpy(keep)
    return ImageSet(
        images=data.images[index].contiguous(),
        labels=data.labels[index].clone(),
        classes=data.classes,
        source=_with_count(data.source, selection.describe()),
        synthetic=data.synthetic,
        selection=selection,
        crop=data.crop,
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

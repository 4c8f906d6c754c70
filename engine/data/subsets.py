"""Subsets are chosen, never truncated: class-balanced, seeded, decided from the labels alone.

Datasets on disk are often sorted by class (the first 1000 files of CIFAR-10's image-folder test
split are all airplanes), so "the first N" measures one class. A subset here takes N images as
evenly as the classes allow (N // C each, the remainder to classes drawn with the seed; a class
with too few images gives its share to the others), or N per class with `per_class`, each
class's images drawn by a seeded permutation. The choice depends only on (labels, N, seed):
the same command picks the same images on every machine. Indices are chosen before any image
is decoded, so an image folder decodes only what is kept.

`Selection` is what the run records: per-class counts and a hash of the chosen indices, so two
runs can be checked to have measured the same images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Selection:
    """Which images of a split were kept."""

    total: int  # images in the split
    kept: int
    per_class: dict[str, int]  # class name -> images kept
    index_hash: str  # sha256 of the sorted int64 indices, 16 hex digits
    rule: str  # e.g. "balanced 1000, seed 0" or "100 per class, seed 0" or "all"

    def describe(self) -> str:
        if self.rule == "all":
            return f"{self.kept} images"
        return f"{self.kept} of {self.total} images ({self.rule}, indices {self.index_hash})"

    def to_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "kept": self.kept,
            "per_class": dict(self.per_class),
            "index_hash": self.index_hash,
            "rule": self.rule,
        }


def index_hash(indices: np.ndarray) -> str:
    data = np.ascontiguousarray(np.sort(indices).astype("<i8")).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def _class_rng(seed: int, label: int) -> np.random.Generator:
    """One stream per (seed, class): a class's picks do not depend on the other classes."""
    return np.random.default_rng([int(seed), int(label)])


def balanced_quotas(sizes: Sequence[int], count: int, seed: int) -> list[int]:
    """How many images each class gives to a subset of `count`: as even as the sizes allow.

    Every class gets `count // C`, capped at its size; what is left (the remainder, and the
    shares of classes too small) goes one image at a time to the classes with room, in an order
    drawn with the seed, so no class is favoured by its position."""
    quotas = [0] * len(sizes)
    left = min(count, sum(sizes))
    order = list(np.random.default_rng([int(seed), len(sizes)]).permutation(len(sizes)))
    while left > 0:
        open_classes = [c for c in order if quotas[c] < sizes[c]]
        share = left // len(open_classes)
        if share == 0:
            for c in open_classes[:left]:
                quotas[c] += 1
            break
        for c in open_classes:
            add = min(share, sizes[c] - quotas[c])
            quotas[c] += add
            left -= add
    return quotas


def choose(
    labels: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    count: int,
    *,
    per_class: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray | None, Selection]:
    """(sorted indices to keep, or None for all; the Selection to record)."""
    labels = np.asarray(labels, dtype=np.int64)
    total = len(labels)
    names = list(classes)
    members = [np.flatnonzero(labels == c) for c in range(len(names))]
    sizes = [len(m) for m in members]
    if per_class:
        quotas = [min(count, s) for s in sizes]
        rule = f"{count} per class, seed {seed}"
    else:
        quotas = balanced_quotas(sizes, count, seed)
        rule = f"balanced {count}, seed {seed}"
    if count == 0 or sum(quotas) >= total:
        everything = np.arange(total, dtype=np.int64)
        counts = {n: s for n, s in zip(names, sizes, strict=True)}
        return None, Selection(total, total, counts, index_hash(everything), "all")
    picked = [
        np.sort(_class_rng(seed, c).permutation(m)[:q]) if q else m[:0]
        for c, (m, q) in enumerate(zip(members, quotas, strict=True))
    ]
    indices = np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)
    counts = {n: int(q) for n, q in zip(names, quotas, strict=True)}
    return indices, Selection(total, len(indices), counts, index_hash(indices), rule)

"""Subsets are chosen from the labels: balanced, seeded, stable, recorded."""

from __future__ import annotations

import numpy as np

from engine.data.subsets import balanced_quotas, choose, index_hash

CLASSES = tuple("abcdefghij")
SORTED = np.repeat(np.arange(10), 1000)  # a class-sorted split, like an image folder


def test_balanced_subset_of_a_class_sorted_split() -> None:
    indices, selection = choose(SORTED, CLASSES, 1000, seed=0)
    assert indices is not None and len(indices) == 1000
    assert np.bincount(SORTED[indices], minlength=10).tolist() == [100] * 10
    assert selection.per_class == dict.fromkeys(CLASSES, 100)
    assert (selection.total, selection.kept, selection.rule) == (
        10_000,
        1000,
        "balanced 1000, seed 0",
    )
    assert selection.index_hash == index_hash(indices)
    assert np.all(np.diff(indices) > 0)  # file order kept


def test_same_seed_same_images_other_seed_other_images() -> None:
    a, sa = choose(SORTED, CLASSES, 500, seed=3)
    b, sb = choose(SORTED, CLASSES, 500, seed=3)
    c, sc = choose(SORTED, CLASSES, 500, seed=4)
    assert np.array_equal(a, b) and sa == sb
    assert not np.array_equal(a, c) and sa.index_hash != sc.index_hash
    assert a.tolist()[:3] != [0, 1, 2]  # not the first files of the class


def test_remainder_and_small_classes_are_spread() -> None:
    assert sum(balanced_quotas([1000] * 10, 1005, 0)) == 1005
    assert sorted(balanced_quotas([1000] * 10, 1005, 0)) == [100] * 5 + [101] * 5
    small_first = balanced_quotas([3, 50, 50], 60, 0)
    assert small_first[0] == 3 and sorted(small_first[1:]) == [28, 29]
    assert sum(balanced_quotas([2, 2], 10, 0)) == 4


def test_per_class_keeps_its_meaning() -> None:
    labels = np.array([0] * 5 + [1] * 2 + [2] * 9)
    indices, selection = choose(labels, ("x", "y", "z"), 3, per_class=True, seed=1)
    assert np.bincount(labels[indices]).tolist() == [3, 2, 3]
    assert selection.rule == "3 per class, seed 1"


def test_zero_or_too_large_keeps_everything() -> None:
    for count in (0, 10_000, 20_000):
        indices, selection = choose(SORTED, CLASSES, count, seed=0)
        assert indices is None and selection.kept == 10_000 and selection.rule == "all"
    assert selection.describe() == "10000 images"

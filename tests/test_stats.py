"""Intervals and the best-level rule, against known values and hand-made sweeps."""

from __future__ import annotations

import numpy as np
import pytest

from engine.measure.stats import (
    best_level_answer,
    best_level_ci95,
    isotonic_non_increasing,
    pack_bits,
    paired_delta_ci95,
    too_small_note,
    unpack_bits,
    wilson_ci95,
)


def test_wilson_matches_the_textbook_values() -> None:
    # Newcombe (1998), table I: 81/263 -> 0.2553 to 0.3662; 0/10 -> 0 to 0.2775.
    low, high = wilson_ci95(81, 263)
    assert (round(low / 100, 4), round(high / 100, 4)) == (0.2553, 0.3662)
    low, high = wilson_ci95(0, 10)
    assert low == 0.0 and round(high / 100, 4) == 0.2775
    assert wilson_ci95(5, 0) is None


def test_paired_delta_is_zero_width_without_discordant_images_and_covers_the_change() -> None:
    dense = np.array([True] * 90 + [False] * 10)
    assert paired_delta_ci95(dense, dense.copy()) == (0.0, 0.0)
    pruned = dense.copy()
    pruned[:20] = False  # lost 20 images: -20 points
    low, high = paired_delta_ci95(dense, pruned)
    assert low < -20 < high < 0


def test_isotonic_pools_violators() -> None:
    assert isotonic_non_increasing([90, 87, 90, 70]) == [90, 88.5, 88.5, 70]
    assert isotonic_non_increasing([1, 2, 3]) == [2, 2, 2]
    assert isotonic_non_increasing([]) == []


def test_one_noisy_dip_does_not_end_the_search() -> None:
    # 10% dipped 2.7 points, 20% and 30% were at the dense accuracy: pooled, 10-30% lose 0.9.
    answer = best_level_answer([90.0, 87.3, 90.2, 89.9, 80.0], 90.0, 1.0)
    assert answer.best_index == 3
    assert answer.passed_over == [False, True, False, False, False]
    # Pooled, a dip this deep keeps the block outside: the rule says so and marks 20% and 30%.
    deep = best_level_answer([90.0, 86.0, 89.6, 89.4, 80.0], 90.0, 1.0)
    assert deep.best_index == 0 and deep.passed_over == [False, False, True, True, False]


def test_one_lucky_point_past_a_drop_does_not_lift_the_answer() -> None:
    answer = best_level_answer([90.0, 89.5, 86.0, 89.2, 70.0], 90.0, 1.0)
    assert answer.best_index == 1
    assert answer.passed_over == [False, False, False, True, False]


def test_best_level_interval_from_resampled_images() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    dense = rng.random(n) < 0.9
    rows = [dense]
    for drop in (0.0, 0.005, 0.02, 0.1):  # each level loses a growing share of right answers
        rows.append(rows[0] & (rng.random(n) > drop))
    correct = np.stack(rows)
    levels = [0.0, 10.0, 20.0, 30.0, 40.0]
    low, high = best_level_ci95(levels, correct, tolerance=1.0, replicates=300)
    answer = best_level_answer(list(100 * correct.mean(1)), 100 * correct[0].mean(), 1.0)
    assert low <= levels[answer.best_index] <= high
    assert low in levels and high in levels and high <= 30.0
    assert best_level_ci95(levels, correct, 1.0, replicates=300) == (low, high)  # seeded


def test_bits_round_trip_and_size() -> None:
    correct = np.random.default_rng(1).random(10_000) < 0.5
    text = pack_bits(correct)
    assert len(text) == 1668  # 1250 bytes in base64
    assert np.array_equal(unpack_bits(text, 10_000), correct)


@pytest.mark.parametrize(("total", "said"), [(100, True), (100_000, False)])
def test_too_small_is_said_in_words(total: int, said: bool) -> None:
    note = too_small_note(wilson_ci95(int(0.9 * total), total), 1.0, total)
    assert bool(note) == said
    if said:
        assert note.startswith("100 test images measure accuracy only to about +-")

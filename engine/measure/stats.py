"""How sure a sweep's numbers are: intervals, the best-level rule, and its bootstrap.

- Accuracy over n images: Wilson 95% score interval (sound at 0% and 100%, unlike p +- 1.96 se).
- Change against the dense model: paired, on the same images. Only the discordant images (right
  before and wrong after, or the reverse) carry information; a paired bootstrap resamples the
  images (a multinomial over the four right/wrong cells) with a fixed seed.
- The best level: a non-increasing isotonic fit (pool adjacent violators) of accuracy against
  level, then the highest level whose fitted accuracy stays within the tolerance of the dense
  accuracy. One noisy dip is pooled with its neighbours instead of ending the search; one lucky
  point past a real drop is pooled down instead of lifting the answer.
- The best level's interval: resample the test images, recompute every level's accuracy from the
  stored per-image correctness, recompute the answer; the 2.5th and 97.5th percentiles.

Seeds are fixed, so the same run folder always gives the same intervals.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BEST_LEVEL_RULE = (
    "Best level: the highest level whose accuracy, smoothed by a non-increasing (isotonic) fit "
    "across levels, stays within the tolerance of the dense model, so one noisy level neither "
    "ends the search nor lifts the answer."
)
PASSED_OVER_MARK = "~"  # beside a level whose own accuracy the rule overruled
Z95 = 1.959963984540054
BOOTSTRAP_REPLICATES = 1000
BOOTSTRAP_SEED = 20240229


def wilson_ci95(correct: int, total: int) -> tuple[float, float] | None:
    """Wilson score interval of correct/total, in percent; None for an empty test set."""
    if total <= 0:
        return None
    p = correct / total
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = Z95 * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    low = 0.0 if correct == 0 else 100.0 * max(0.0, centre - half)
    high = 100.0 if correct == total else 100.0 * min(1.0, centre + half)
    return (low, high)  # the bounds at 0 and n are exact (rounding must not exclude p itself)


def paired_delta_ci95(
    dense: np.ndarray, pruned: np.ndarray, replicates: int = 2000
) -> tuple[float, float] | None:
    """95% interval of (pruned - dense) accuracy in points, paired over the same images."""
    total = len(dense)
    if total == 0 or len(pruned) != total:
        return None
    lost = int(np.count_nonzero(dense & ~pruned))
    gained = int(np.count_nonzero(~dense & pruned))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    cells = rng.multinomial(
        total, [lost / total, gained / total, 1 - (lost + gained) / total], replicates
    )
    deltas = 100.0 * (cells[:, 1] - cells[:, 0]) / total
    low, high = np.percentile(deltas, [2.5, 97.5])
    return (float(low), float(high))


def isotonic_non_increasing(values: Sequence[float]) -> list[float]:
    """The closest (least squares) non-increasing sequence: pool adjacent violators."""
    blocks: list[list[float]] = []  # [sum, count]
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    fitted: list[float] = []
    for s, c in blocks:
        fitted += [s / c] * int(c)
    return fitted


@dataclass
class Answer:
    """The rule applied to one sweep."""

    best_index: int | None  # into the level-sorted points; None without a dense level
    fitted: list[float]  # the isotonic fit, one per point
    passed_over: list[bool]  # the point's own accuracy says the opposite of the rule


def best_level_answer(
    accuracies: Sequence[float], baseline: float | None, tolerance: float
) -> Answer:
    """`accuracies` sorted by level, the first the dense model's (level 0)."""
    if baseline is None or not accuracies:
        return Answer(None, list(accuracies), [False] * len(accuracies))
    fitted = isotonic_non_increasing(accuracies)
    floor = baseline - tolerance - 1e-9
    inside = [f >= floor for f in fitted]
    best = max((i for i, ok in enumerate(inside) if ok), default=None)
    passed = [(a >= floor) != ok for a, ok in zip(accuracies, inside, strict=True)]
    return Answer(best, fitted, passed)


def best_level_ci95(
    levels: Sequence[float],
    correct: np.ndarray,
    tolerance: float,
    replicates: int = BOOTSTRAP_REPLICATES,
) -> tuple[float, float] | None:
    """Bootstrap over test images of the best level. `correct`: bool (levels, images), row 0 the
    dense model's, rows sorted by level."""
    if correct.ndim != 2 or correct.shape[0] == 0 or correct.shape[1] == 0:
        return None
    n = correct.shape[1]
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    matrix = np.ascontiguousarray(correct.T, dtype=np.float32)  # (images, levels)
    best: list[float] = []
    chunk = max(1, min(replicates, 5_000_000 // n))
    done = 0
    while done < replicates:
        size = min(chunk, replicates - done)
        draws = rng.integers(0, n, (size, n), dtype=np.int32)
        draws += (np.arange(size, dtype=np.int32) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n)
        weights = weights.astype(np.float32)  # how often each image is drawn, per replicate
        accuracies = 100.0 * (weights @ matrix) / n  # (size, levels); this order is BLAS-fast
        for r in range(size):
            column = accuracies[r].tolist()
            answer = best_level_answer(column, column[0], tolerance)
            best.append(levels[answer.best_index] if answer.best_index is not None else 0.0)
        done += size
    low, high = np.percentile(np.asarray(best), [2.5, 97.5], method="inverted_cdf")
    return (float(low), float(high))


def too_small_note(baseline_ci: tuple[float, float] | None, tolerance: float, total: int) -> str:
    """Words for a test set too small for the tolerance; '' when it is large enough."""
    if baseline_ci is None:
        return ""
    half = (baseline_ci[1] - baseline_ci[0]) / 2
    if half <= tolerance:
        return ""
    return (
        f"{total} test images measure accuracy only to about +-{half:.1f} points (95%), wider "
        f"than the {tolerance:g}-point tolerance: the best level is not reliable; use more test "
        "images or a larger --tolerance"
    )


# --- per-image correctness, packed -------------------------------------------------------------


def pack_bits(correct: np.ndarray) -> str:
    """Bool per image -> base64 of np.packbits (10,000 images: 1.25 KB before base64)."""
    return base64.b64encode(np.packbits(correct.astype(bool)).tobytes()).decode("ascii")


def unpack_bits(text: str, count: int) -> np.ndarray:
    packed = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    return np.unpackbits(packed, count=count).astype(bool)

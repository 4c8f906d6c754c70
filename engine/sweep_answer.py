"""A sweep's answer: the points it measured and the best level within the tolerance.

Pure functions of the points (no model, no files): which level is the answer, the bracket the
bisection refines, the answer in words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.config import SweepConfig
from engine.pruning import METHOD_CAVEATS


@dataclass
class PointResult:
    """One pruning level. Sparsities are measured zeros, not the requested level."""

    level_percent: float
    sparsity_percent: float  # zeros among the prunable weights
    total_sparsity_percent: float  # zeros among all parameters
    nonzero_parameters: int
    accuracy: float | None  # top-1 %, None when not evaluated
    loss: float | None
    accuracy_bn_recalibrated: float | None
    dense_bytes: int  # every tensor stored densely
    sparse_bytes: int  # pruned tensors as bitmask + kept values (before compression)
    seconds: float
    evaluated: bool = True
    refined: bool = False
    confusion: list[list[int]] | None = None
    per_layer: dict[str, float] = field(default_factory=dict)


@dataclass
class SweepResult:
    status: str
    run_dir: str
    model: str
    method: str
    points: list[PointResult]
    baseline_accuracy: float | None
    tolerance: float
    best_level_percent: float | None
    best_accuracy: float | None
    synthetic: bool = False
    reason: str = ""

    def sentence(self) -> str:
        """The answer in words, e.g. "62% of weights removed within 1.0 point of 93.1%"."""
        if self.baseline_accuracy is None:
            return "no baseline accuracy yet"
        if self.best_level_percent is None:
            return (
                f"no pruned level stays within {points_text(self.tolerance)} of "
                f"{self.baseline_accuracy:.1f}%"
            )
        answer = (
            f"{self.best_level_percent:g}% of weights removed within {points_text(self.tolerance)} "
            f"of {self.baseline_accuracy:.1f}%"
        )
        caveat = METHOD_CAVEATS.get(self.method)
        return f"{answer} ({caveat})" if caveat else answer

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "points"}
        data["sentence"] = self.sentence()
        data["levels"] = len(self.points)
        return data


def points_text(tolerance: float) -> str:
    """'1.0 point', '0.25 points', '2.0 points'."""
    text = f"{tolerance:.1f}" if round(tolerance, 1) == tolerance else f"{tolerance:g}"
    return f"{text} point" if tolerance == 1 else f"{text} points"


def within(accuracy: float | None, baseline: float, tolerance: float) -> bool:
    return accuracy is not None and accuracy >= baseline - tolerance - 1e-9


def best_level(
    points: list[PointResult], baseline: float | None, tolerance: float
) -> PointResult | None:
    """The highest level such that it and every evaluated level below it stay within
    `tolerance` points of `baseline` (a lucky point past the first miss does not count)."""
    if baseline is None:
        return None
    best = None
    for point in sorted(points, key=lambda p: p.level_percent):
        if not point.evaluated:
            continue
        if not within(point.accuracy, baseline, tolerance):
            break
        best = point
    return best


def bracket_of(
    points: list[PointResult], baseline: float, tolerance: float
) -> tuple[float, float] | None:
    """(last level within tolerance, first level outside it), or None when no miss was seen."""
    best = best_level(points, baseline, tolerance)
    above = [
        p.level_percent
        for p in points
        if p.evaluated and best is not None and p.level_percent > best.level_percent
    ]
    if best is None or not above:
        return None
    return best.level_percent, min(above)


def baseline_of(points: list[PointResult]) -> float | None:
    for point in points:
        if point.level_percent == 0.0 and point.evaluated:
            return point.accuracy
    return None


def make_result(
    config: SweepConfig, run_dir: str, points: list[PointResult], status: str, synthetic: bool
) -> SweepResult:
    points = sorted(points, key=lambda p: p.level_percent)
    baseline = baseline_of(points)
    best = best_level(points, baseline, config.tolerance)
    return SweepResult(
        status=status,
        run_dir=run_dir,
        model=config.model,
        method=config.method,
        points=points,
        baseline_accuracy=baseline,
        tolerance=config.tolerance,
        best_level_percent=best.level_percent if best else None,
        best_accuracy=best.accuracy if best else None,
        synthetic=synthetic,
    )

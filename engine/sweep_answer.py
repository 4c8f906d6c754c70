"""A sweep's answer: the points it measured and the best level within the tolerance.

Pure functions of the points and their per-image correctness (no model, no files): which level
is the answer (engine.stats.BEST_LEVEL_RULE), how sure it is, the bracket the bisection refines,
the answer in words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from engine.config import SweepConfig
from engine.pruning import METHOD_CAVEATS
from engine.stats import (
    BEST_LEVEL_RULE,
    best_level_answer,
    best_level_ci95,
    too_small_note,
    wilson_ci95,
)


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
    accuracy_ci95: list[float] | None = None  # Wilson 95% interval of `accuracy`
    delta_ci95: list[float] | None = None  # paired 95% interval of accuracy - dense accuracy
    per_class_accuracy: dict[str, float | None] | None = None  # class name -> top-1 %
    fitted_accuracy: float | None = None  # the rule's isotonic fit at this level
    passed_over: bool = False  # this level's own accuracy says the opposite of the rule
    accuracy_finetuned: float | None = None  # after fine-tuning with the mask fixed (recovery)


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
    best_level_ci95: list[float] | None = None  # bootstrap over test images of the best level
    note: str = ""  # the test set is too small for the tolerance, in words
    rule: str = BEST_LEVEL_RULE
    test_images: dict[str, Any] | None = None  # engine.subsets.Selection.to_dict()

    finetune_epochs: int = 0  # recovery: epochs of masked fine-tuning per level (0 = one-shot)
    cumulative: bool = False  # each level fine-tuned from the previous one (iterative pruning)
    control_accuracy: float | None = None  # the dense model fine-tuned with the same recipe
    best_level_finetuned: float | None = None  # the answer after fine-tuning
    best_accuracy_finetuned: float | None = None

    def sentence(self) -> str:
        """The answer in words, e.g. "62% of weights removed within 1.0 point of 93.1%"; with
        recovery the one-shot answer and the answer after fine-tuning."""
        oneshot = self._oneshot_sentence()
        if not self.finetune_epochs:
            return oneshot
        epochs = f"{self.finetune_epochs} epoch{'s' * (self.finetune_epochs != 1)}"
        how = "iterative, each level from the last" if self.cumulative else "each level"
        reference = recovered_baseline(self)
        if reference is None:
            recovered = "no fine-tuned baseline yet"
        elif self.best_level_finetuned is None:
            recovered = f"no pruned level stays within {points_text(self.tolerance)}"
        else:
            recovered = (
                f"{self.best_level_finetuned:g}% within {points_text(self.tolerance)} of "
                f"{reference:.1f}%"
            )
        against = (
            "the dense model fine-tuned alike" if self.control_accuracy is not None else "dense"
        )
        return (
            f"one-shot: {oneshot}; after {epochs} of fine-tuning ({how}): {recovered} ({against})"
        )

    def _oneshot_sentence(self) -> str:
        if self.baseline_accuracy is None:
            return "no baseline accuracy yet"
        if not self.best_level_percent:
            answer = (
                f"no pruned level stays within {points_text(self.tolerance)} of "
                f"{self.baseline_accuracy:.1f}%"
            )
        else:
            answer = (
                f"{self.best_level_percent:g}% of weights removed within "
                f"{points_text(self.tolerance)} of {self.baseline_accuracy:.1f}%"
            )
        if self.best_level_ci95 is not None:
            low, high = self.best_level_ci95
            span = f"{low:g}%" if low == high else f"{low:g}-{high:g}%"
            answer += f" (95% interval of the best level: {span})"
        caveat = METHOD_CAVEATS.get(self.method)
        if caveat:
            answer += f" ({caveat})"
        return f"{answer}; {self.note}" if self.note else answer

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "points"}
        data["sentence"] = self.sentence()
        data["levels"] = len(self.points)
        return data


def recovered_baseline(result: SweepResult) -> float | None:
    """What recovered levels are measured against: the control (dense fine-tuned with the same
    recipe) when there is one, else the dense one-shot baseline."""
    if result.control_accuracy is not None:
        return result.control_accuracy
    return result.baseline_accuracy


def recovered_view(points: list[PointResult]) -> list[PointResult]:
    """The points with their fine-tuned accuracy as `accuracy`, so the answer's rules (first
    miss, bisection bracket) apply to the recovered curve unchanged."""
    return [
        replace(p, accuracy=p.accuracy_finetuned, evaluated=p.accuracy_finetuned is not None)
        for p in points
        if p.level_percent > 0 or p.accuracy_finetuned is not None
    ]


def control_of(points: list[PointResult]) -> float | None:
    for point in points:
        if point.level_percent == 0.0 and point.accuracy_finetuned is not None:
            return point.accuracy_finetuned
    return None


def points_text(tolerance: float) -> str:
    """'1.0 point', '0.25 points', '2.0 points'."""
    text = f"{tolerance:.1f}" if round(tolerance, 1) == tolerance else f"{tolerance:g}"
    return f"{text} point" if tolerance == 1 else f"{text} points"


def within(accuracy: float | None, baseline: float, tolerance: float) -> bool:
    return accuracy is not None and accuracy >= baseline - tolerance - 1e-9


def best_level(
    points: list[PointResult], baseline: float | None, tolerance: float
) -> PointResult | None:
    """The answer by BEST_LEVEL_RULE among the evaluated points; None without a baseline."""
    evaluated = _evaluated(points)
    answer = best_level_answer([p.accuracy for p in evaluated], baseline, tolerance)
    return evaluated[answer.best_index] if answer.best_index is not None else None


def _evaluated(points: list[PointResult]) -> list[PointResult]:
    return sorted(
        (p for p in points if p.evaluated and p.accuracy is not None),
        key=lambda p: p.level_percent,
    )


def per_class_accuracy(
    confusion: list[list[int]] | None, classes: tuple[str, ...]
) -> dict[str, float | None] | None:
    """Top-1 % of each class's images (None for a class with no test image)."""
    if confusion is None:
        return None
    return {
        name: (100.0 * row[c] / sum(row) if sum(row) else None)
        for c, (name, row) in enumerate(zip(classes, confusion, strict=False))
    }


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
    config: SweepConfig,
    run_dir: str,
    points: list[PointResult],
    status: str,
    synthetic: bool,
    correct: dict[float, np.ndarray] | None = None,
    test_images: dict[str, Any] | None = None,
) -> SweepResult:
    """The result of a sweep: the rule applied, the passed-over levels marked, and with the
    per-image correctness of every evaluated level the bootstrap interval of the answer."""
    points = sorted(points, key=lambda p: p.level_percent)
    baseline = baseline_of(points)
    evaluated = _evaluated(points)
    answer = best_level_answer([p.accuracy for p in evaluated], baseline, config.tolerance)
    for point, fitted, passed in zip(evaluated, answer.fitted, answer.passed_over, strict=True):
        point.fitted_accuracy, point.passed_over = fitted, passed
    best = evaluated[answer.best_index] if answer.best_index is not None else None
    interval = None
    correct = correct or {}
    if best is not None and evaluated and all(p.level_percent in correct for p in evaluated):
        matrix = np.stack([correct[p.level_percent] for p in evaluated])
        found = best_level_ci95([p.level_percent for p in evaluated], matrix, config.tolerance)
        interval = list(found) if found else None
    note = ""
    dense = evaluated[0] if evaluated and evaluated[0].level_percent == 0.0 else None
    if dense is not None and 0.0 in correct:
        bits = correct[0.0]
        note = too_small_note(wilson_ci95(int(bits.sum()), len(bits)), config.tolerance, len(bits))
    result = SweepResult(
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
        best_level_ci95=interval,
        note=note,
        test_images=test_images,
    )
    if config.finetune_epochs:
        result.finetune_epochs, result.cumulative = config.finetune_epochs, config.cumulative
        result.control_accuracy = control_of(points)
        recovered = best_level(recovered_view(points), recovered_baseline(result), config.tolerance)
        if recovered is not None:
            result.best_level_finetuned = recovered.level_percent
            result.best_accuracy_finetuned = recovered.accuracy
    return result

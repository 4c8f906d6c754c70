"""A sweep's answer: the points it measured and the best level within the tolerance.

Pure functions of the points and their per-image correctness (no model, no files): which level
is the answer (engine.measure.stats.BEST_LEVEL_RULE), how sure it is, the bracket the bisection refines,
the answer in words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from engine.config import SweepConfig
from engine.measure.cost import gain_phrase
from engine.measure.stats import (
    BEST_LEVEL_RULE,
    best_level_answer,
    best_level_ci95,
    too_small_note,
    wilson_ci95,
)
from engine.methods import CHANNEL_METHODS, pruning_label
from engine.pruning.pruner import METHOD_CAVEATS
from engine.runs.summaries import SweepSummary

# Said wherever an unstructured level's latency, MACs or parameters are shown: nothing is claimed,
# and the measured figure is that of dense kernels.
DENSE_KERNELS = (
    "masked zeros still run on dense kernels: measured as they run, no speedup claimed; "
    "structured pruning and export --format slim remove the work"
)
COST_FIELDS = ("parameters", "macs", "latency_ms", "latency_batch", "speedup", "speedup_range")


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
    # cost of the network this level runs (slim for structured), engine.measure.cost.cost_fields
    parameters: int | None = None
    macs: int | None = None
    latency_ms: float | None = None  # batch 1, median
    latency_batch: float | None = None  # the throughput batch, median ms
    speedup: float | None = None  # dense latency / this level's (throughput batch), medians
    speedup_range: list[float] | None = None  # [low, high] from both timings' quartiles

    def cost(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in COST_FIELDS}


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
    test_images: dict[str, Any] | None = None  # engine.data.subsets.Selection.to_dict()

    finetune_epochs: int = 0  # recovery: epochs of masked fine-tuning per level (0 = one-shot)
    cumulative: bool = False  # each level fine-tuned from the previous one (iterative pruning)
    control_accuracy: float | None = None  # the dense model fine-tuned with the same recipe
    best_level_finetuned: float | None = None  # the answer after fine-tuning
    best_accuracy_finetuned: float | None = None

    x: str = "level"  # the answer's units (SweepConfig.x)
    timed_on: str = ""  # where latency was measured, e.g. "CPU, batch 64"
    target_speedup: float = 0.0  # find --target-speedup: the answer is the most accurate level
    score: str = "l1"  # what ranked the weights (SweepConfig.score)

    @property
    def pruning(self) -> str:
        """'layerwise', or 'layerwise, random' when the score is not l1."""
        return pruning_label(self.method, self.score)

    def _point(self, level: float | None) -> PointResult | None:
        return next((p for p in self.points if p.level_percent == level), None)

    def gain(self, level: float | None = None) -> str | None:
        """What the answer's level (or `level`) buys in `x`'s units, when measured."""
        best = self._point(self.best_level_percent if level is None else level)
        dense = self._point(0.0)
        if best is None or dense is None:
            return None
        axis = "latency" if self.target_speedup else self.x
        return gain_phrase(axis, best.cost(), dense.cost(), self.timed_on)

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
        elif self.target_speedup:
            recovered = self._speed_sentence(self.best_level_finetuned, reference)
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
        if self.target_speedup:
            return self._speed_sentence(self.best_level_percent, self.baseline_accuracy)
        within_text = f"within {points_text(self.tolerance)} of {self.baseline_accuracy:.1f}%"
        if not self.best_level_percent:
            answer = f"no pruned level stays {within_text}"
        else:
            level = f"{self.best_level_percent:g}% of {self._units()} removed"
            gain = self.gain() if self.x != "level" else None
            answer = f"{gain} ({level}) {within_text}" if gain else f"{level} {within_text}"
        interval = self.level_interval()
        if interval is not None:
            low, high = interval
            span = f"{low:g}%" if low == high else f"{low:g}-{high:g}%"
            answer += f" (95% interval of the best level: {span})"
        caveat = self._caveat()
        if caveat:
            answer += f" ({caveat})"
        return f"{answer}; {self.note}" if self.note else answer

    def level_interval(self) -> tuple[float, float] | None:
        """The best level's 95% interval (a bootstrap over test images) when it says more than
        the answer does: an interval of just 0% only repeats "no pruned level"."""
        if not self.best_level_ci95 or max(self.best_level_ci95) <= 0:
            return None
        return self.best_level_ci95[0], self.best_level_ci95[1]

    def _units(self) -> str:
        return "filters" if self.method in CHANNEL_METHODS else "weights"

    def _caveat(self) -> str | None:
        if self.method not in CHANNEL_METHODS and self.x != "level":
            return DENSE_KERNELS
        if self.x == "latency" and not self.timed_on:
            return "latency not measured: pass --latency-batch N"
        return METHOD_CAVEATS.get(self.method)

    def _speed_sentence(self, level: float | None, reference: float) -> str:
        """find --target-speedup: the most accurate level that is fast enough, in words."""
        target = f"{self.target_speedup:g}x faster ({self.timed_on or 'latency not measured'})"
        best = self._point(level)
        if best is None or best.accuracy is None:
            return f"no level measured reached {target}"
        accuracy = best.accuracy
        if self.finetune_epochs and best.accuracy_finetuned is not None:
            accuracy = best.accuracy_finetuned
        answer = (
            f"{self.gain(level)} at {best.level_percent:g}% of {self._units()} removed: "
            f"{accuracy:.1f}% vs {reference:.1f}% dense (target {target})"
        )
        return answer if self.method in CHANNEL_METHODS else f"{answer} ({DENSE_KERNELS})"

    def run_summary(self) -> SweepSummary:
        """What run.json keeps of this sweep (engine.runs.summaries)."""
        return SweepSummary(
            method=self.method,
            score=self.score,
            baseline_accuracy=self.baseline_accuracy,
            tolerance=self.tolerance,
            best_level_percent=self.best_level_percent,
            best_accuracy=self.best_accuracy,
            levels=len(self.points),
            sentence=self.sentence(),
            target_speedup=self.target_speedup,
            speedup=getattr(self._point(self.best_level_percent), "speedup", None),
        )

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


def x_value(point: Any, dense: Any, axis: str) -> float | None:
    """Where `point` sits on a chart's x-axis: its sparsity (level), its measured speedup
    (latency), or how many times fewer MACs or parameters it has than `dense`."""
    if axis == "level":
        return point.sparsity_percent
    if axis == "latency":
        return point.speedup
    key = {"macs": "macs", "params": "parameters"}.get(axis)
    mine, theirs = getattr(point, key or "", None), getattr(dense, key or "", None)
    return theirs / mine if mine and theirs else None


def reaches(point: Any, target: float) -> bool:
    """Measured at least `target` times faster than dense: the low end of the speedup's range
    (on a busy machine a median alone can be luck), the median when no range was recorded."""
    span = getattr(point, "speedup_range", None)
    speedup = span[0] if span else point.speedup
    return speedup is not None and speedup >= target


def fastest_enough(points: list[PointResult], target: float) -> PointResult | None:
    """The most accurate evaluated level measured at least `target` times faster than dense (the
    lower level on a tie)."""
    fast = [p for p in points if p.evaluated and p.accuracy is not None and reaches(p, target)]
    return max(fast, key=lambda p: (p.accuracy, -p.level_percent), default=None)


def speed_bracket(points: list[PointResult], target: float) -> tuple[float, float] | None:
    """(highest level below `target` speedup, lowest level reaching it) when the first is lower."""
    timed = [p for p in points if p.speedup is not None]
    slow = [p.level_percent for p in timed if not reaches(p, target)]
    fast = [p.level_percent for p in timed if reaches(p, target)]
    if not slow or not fast or max(slow) >= min(fast):
        return None
    return max(slow), min(fast)


def make_result(
    config: SweepConfig,
    run_dir: str,
    points: list[PointResult],
    status: str,
    synthetic: bool,
    correct: dict[float, np.ndarray] | None = None,
    test_images: dict[str, Any] | None = None,
    timed_on: str = "",
) -> SweepResult:
    """The result of a sweep: the rule applied, the passed-over levels marked, and with the
    per-image correctness of every evaluated level the bootstrap interval of the answer (with a
    target speedup: the most accurate level at least that fast)."""
    points = sorted(points, key=lambda p: p.level_percent)
    correct = correct or {}
    best, interval = _best_of(config, points, correct)
    result = SweepResult(
        status=status,
        run_dir=run_dir,
        model=config.model,
        method=config.method,
        points=points,
        baseline_accuracy=baseline_of(points),
        tolerance=config.tolerance,
        best_level_percent=best.level_percent if best else None,
        best_accuracy=best.accuracy if best else None,
        synthetic=synthetic,
        best_level_ci95=interval,
        note=_small_sample_note(points, correct, config.tolerance),
        test_images=test_images,
        x=config.x,
        timed_on=timed_on,
        target_speedup=config.target_speedup,
        score=config.score,
    )
    if config.finetune_epochs:
        _add_recovered_answer(result, config, points)
    return result


def _best_of(
    config: SweepConfig, points: list[PointResult], correct: dict[float, np.ndarray]
) -> tuple[PointResult | None, list[float] | None]:
    """The answer's level and its bootstrap interval; the tolerance rule marks each evaluated
    point's fitted accuracy and whether it was passed over (not with a target speedup)."""
    if config.target_speedup:
        return fastest_enough(points, config.target_speedup), None
    evaluated = _evaluated(points)
    answer = best_level_answer(
        [p.accuracy for p in evaluated], baseline_of(points), config.tolerance
    )
    for point, fitted, passed in zip(evaluated, answer.fitted, answer.passed_over, strict=True):
        point.fitted_accuracy, point.passed_over = fitted, passed
    best = evaluated[answer.best_index] if answer.best_index is not None else None
    if best is None or not all(p.level_percent in correct for p in evaluated):
        return best, None
    matrix = np.stack([correct[p.level_percent] for p in evaluated])
    found = best_level_ci95([p.level_percent for p in evaluated], matrix, config.tolerance)
    return best, list(found) if found else None


def _small_sample_note(
    points: list[PointResult], correct: dict[float, np.ndarray], tolerance: float
) -> str:
    """Says when the test set measures the dense accuracy less finely than the tolerance."""
    evaluated = _evaluated(points)
    if not evaluated or evaluated[0].level_percent != 0.0 or 0.0 not in correct:
        return ""
    bits = correct[0.0]
    return too_small_note(wilson_ci95(int(bits.sum()), len(bits)), tolerance, len(bits))


def _add_recovered_answer(result: SweepResult, config: SweepConfig, points) -> None:
    """A recovery sweep's second answer: judged on the fine-tuned accuracies."""
    result.finetune_epochs, result.cumulative = config.finetune_epochs, config.cumulative
    result.control_accuracy = control_of(points)
    view = recovered_view(points)
    if config.target_speedup:
        recovered = fastest_enough(view, config.target_speedup)
    else:
        recovered = best_level(view, recovered_baseline(result), config.tolerance)
    if recovered is not None:
        result.best_level_finetuned = recovered.level_percent
        result.best_accuracy_finetuned = recovered.accuracy

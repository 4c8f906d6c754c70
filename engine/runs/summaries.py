"""What each kind of run leaves in run.json's `summary`: one typed dataclass per kind.

`headline()` is the one line every front end shows for a run (`prunelab runs`, the app's Runs
screen), so they cannot disagree. A new kind adds a class here and one line in `SUMMARIES`.
Old run folders keep working: unknown keys are ignored, missing ones take their defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from engine.methods import pruning_label, score_words


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}%"


@dataclass(frozen=True)
class Numbers:
    """A run's headline numbers (`RunSummary.numbers`)."""

    level: float | None = None
    accuracy: float | None = None
    dense: float | None = None


@dataclass
class RunSummary:
    """Base: plain data that round-trips through JSON."""

    kind: ClassVar[str] = ""

    def headline(self) -> str:
        return ""

    def numbers(self) -> Numbers:
        """The headline's numbers for a table's columns: the level (percent removed), the
        accuracy it reached and the dense model's accuracy; None where the kind has none."""
        return Numbers()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        """Known keys whose values have the field's type; a damaged or foreign value (the
        string "NaN" for an accuracy, a list for a count) takes the field's default."""
        types = {f.name: f.type for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in types and _fits(types[k], v)})


def _fits(annotation: Any, value: Any) -> bool:
    """Whether a JSON value has the type a summary field declares (`float | None`, ...)."""
    allowed = {part.strip() for part in str(annotation).split("|")}
    if value is None:
        return "None" in allowed
    if isinstance(value, bool):
        return "bool" in allowed
    if isinstance(value, int):
        return bool(allowed & {"int", "float"})
    if isinstance(value, float):
        return "float" in allowed and math.isfinite(value)
    if isinstance(value, str):
        return "str" in allowed
    if isinstance(value, list) and "list[float]" in allowed:
        return all(_fits("float", v) for v in value)
    return False


@dataclass
class TrainSummary(RunSummary):
    kind: ClassVar[str] = "train"
    epochs_completed: int = 0
    final_test_acc: float | None = None
    best_test_acc: float | None = None
    checkpoint: str | None = None  # the last checkpoint written (resume from it)
    sparsity: float | None = None  # percent of prunable weights at 0, when the run pruned

    def headline(self) -> str:
        if self.best_test_acc is None:
            return ""
        epochs = self.epochs_completed
        return f"best {_pct(self.best_test_acc)}, {epochs} epoch{'s' * (epochs != 1)}"

    def numbers(self) -> Numbers:
        return Numbers(accuracy=self.best_test_acc)


@dataclass
class FinetuneSummary(TrainSummary):
    """Pruned once, then trained with the mask fixed (engine.training.finetune)."""

    kind: ClassVar[str] = "finetune"
    level_percent: float = 0.0
    method: str = ""
    score: str = "l1"
    dense_accuracy: float | None = None
    oneshot_accuracy: float | None = None
    recovered_accuracy: float | None = None
    best_epoch: int | None = None
    pruned_weights: int = 0
    prunable_weights: int = 0

    def headline(self) -> str:
        if self.recovered_accuracy is None:
            return ""
        # the result first: a table cuts the end of a headline
        return (
            f"{_pct(self.recovered_accuracy)} after fine-tuning, dense "
            f"{_pct(self.dense_accuracy)}, one-shot {_pct(self.oneshot_accuracy)} "
            f"({self.level_percent:g}% {pruning_label(self.method, self.score)})"
        )

    def numbers(self) -> Numbers:
        # a fine-tune killed before it summarised itself has no level here: none, not a false 0%
        level = self.level_percent if self.recovered_accuracy is not None else None
        return Numbers(level, self.recovered_accuracy, self.dense_accuracy)


@dataclass
class SweepSummary(RunSummary):
    """A sweep or a find run: the answer (see engine.sweep.answer)."""

    kind: ClassVar[str] = "sweep"
    method: str = ""
    score: str = "l1"
    baseline_accuracy: float | None = None
    tolerance: float = 1.0
    best_level_percent: float | None = None
    best_accuracy: float | None = None
    levels: int = 0
    sentence: str = ""
    target_speedup: float = 0.0  # find --target-speedup: the answer is a speed, not a tolerance
    speedup: float | None = None  # the answer's measured speedup over dense

    def headline(self) -> str:
        if self.baseline_accuracy is None:
            return ""
        if self.target_speedup:
            text = self._speed_headline()
        elif not self.best_level_percent:  # None, or 0: only the dense model qualifies
            text = (
                f"no pruned level within {self.tolerance:g} pt of dense "
                f"{_pct(self.baseline_accuracy)}"
            )
        else:
            text = (
                f"{self.best_level_percent:g}% removed at {_pct(self.best_accuracy)}, "
                f"dense {_pct(self.baseline_accuracy)}"
            )
        return _scored(self.score, text)

    def numbers(self) -> Numbers:
        return Numbers(self.best_level_percent, self.best_accuracy, self.baseline_accuracy)

    def _speed_headline(self) -> str:
        target = f"{self.target_speedup:g}x faster"
        if self.best_level_percent is None or self.speedup is None:
            return f"no level reached {target}, dense {_pct(self.baseline_accuracy)}"
        return (
            f"{self.speedup:.2f}x faster at {self.best_level_percent:g}% removed: "
            f"{_pct(self.best_accuracy)}, dense {_pct(self.baseline_accuracy)} (target {target})"
        )


def _scored(score: str, headline: str) -> str:
    """'random score: …' before the headline of a run ranked by a score not l1."""
    words = score_words(score)
    return f"{words}: {headline}" if words else headline


@dataclass
class SensitivitySummary(RunSummary):
    kind: ClassVar[str] = "sensitivity"
    baseline_accuracy: float | None = None
    layers: int = 0
    levels: list[float] = field(default_factory=list)
    score: str = "l1"

    def headline(self) -> str:
        if self.baseline_accuracy is None:
            return ""
        layers = f"{self.layers} layer{'s' * (self.layers != 1)}"
        levels = f"{len(self.levels)} level{'s' * (len(self.levels) != 1)}"
        text = f"{layers} x {levels}, dense {_pct(self.baseline_accuracy)}"
        return _scored(self.score, text)

    def numbers(self) -> Numbers:
        return Numbers(dense=self.baseline_accuracy)


@dataclass
class ExportSummary(RunSummary):
    kind: ClassVar[str] = "export"
    path: str = ""
    format: str = ""
    level_percent: float = 0.0
    method: str = ""
    score: str = "l1"
    sparsity_percent: float = 0.0
    file_bytes: int = 0
    dense_file_bytes: int = 0
    ratio: float = 0.0

    def headline(self) -> str:
        if not self.path:
            return ""
        return (
            f"{self.level_percent:g}% {pruning_label(self.method, self.score)} -> "
            f"{Path(self.path).name}, "
            f"{100 * self.ratio:.1f}% of the dense file"
        )

    def numbers(self) -> Numbers:
        return Numbers(level=self.level_percent)


SUMMARIES: dict[str, type[RunSummary]] = {
    "train": TrainSummary,
    "finetune": FinetuneSummary,
    "sweep": SweepSummary,
    "find": SweepSummary,
    "sensitivity": SensitivitySummary,
    "export": ExportSummary,
}


def summary_from_dict(kind: str, data: dict[str, Any]) -> RunSummary | None:
    """The typed summary of a run of `kind` (None for a kind this version does not know)."""
    cls = SUMMARIES.get(kind)
    return None if cls is None else cls.from_dict(data or {})

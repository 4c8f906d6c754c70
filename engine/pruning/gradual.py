"""Gradual magnitude pruning while training (Zhu & Gupta 2017, "To prune, or not to prune").

Sparsity rises from 0 to the target s_f on the cubic schedule s_t = s_f * (1 - (1 - t/T)^3): fast
while the network has many redundant weights, slow near the end so it can recover. Every `every`
steps the smallest weights (L1, ranked on the current weights) are cut to the schedule's level and
the masks are fixed until the next increase; from the end step on they stay at exactly s_f.
Already pruned weights are 0, rank first and so stay pruned: the masks only grow.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from engine.pruning.masks import MaskSet


@dataclass(frozen=True)
class CubicSchedule:
    """The level (percent) after `step` optimizer steps, rising only at update steps."""

    target: float
    start_step: int  # no pruning before this step
    end_step: int  # the target is reached at this step
    every: int  # steps between increases

    def level_at(self, step: int) -> float:
        if step <= self.start_step:
            return 0.0
        if step >= self.end_step:
            return self.target
        updated = self.start_step + ((step - self.start_step) // self.every) * self.every
        progress = (updated - self.start_step) / (self.end_step - self.start_step)
        return self.target * (1.0 - (1.0 - progress) ** 3)

    @classmethod
    def for_epochs(
        cls, target: float, first_epoch: int, last_epoch: int, steps_per_epoch: int, every: int
    ) -> CubicSchedule:
        """Pruning from the start of `first_epoch` to the end of `last_epoch` (1-based);
        `every` = 0 picks 20 increases over that span."""
        start = (first_epoch - 1) * steps_per_epoch
        end = last_epoch * steps_per_epoch
        every = every or max(1, (end - start) // 20)
        return cls(target, start, max(end, start + 1), every)


class GradualPruning:
    """Raises the model's sparsity on a `CubicSchedule`; call `after_step` after every step."""

    def __init__(
        self,
        model: nn.Module,
        schedule: CubicSchedule,
        method: str,
        include_classifier: bool = False,
    ) -> None:
        self.model = model
        self.schedule = schedule
        self.method = method
        self.include_classifier = include_classifier
        self.level = 0.0
        self.masks: MaskSet | None = None

    def after_step(self, step: int) -> None:
        level = self.schedule.level_at(step)
        if level > self.level:
            self.masks = MaskSet.prune(self.model, level, self.method, self.include_classifier)
            self.level = level
        elif self.masks is not None:
            self.masks.apply()

    def state(self) -> dict:
        return {"level": self.level, "masks": self.masks.state() if self.masks else None}

    def load_state(self, state: dict, source: str) -> None:
        self.level = float(state.get("level", 0.0))
        packed = state.get("masks")
        self.masks = MaskSet.from_state(self.model, packed, source) if packed else None
        if self.masks is not None:
            self.masks.apply()

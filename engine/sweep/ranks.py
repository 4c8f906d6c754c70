"""A sweep's levels spread over torchrun ranks: each rank prunes and evaluates its own level.

Every rank runs the whole sweep program and sees every result (an all-gather per round of
`world_size` levels), so every decision (early stop, the first miss of `find`, the bisection) is
taken identically everywhere; rank 0 alone writes the points, in level order, as rounds finish.
A level is the same computation on any rank, so the points equal a single-process sweep's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from engine.events import stop_requested
from engine.runtime.distributed import Group, SharedStop


def without_evaluation(point: Any) -> Any:
    """The point as a skipped level records it (sizes and sparsity kept, no accuracy)."""
    return dataclasses.replace(
        point,
        accuracy=None,
        loss=None,
        accuracy_bn_recalibrated=None,
        evaluated=False,
        confusion=None,
    )


class SpreadLevels:
    """Hands out sweep points; in a distributed run computes the grid `world_size` at a time.

    `point()` must be called in the same order on every rank (the sweep loop does: its
    decisions depend only on the gathered points). Levels outside `grid` (the bisection's) are
    computed by every rank alike, after a stop check taken together."""

    def __init__(
        self,
        measure: Callable[..., Any],
        grid: Sequence[float],
        group: Group | None = None,
        stop: SharedStop | None = None,
        capture: Callable[[], Any] = lambda: None,
    ) -> None:
        self.measure = measure
        self.grid = list(grid)
        self.group = group
        self.stop = stop
        self.capture = capture  # what else a point brings (per-image bits), read after measuring
        self.last_capture: Any = None  # the capture of the point handed out last
        self.ready: dict[float, tuple[Any, Any]] = {}

    @property
    def spread(self) -> bool:
        return self.group is not None and self.group.world.distributed

    def point(self, level: float, *, evaluate_it: bool = True, refined: bool = False) -> Any:
        if not self.spread or level not in self.grid:
            if self.spread and self.stop is not None:
                self.stop.sync()
            point = self.measure(level, evaluate_it=evaluate_it, refined=refined)
            self.last_capture = self.capture()
            return point
        if level not in self.ready:
            self._round(level, evaluate_it)
        point, self.last_capture = self.ready.pop(level, (None, None))
        if point is None or evaluate_it or not point.evaluated:
            return point
        self.last_capture = None
        return without_evaluation(point)

    def _round(self, level: float, evaluate_it: bool) -> None:
        """The next `world_size` grid levels from `level` on, one per rank, gathered."""
        assert self.group is not None
        world = self.group.world
        start = self.grid.index(level)
        batch = self.grid[start : start + world.world_size]
        mine, captured = None, None
        if world.rank < len(batch):
            mine = self.measure(batch[world.rank], evaluate_it=evaluate_it, refined=False)
            captured = self.capture()
        local_stop = stop_requested(self.stop.local) if self.stop is not None else False
        gathered = self.group.gather_objects((local_stop, mine, captured))
        if self.stop is not None:
            self.stop.agreed = self.stop.agreed or any(flag for flag, _, _ in gathered)
        for point, bits in ((p, b) for _, p, b in gathered if p is not None):
            self.ready[point.level_percent] = (point, bits)

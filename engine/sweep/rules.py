"""What a find, a sensitivity run and a sweep resume need beyond their config's own fields.

One rule each, in the engine: the entry points enforce them, and the CLI and the app check them
before they start anything, with the same words. Free of torch, so a bad value costs no import.
"""

from __future__ import annotations

import math

from engine.config import SweepConfig
from engine.errors import ConfigError
from engine.options import MIN_LEVEL_STEP
from engine.runs.record import SWEEP_KINDS


def find_problems(coarse_step: float) -> list[ConfigError]:
    """find scans 0, step, 2*step, ... %: the step must be a level spacing within 0-100."""
    if math.isnan(coarse_step) or not MIN_LEVEL_STEP <= coarse_step <= 100:
        allowed = f"allowed {MIN_LEVEL_STEP:g} to 100"
        return [ConfigError("coarse_step", f"{coarse_step:g} is out of range; {allowed}")]
    return []


def sensitivity_problems(config: SweepConfig) -> list[ConfigError]:
    """Sensitivity prunes one layer at a time: a level of 0 prunes nothing, so one above 0 is
    needed (0 itself is measured anyway, as the baseline)."""
    if not any(level > 0 for level in config.levels):
        return [ConfigError("levels", "sensitivity needs at least one level above 0 (e.g. 50,90)")]
    return []


def sweep_resume_problem(run: str, kind: str) -> str | None:
    """Only a sweep or a find run resumes as a sweep."""
    if kind in SWEEP_KINDS:
        return None
    return f"cannot resume {run}: it is a {kind} run, not a sweep"


def raise_first(found: list[ConfigError]) -> None:
    if found:
        raise found[0]

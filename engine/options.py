"""Config fields with their help and limits, and the parsers of values typed as text.

`option()` puts a field's help text, choices and range into its dataclass metadata, where the
config's `problems()`, the CLI's option help and the app's forms all read them: the machinery
behind engine/config.py's single source of truth.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import MISSING, asdict, field, fields
from typing import Any

from engine.errors import ConfigError

MIN_LEVEL_STEP = 0.01  # finest level spacing (also the finest --resolution)
MAX_INT = 2**63 - 1  # no whole-number option may exceed int64: torch and numpy overflow
MAX_LEVELS = 1001  # a sweep of 0:100:0.1; more levels are a typo, not a plan


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    group: str = "",
) -> Any:
    """A dataclass field with its help text and allowed values."""
    meta = {
        "help": help,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "group": group,
    }
    return field(default=default, metadata=meta)


def same_as(cls: type, name: str, *, default: Any = MISSING, group: str | None = None) -> Any:
    """A field with the help, choices and limits of `cls.name` (one source for both), optionally
    with another default or form group."""
    source = next(f for f in fields(cls) if f.name == name)
    meta = dict(source.metadata)
    if group is not None:
        meta["group"] = group
    return field(default=source.default if default is MISSING else default, metadata=meta)


def describe_allowed(meta: dict[str, Any]) -> str:
    """'one of a, b', 'an integer >= 1', ... for help texts and error messages."""
    if meta.get("choices"):
        return "one of " + ", ".join(meta["choices"])
    lo, hi = plain_number(meta.get("minimum")), plain_number(meta.get("maximum"))
    if lo and hi:
        return f"from {lo} to {hi}"
    if lo:
        return f">= {lo}"
    if hi:
        return f"<= {hi}"
    return ""


def plain_number(value: float | None) -> str:
    """'4294967295' for whole numbers (not 4.29497e+09), '0.001' otherwise; '' for None."""
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:g}"


def parse_device(text: str) -> str:
    """Normalise a device string; raise ValueError with the allowed forms."""
    text = text.strip().lower()
    if text in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", text):
        return text
    raise ValueError("one of auto, cpu, cuda, cuda:N")


def parse_levels(text: str | list[float] | tuple[float, ...]) -> tuple[float, ...]:
    """Levels in percent of the original prunable weights removed.

    Accepts `start:stop:step` (stop included, like the seed's 0:100:5) or a comma list
    (`0,40,60.5`). Returns sorted unique values in [0, 100]. Raises ValueError with the rule.
    """
    if isinstance(text, (list, tuple)):
        values = [float(v) for v in text]
    else:
        text = text.strip()
        if not text:
            raise ValueError("give start:stop:step (e.g. 0:100:5) or a list (e.g. 0,40,60.5)")
        try:
            if ":" in text:
                parts = [float(p) for p in text.split(":")]
                if len(parts) != 3:
                    raise ValueError
                start, stop, step = parts
                if not (step > 0) or not (stop >= start) or not math.isfinite(stop - start):
                    raise ValueError
                if start < 0 or stop > 100:
                    bad = start if start < 0 else stop
                    raise _TooMany(f"levels are percents from 0 to 100, got {bad:g}")
                if step < MIN_LEVEL_STEP:
                    raise _TooMany(f"the step must be at least {MIN_LEVEL_STEP:g}, got {step:g}")
                count = int(math.floor((stop - start) / step + 1e-9)) + 1
                if count > MAX_LEVELS:
                    raise _TooMany(
                        f"{start:g}:{stop:g}:{step:g} gives {count} levels; at most {MAX_LEVELS} "
                        "are allowed (use a larger step)"
                    )
                values = [round(start + i * step, 6) for i in range(count)]
            else:
                values = [float(p) for p in text.split(",") if p.strip()]
        except _TooMany:
            raise
        except ValueError:
            raise ValueError(
                "give start:stop:step with step > 0 and stop >= start (e.g. 0:100:5) "
                "or a comma list (e.g. 0,40,60.5)"
            ) from None
    if not values:
        raise ValueError("at least one level is needed")
    if len(values) > MAX_LEVELS:
        raise ValueError(f"{len(values)} levels given; at most {MAX_LEVELS} are allowed")
    for v in values:
        if not (0.0 <= v <= 100.0) or math.isnan(v):
            raise ValueError(f"levels are percents from 0 to 100, got {v:g}")
    return tuple(sorted(set(values)))


class _TooMany(ValueError):
    """A level range that is well formed but far too fine."""


def format_levels(levels: Sequence[float]) -> str:
    """Levels as `start:stop:step` when evenly spaced (the way users type them), else a list;
    `parse_levels` reads either back."""
    values = sorted(levels)
    if len(values) >= 3:
        step = values[1] - values[0]
        if step > 0 and all(
            math.isclose(b - a, step, abs_tol=1e-6)
            for a, b in zip(values, values[1:], strict=False)
        ):
            return f"{values[0]:g}:{values[-1]:g}:{step:g}"
    return ",".join(f"{v:g}" for v in values)


def field_meta(cls: type, name: str) -> dict[str, Any]:
    """The help/choices/range of one config field (for front ends)."""
    for f in fields(cls):
        if f.name == name:
            return dict(f.metadata)
    raise KeyError(name)


def field_default(cls: type, name: str) -> Any:
    for f in fields(cls):
        if f.name == name:
            return f.default if f.default is not MISSING else None
    raise KeyError(name)


class Options:
    """Base of every config dataclass: each field an `option()` whose metadata the checks and
    both front ends read."""

    def problems(self) -> list[ConfigError]:
        """Every invalid field with its message; empty when the config is valid."""
        found: list[ConfigError] = []
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            meta = f.metadata
            allowed = describe_allowed(meta)
            if meta.get("choices") and value not in meta["choices"]:
                found.append(ConfigError(f.name, f"{value!r} is not allowed; {allowed}"))
                continue
            if meta.get("minimum") is not None or meta.get("maximum") is not None:
                if (
                    isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or math.isnan(value)
                ):
                    found.append(ConfigError(f.name, f"{value!r} is not a number; {allowed}"))
                    continue
                if f.type == "int" and not float(value).is_integer():
                    found.append(ConfigError(f.name, f"{value!r} is not a whole number; {allowed}"))
                    continue
                lo, hi = meta.get("minimum"), meta.get("maximum")
                huge = f.type == "int" and abs(value) > MAX_INT  # overflows torch and numpy
                if huge or (lo is not None and value < lo) or (hi is not None and value > hi):
                    found.append(
                        ConfigError(
                            f.name, f"{plain_number(value)} is out of range; allowed {allowed}"
                        )
                    )
        return found

    def validate(self) -> None:
        """Raise ConfigError for the first invalid field."""
        found = self.problems()
        if found:
            raise found[0]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build from a dict (e.g. a checkpoint's config), ignoring unknown keys."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        kwargs = {k: v for k, v in data.items() if k in names}
        if "levels" in kwargs:
            kwargs["levels"] = tuple(kwargs["levels"])
        return cls(**kwargs)

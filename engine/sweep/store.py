"""A sweep's and a sensitivity run's files: sweep.jsonl (one point a line, appended as measured),
correct.jsonl (per level, which test images were right: bit-packed, 1.25 KB per 10,000 images),
sweep.csv, sensitivity.jsonl/.csv and summary.json; read back for reports and resuming.

`read_sweep` recomputes the answer and its bootstrap interval from these files, so `report`
gives the same numbers as the sweep without re-running anything."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import SweepConfig
from engine.errors import PrunelabError
from engine.measure.stats import pack_bits, unpack_bits
from engine.runs.files import RunFileError, read_jsonl_checked
from engine.runs.record import (
    append_jsonl,
    is_percent,
    load_run,
    read_json,
    read_jsonl,
    write_csv,
    write_json,
    write_jsonl,
)
from engine.sweep.answer import PointResult, SweepResult, make_result
from engine.sweep.rules import sweep_resume_problem

CSV_COLUMNS = (
    "level_percent",
    "sparsity_percent",
    "total_sparsity_percent",
    "nonzero_parameters",
    "accuracy",
    "accuracy_bn_recalibrated",
    "accuracy_finetuned",
    "loss",
    "dense_bytes",
    "sparse_bytes",
    "seconds",
    "evaluated",
    "refined",
    "accuracy_ci95_low",
    "accuracy_ci95_high",
    "delta_ci95_low",
    "delta_ci95_high",
    "fitted_accuracy",
    "passed_over",
    "parameters",
    "macs",
    "latency_ms",
    "latency_batch",
    "speedup",
    "speedup_low",
    "speedup_high",
)
CORRECT_FILE = "correct.jsonl"


def csv_rows(result: SweepResult) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per level; intervals as low/high columns, then `accuracy_<class>` per class."""
    classes: list[str] = []
    for point in result.points:
        for name in point.per_class_accuracy or {}:
            if name not in classes:
                classes.append(name)
    rows = []
    for point in result.points:
        row = asdict(point)
        for key, name in (
            ("accuracy_ci95", "accuracy_ci95"),
            ("delta_ci95", "delta_ci95"),
            ("speedup_range", "speedup"),
        ):
            low, high = row.pop(key) or (None, None)
            row[f"{name}_low"], row[f"{name}_high"] = low, high
        for name, value in (point.per_class_accuracy or {}).items():
            row[f"accuracy_{name}"] = value
        rows.append(row)
    return rows, [*CSV_COLUMNS, *(f"accuracy_{name}" for name in classes)]


def write_outputs(run_dir: Path, result: SweepResult) -> None:
    rows, columns = csv_rows(result)
    write_csv(run_dir / "sweep.csv", rows, columns)
    write_json(run_dir / "summary.json", result.summary())


def append_correct(run_dir: Path, level: float, correct: np.ndarray) -> None:
    """One line per evaluated level: which test images it got right, in test-set order."""
    record = {"level_percent": level, "images": int(len(correct)), "bits": pack_bits(correct)}
    append_jsonl(run_dir / CORRECT_FILE, record)


def read_correct(run_dir: Path) -> dict[float, np.ndarray]:
    """Level -> bool per test image; a damaged line is skipped (that level has no interval)."""
    found: dict[float, np.ndarray] = {}
    for record in read_jsonl(run_dir / CORRECT_FILE):
        try:
            bits = unpack_bits(record["bits"], int(record["images"]))
            found[float(record["level_percent"])] = bits
        except (KeyError, TypeError, ValueError):
            continue
    return found


_POINT_FIELDS = {f.name for f in dataclasses.fields(PointResult)}
_NUMBERS = ("level_percent", "sparsity_percent", "total_sparsity_percent")


def _point(record: dict[str, Any]) -> PointResult | None:
    """A PointResult from a sweep.jsonl record, or None when fields are missing or mistyped."""
    values = {k: v for k, v in record.items() if k in _POINT_FIELDS}
    # levels, sparsities and accuracies are percents: 1e308 or NaN would break every chart
    if not all(is_percent(values, k) for k in _NUMBERS):
        return None
    if not (values.get("accuracy") is None or is_percent(values, "accuracy")):
        return None
    try:
        return PointResult(**values)
    except TypeError:
        return None


def points_from_jsonl(run_dir: Path) -> tuple[list[PointResult], str]:
    """The sweep's points (one per level, the last wins) and '' or what was skipped."""
    path = run_dir / "sweep.jsonl"
    read = read_jsonl_checked(path)
    problems = [read.damage(path)] if read.skipped else []
    points: dict[float, PointResult] = {}
    for number, record in enumerate(read.records, start=1):
        point = _point(record)
        if point is None:
            problems.append(f"sweep.jsonl: record {number} lacks usable level/accuracy fields")
            continue
        points[point.level_percent] = point
    return list(points.values()), "; ".join(problems)


def keep_valid_points(run_dir: Path) -> None:
    """Rewrite sweep.jsonl with only its usable records, atomically: after a repair no torn
    fragment or foreign line stays in the file. A file read only in part (over its size limit)
    is left alone: rewriting it would drop its head."""
    path = run_dir / "sweep.jsonl"
    read = read_jsonl_checked(path)
    if not read.skipped or any(s.startswith(("the first", "unreadable")) for s in read.skipped):
        return
    write_jsonl(path, [record for record in read.records if _point(record) is not None])


def saved_config(run_dir: Path) -> SweepConfig:
    """The sweep's config.json; a missing or damaged one is a PrunelabError naming the run."""
    try:
        return SweepConfig.from_dict(read_json(run_dir / "config.json"))
    except RunFileError as exc:
        raise PrunelabError(f"cannot read the sweep run {run_dir}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise PrunelabError(f"{run_dir / 'config.json'} is damaged ({exc})") from None


def resume_state(
    resume_run: str | Path, config: SweepConfig
) -> tuple[SweepConfig, dict[float, PointResult], str]:
    """The saved sweep's config (keeping this call's device settings), its finished points and
    '' or what was damaged in them (those levels are computed again)."""
    run_dir = Path(resume_run)
    problem = sweep_resume_problem(str(run_dir), load_run(run_dir).kind)
    if problem:
        raise PrunelabError(problem)
    saved = saved_config(run_dir)
    keep = ("device", "precision", "channels_last", "eval_batch_size", "data_dir")
    saved = dataclasses.replace(saved, **{k: getattr(config, k) for k in keep})
    points, damage = points_from_jsonl(run_dir)
    return saved, {p.level_percent: p for p in points}, damage


def read_sweep(run_dir: str | Path) -> SweepResult:
    """A finished or interrupted sweep run, read back from its files; `reason` names damage."""
    run_dir = Path(run_dir)
    config = saved_config(run_dir)
    record = load_run(run_dir)
    try:
        summary = read_json(run_dir / "summary.json")
    except RunFileError:
        summary = {}
    points, damage = points_from_jsonl(run_dir)
    result = make_result(
        config,
        str(run_dir),
        points,
        record.status,
        record.synthetic,
        read_correct(run_dir),
        summary.get("test_images"),
        timed_on(config, record.device),
    )
    result.reason = damage
    return result


def timed_on(config: SweepConfig, device: str) -> str:
    """'CPU, batch 64' from the run's device description, or '' when latency was not timed."""
    if not config.latency_batch:
        return ""
    kind = device.split(",")[0].split(":")[0].split(" ")[0].strip() or "cpu"
    return f"{kind.upper()}, batch {config.latency_batch}"


@dataclass
class SensitivityResult:
    run_dir: str
    layers: list[str]
    levels: list[float]
    baseline_accuracy: float | None
    accuracy: dict[str, dict[float, float]]  # layer -> level -> top-1 %
    status: str = "completed"
    score: str = "l1"  # what ranked each layer's weights (a run written before scores: l1)
    test_images: int = 0  # how many images each accuracy is measured on (0: not recorded)

    def comparison_level(self) -> float | None:
        """The highest level measured for every layer (None before any, or when a stopped run
        measured no level for all of them)."""
        rows = [row for row in self.accuracy.values() if row]
        shared = [lv for lv in self.levels if rows and all(lv in row for row in rows)]
        return max(shared, default=None)

    def most_sensitive(self, count: int = 3) -> list[str]:
        """The `count` layers that keep the least accuracy at `comparison_level` (the earlier
        layer first on ties): the layers to spare, or to prune less."""
        level = self.comparison_level()
        if level is None:
            return []
        measured = [name for name, row in self.accuracy.items() if row]
        return sorted(measured, key=lambda name: self.accuracy[name][level])[:count]


def read_sensitivity(run_dir: str | Path) -> SensitivityResult:
    """A sensitivity run read back from its files (finished or interrupted)."""
    run_dir = Path(run_dir)
    try:
        summary = read_json(run_dir / "summary.json")
    except RunFileError:
        summary = {}
    table: dict[str, dict[float, float]] = {}
    for row in read_jsonl(run_dir / "sensitivity.jsonl"):
        layer, level, accuracy = row.get("layer"), row.get("level_percent"), row.get("accuracy")
        if (
            isinstance(layer, str)
            and is_percent(row, "level_percent")
            and is_percent(row, "accuracy")
        ):
            table.setdefault(layer, {})[float(level)] = accuracy
    levels = sorted({level for row in table.values() for level in row})
    record = load_run(run_dir) if (run_dir / "run.json").is_file() else None
    status = record.status if record is not None else "unknown"
    # a killed run wrote no summary: its config (run.json) still names the score
    score = summary.get("score") or ((record.config or {}).get("score") if record else None)
    return SensitivityResult(
        str(run_dir),
        list(table),
        levels,
        summary.get("baseline_accuracy"),
        table,
        status,
        score if isinstance(score, str) and score else "l1",
        _count(summary.get("test_images")),
    )


def _count(value: Any) -> int:
    """A count read from a file: a non-negative int, else 0 (not recorded or damaged)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def write_sensitivity(run_dir: Path, result: SensitivityResult) -> None:
    """sensitivity.csv (layer x level) and summary.json (every accuracy, keyed by level text)."""
    table, levels = result.accuracy, result.levels
    columns = ["layer"] + [f"{level:g}" for level in levels]
    rows = [{"layer": n, **{f"{lv:g}": acc for lv, acc in row.items()}} for n, row in table.items()]
    write_csv(run_dir / "sensitivity.csv", rows, columns)
    write_json(
        run_dir / "summary.json",
        {
            "baseline_accuracy": result.baseline_accuracy,
            "score": result.score,
            "test_images": result.test_images,
            "levels": levels,
            "accuracy": {n: {f"{k:g}": v for k, v in r.items()} for n, r in table.items()},
        },
    )

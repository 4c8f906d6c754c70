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
from engine.runs import append_jsonl, load_run, read_json, read_jsonl, write_csv, write_json
from engine.stats import pack_bits, unpack_bits
from engine.sweep_answer import PointResult, SweepResult, make_result

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
        for key in ("accuracy_ci95", "delta_ci95"):
            low, high = row.pop(key) or (None, None)
            row[f"{key}_low"], row[f"{key}_high"] = low, high
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


def points_from_jsonl(run_dir: Path) -> list[PointResult]:
    names = {f.name for f in dataclasses.fields(PointResult)}
    points: dict[float, PointResult] = {}
    for record in read_jsonl(run_dir / "sweep.jsonl"):
        point = PointResult(**{k: v for k, v in record.items() if k in names})
        points[point.level_percent] = point
    return list(points.values())


def resume_state(
    resume_run: str | Path, config: SweepConfig
) -> tuple[SweepConfig, dict[float, PointResult]]:
    """The saved sweep's config (keeping this call's device settings) and its finished points."""
    run_dir = Path(resume_run)
    if not (run_dir / "config.json").is_file():
        raise PrunelabError(f"cannot resume {run_dir}: it holds no config.json of a sweep run")
    kind = load_run(run_dir).kind
    if kind not in ("sweep", "find"):
        raise PrunelabError(f"cannot resume {run_dir}: it is a {kind} run, not a sweep")
    saved = SweepConfig.from_dict(read_json(run_dir / "config.json"))
    keep = ("device", "precision", "channels_last", "eval_batch_size", "data_dir")
    saved = dataclasses.replace(saved, **{k: getattr(config, k) for k in keep})
    done = {p.level_percent: p for p in points_from_jsonl(run_dir)}
    return saved, done


def read_sweep(run_dir: str | Path) -> SweepResult:
    """A finished or interrupted sweep run, read back from its files."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise PrunelabError(f"{run_dir} is not a sweep run (no config.json)")
    config = SweepConfig.from_dict(read_json(run_dir / "config.json"))
    record = load_run(run_dir)
    summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    return make_result(
        config,
        str(run_dir),
        points_from_jsonl(run_dir),
        record.status,
        record.synthetic,
        read_correct(run_dir),
        summary.get("test_images"),
    )


@dataclass
class SensitivityResult:
    run_dir: str
    layers: list[str]
    levels: list[float]
    baseline_accuracy: float | None
    accuracy: dict[str, dict[float, float]]  # layer -> level -> top-1 %
    status: str = "completed"


def read_sensitivity(run_dir: str | Path) -> SensitivityResult:
    """A sensitivity run read back from its files (finished or interrupted)."""
    run_dir = Path(run_dir)
    summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    table: dict[str, dict[float, float]] = {}
    for row in read_jsonl(run_dir / "sensitivity.jsonl"):
        table.setdefault(row["layer"], {})[float(row["level_percent"])] = row["accuracy"]
    levels = sorted({level for row in table.values() for level in row})
    status = load_run(run_dir).status if (run_dir / "run.json").is_file() else "unknown"
    return SensitivityResult(
        str(run_dir), list(table), levels, summary.get("baseline_accuracy"), table, status
    )

"""A sweep's and a sensitivity run's files: sweep.jsonl (one point a line, appended as measured),
sweep.csv, sensitivity.jsonl/.csv and summary.json; read back for reports and resuming."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.config import SweepConfig
from engine.errors import PrunelabError
from engine.runs import load_run, read_json, read_jsonl, write_csv, write_json
from engine.sweep_answer import PointResult, SweepResult, make_result

CSV_COLUMNS = (
    "level_percent",
    "sparsity_percent",
    "total_sparsity_percent",
    "nonzero_parameters",
    "accuracy",
    "accuracy_bn_recalibrated",
    "loss",
    "dense_bytes",
    "sparse_bytes",
    "seconds",
    "evaluated",
    "refined",
)


def write_outputs(run_dir: Path, result: SweepResult) -> None:
    write_csv(run_dir / "sweep.csv", [asdict(p) for p in result.points], CSV_COLUMNS)
    write_json(run_dir / "summary.json", result.summary())


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
    return make_result(
        config, str(run_dir), points_from_jsonl(run_dir), record.status, record.synthetic
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

"""Run folders: one per train/sweep/... run under `runs/`, holding plain JSON, JSONL and CSV.

Every file is either appended line by line and flushed (metrics.jsonl, sweep.jsonl) or written
atomically (run.json, config.json, summary.json, *.csv), so a killed process leaves each file
whole. Runs started from the TUI and the CLI are recorded identically.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import PrunelabError

RUN_FILE = "run.json"


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temp file in the same folder + fsync + rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one line and flush it to disk before returning."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=_jsonable) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All complete records; a half-written last line (a killed process) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    atomic_write_text(path, buffer.getvalue())


def new_run_dir(root: str | Path, kind: str, model: str) -> Path:
    """A fresh folder `<root>/<YYYYmmdd-HHMMSS>-<kind>-<model>` (suffixed if taken)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{kind}-{model}"
    for n in range(1000):
        candidate = root / (base if n == 0 else f"{base}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder under {root}")


@dataclass
class RunRecord:
    """What `run.json` holds: enough to list, compare and resume runs."""

    kind: str
    model: str
    created: str
    status: str = "running"
    device: str = ""
    data: str = ""
    synthetic: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    finished: str = ""
    reason: str = ""

    def save(self, run_dir: str | Path) -> None:
        write_json(Path(run_dir) / RUN_FILE, self.__dict__)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def start_run(
    root: str | Path,
    kind: str,
    model: str,
    config: dict[str, Any],
    *,
    device: str,
    data: str,
    synthetic: bool,
) -> tuple[Path, RunRecord]:
    run_dir = new_run_dir(root, kind, model)
    record = RunRecord(
        kind=kind,
        model=model,
        created=now_iso(),
        device=device,
        data=data,
        synthetic=synthetic,
        config=config,
    )
    record.save(run_dir)
    write_json(run_dir / "config.json", config)
    return run_dir, record


def load_run(run_dir: str | Path) -> RunRecord:
    data = read_json(Path(run_dir) / RUN_FILE)
    known = set(RunRecord.__dataclass_fields__)
    return RunRecord(**{k: v for k, v in data.items() if k in known})


@dataclass
class RunListing:
    path: Path
    record: RunRecord


def list_runs(root: str | Path) -> list[RunListing]:
    """Runs under `root`, newest first; folders without a readable run.json are skipped."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        if (child / RUN_FILE).is_file():
            try:
                found.append(RunListing(child, load_run(child)))
            except (OSError, ValueError, TypeError):
                continue
    found.sort(key=lambda r: (r.record.created, r.path.name), reverse=True)
    return found


def resolve_run(root: str | Path, name: str) -> Path:
    """A run given as a path or as a folder name under `root` (a unique prefix is enough)."""
    path = Path(name)
    if (path / RUN_FILE).is_file():
        return path
    root = Path(root)
    if (root / name / RUN_FILE).is_file():
        return root / name
    matches = [r.path for r in list_runs(root) if r.path.name.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise PrunelabError(
            f"run not found: {name} (see `prunelab runs` for the runs under {root})"
        )
    raise PrunelabError(f"run {name!r} is ambiguous: {', '.join(m.name for m in matches[:5])}")

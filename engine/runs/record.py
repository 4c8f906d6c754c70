"""Run folders: one per train/sweep/... run under `runs/`, holding plain JSON, JSONL and CSV.

Every file is either appended line by line and flushed (metrics.jsonl, sweep.jsonl) or written
atomically (run.json, config.json, summary.json, *.csv), so a killed process leaves each file
whole (engine.runs.files). Runs started from the TUI and the CLI are recorded identically.

Reading is forgiving: a run folder damaged in any way is still listed, with what is wrong named
in `RunListing.damage`, and a run whose process is gone while it says "running" reads as
"interrupted". One process writes a run folder at a time (`WriterLock`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args

from engine.config import TrainConfig
from engine.errors import PrunelabError
from engine.events import RunKind
from engine.options import field_meta
from engine.runs.files import (
    RunFileError,
    append_line,
    atomic_write_text,
    file_sha256,
    process_start,
    read_json_object,
    read_jsonl_checked,
)
from engine.runs.lock import LOCK_FILE, RunBusyError, WriterLock, writer_alive  # noqa: F401

RUN_FILE = "run.json"
RUN_KINDS: tuple[str, ...] = get_args(RunKind)  # one list of kinds: engine.events.RunKind
SWEEP_KINDS = ("sweep", "find")  # the kinds of run that hold a sweep's levels
# Files that make a folder a run even when run.json is missing or damaged.
RUN_FILES = (RUN_FILE, "config.json", "metrics.jsonl", "sweep.jsonl", "sensitivity.jsonl")


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object file; RunFileError names what is wrong (empty, torn, not an object, ...)."""
    return read_json_object(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one record as a line, flushed; a torn last line is ended first, never continued."""
    append_line(path, json.dumps(record, default=_jsonable))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All whole records; torn or foreign lines are skipped (see `read_jsonl_checked`)."""
    return read_jsonl_checked(path).records


def write_jsonl(path: str | Path, records: Sequence[dict[str, Any]]) -> None:
    """Replace a JSONL file atomically (e.g. history cut back to a resumed checkpoint)."""
    lines = "".join(json.dumps(r, default=_jsonable) + "\n" for r in records)
    atomic_write_text(path, lines)


def read_metrics(run_dir: str | Path) -> tuple[list[dict[str, Any]], str]:
    """A training run's epochs, one per epoch (the last line for an epoch wins, as a resumed
    run rewrites it), in order; and '' or what was damaged (skipped lines, bad values)."""
    path = Path(run_dir) / "metrics.jsonl"
    read = read_jsonl_checked(path)
    problems = [read.damage(path)] if read.skipped else []
    by_epoch: dict[int, dict[str, Any]] = {}
    unusable: list[int] = []
    for number, entry in enumerate(read.records, start=1):
        epoch = entry.get("epoch")
        whole = isinstance(epoch, int) and not isinstance(epoch, bool) and 0 <= epoch <= MAX_EPOCH
        if not whole or not is_percent(entry, "test_acc"):
            unusable.append(number)
            continue
        if "train_acc" in entry and not is_percent(entry, "train_acc"):
            entry = {k: v for k, v in entry.items() if k != "train_acc"}  # the rest is fine
        by_epoch[epoch] = entry
    if unusable:
        more = f" and {len(unusable) - 3} more" if len(unusable) > 3 else ""
        shown = ", ".join(map(str, unusable[:3])) + more
        problems.append(f"metrics.jsonl: record {shown} has no usable epoch/test_acc")
    return [by_epoch[e] for e in sorted(by_epoch)], "; ".join(problems)


MAX_EPOCH = field_meta(TrainConfig, "epochs")["maximum"]  # a record beyond it is not an epoch


def is_percent(entry: dict[str, Any], key: str) -> bool:
    """Whether entry[key] is a number from 0 to 100 (not "NaN", not 1e308: a chart scales by it)."""
    value = entry.get(key)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100


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
    check_run_root(root, create=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{kind}-{folder_label(model)}"
    for n in range(1000):
        candidate = root / (base if n == 0 else f"{base}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunFileError(f"cannot create a run folder in {root}: {exc.strerror}") from None
    raise RunFileError(f"could not create a run folder under {root}")


def folder_label(model: str) -> str:
    """A model spec as part of a folder name: `tv:resnet18` -> `tv-resnet18`, `nets/my.py:build`
    -> `my.py-build` (the spec itself is in run.json)."""
    text = model.split("(", 1)[0]
    source, _, function = text.rpartition(":")
    if source == "memory":  # the Python API's module: its class name
        text = function.rsplit("-", 1)[0]
    elif source and source != "tv":
        text = f"{Path(source).name}-{function}"
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.")[:48] or "model"


def check_run_root(root: str | Path, *, create: bool) -> None:
    """The folder that holds runs: a folder (created when asked) we can write into."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise RunFileError(f"{root} is a file, not a folder for runs")
    if not create:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFileError(f"cannot create {root}: {exc.strerror or exc}") from None


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
    world_size: int = 1  # ranks that ran it (torchrun); 1 = one process
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    finished: str = ""
    reason: str = ""
    pid: int = 0  # the process writing the run, while it runs
    pid_started: float = 0.0  # when that process started: a reused PID is not the writer
    host: str = ""
    checkpoints: dict[str, str] = field(default_factory=dict)  # path -> sha256 of what we wrote
    sources: dict[str, str] = field(default_factory=dict)  # path -> sha256 of what we measured
    name: str = ""  # the user's name for the run (--name); the folder keeps its timestamp
    note: str = ""  # the user's note (--note)

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
    world_size: int = 1,
) -> tuple[Path, RunRecord]:
    run_dir = new_run_dir(root, kind, model)
    record = RunRecord(
        kind=kind,
        model=model,
        created=now_iso(),
        device=device,
        data=data,
        synthetic=synthetic,
        world_size=world_size,
        config=config,
        pid=os.getpid(),
        pid_started=process_start(os.getpid()) or 0.0,
        host=socket.gethostname(),
        name=str(config.get("name") or ""),
        note=str(config.get("note") or ""),
    )
    record.save(run_dir)
    write_json(run_dir / "config.json", config)
    return run_dir, record


def source_warning(run_dir: str | Path, path: str) -> str:
    """'' or a warning when checkpoint `path` is not the file the run at `run_dir` measured
    (run.json's `sources` recorded another SHA-256 for it)."""
    recorded = read_run(run_dir).record.sources.get(path)
    try:
        if not recorded or file_sha256(path) == recorded:
            return ""
    except OSError:
        return ""
    return (
        f"{path} is not the file run {Path(run_dir).name} measured (its SHA-256 differs from the "
        "one in run.json): the weights exported may not be the ones the sweep measured"
    )


# --------------------------------------------------------------------------------------------
# Reading runs, whatever state they are in

_NAME = re.compile(r"^(\d{8})-(\d{6})-([a-z]+)-(.+?)(?:-\d+)?$")
_FIELD_TYPES = {f.name: f.type for f in fields(RunRecord)}


@dataclass
class RunListing:
    path: Path
    record: RunRecord
    damage: str = ""  # what is wrong with the folder's files; "" when whole


def _from_name(run_dir: Path) -> RunRecord:
    """What a run's folder name says (`YYYYmmdd-HHMMSS-kind-model`), for a damaged run.json."""
    match = _NAME.match(run_dir.name)
    if not match:
        return RunRecord(kind="unknown", model="unknown", created="", status="damaged")
    day, clock, kind, model = match.groups()
    created = f"{day[:4]}-{day[4:6]}-{day[6:]}T{clock[:2]}:{clock[2:4]}:{clock[4:]}"
    return RunRecord(kind=kind, model=model, created=created, status="damaged")


def _typed(name: str, value: Any) -> bool:
    kind = _FIELD_TYPES[name]
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, dict)


def read_run(run_dir: str | Path) -> RunListing:
    """A run's record however damaged its run.json is: each unusable field falls back to what
    the folder name says (or its default) and `damage` names every problem. Never raises."""
    run_dir = Path(run_dir)
    fallback = _from_name(run_dir)
    try:
        data = read_json_object(run_dir / RUN_FILE)
    except RunFileError as exc:
        return RunListing(run_dir, fallback, f"{exc}")
    values, problems = {}, []
    for name in _FIELD_TYPES:
        if name not in data:
            if name in ("kind", "model", "created", "status"):
                problems.append(f"no {name!r}")
            continue
        if _typed(name, data[name]):
            values[name] = data[name]
        else:
            problems.append(f"{name!r} is {json.dumps(data[name])[:40]}")
    record = RunRecord(**{**fallback.__dict__, "status": "unknown", **values})
    damage = f"{RUN_FILE}: " + ", ".join(problems) if problems else ""
    alive = writer_alive(run_dir, record.pid, record.host, record.pid_started)
    if record.status == "running" and not alive:
        record.status = "interrupted"
        record.reason = record.reason or "its process ended without finishing"
    return RunListing(run_dir, record, damage)


def load_run(run_dir: str | Path) -> RunRecord:
    """The record of a run folder (see `read_run`: damaged fields are replaced, not fatal)."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise PrunelabError(f"{run_dir} is not a run folder (it holds no {RUN_FILE})")
    return read_run(run_dir).record


def is_run_dir(path: Path) -> bool:
    """A folder holding one of RUN_FILES (a run.json that is a FIFO or a link to a device too:
    listed as damaged, never read)."""
    return path.is_dir() and any(os.path.lexists(path / name) for name in RUN_FILES)


def list_runs(root: str | Path) -> list[RunListing]:
    """Every run under `root`, newest first, damaged ones included (with their damage named)."""
    root = Path(root)
    if not root.is_dir():
        return []
    try:
        children = list(root.iterdir())
    except OSError:
        return []
    found = [read_run(child) for child in children if is_run_dir(child)]
    found.sort(key=lambda r: (r.record.created, r.path.name), reverse=True)
    return found


def resolve_run(root: str | Path, name: str) -> Path:
    """A run given as a path or as a folder name under `root` (a unique prefix is enough)."""
    if not str(name).strip():
        raise PrunelabError(
            "the run name is empty: give a run folder or its name (see `prunelab runs`)"
        )
    path = Path(name)
    if is_run_dir(path):
        return path
    root = Path(root)
    if is_run_dir(root / name):
        return root / name
    matches = [r.path for r in list_runs(root) if r.path.name.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise PrunelabError(
            f"run not found: {name} (see `prunelab runs` for the runs under {root})"
        )
    raise PrunelabError(f"run {name!r} is ambiguous: {', '.join(m.name for m in matches[:5])}")


def changed_checkpoints(record: RunRecord) -> list[str]:
    """The checkpoints a run wrote that now hold something else (their hash differs)."""
    changed = []
    for path, recorded in record.checkpoints.items():
        try:
            if file_sha256(path) != recorded:
                changed.append(path)
        except OSError:
            continue  # deleted or unreadable: nothing to mistake for this run's weights
    return changed


def checkpoint_warning(path: str | Path, run_dir: Any) -> str:
    """'' or a warning when the run that wrote checkpoint `path` recorded another hash for it."""
    if not isinstance(run_dir, str) or not is_run_dir(Path(run_dir)):
        return ""
    record = read_run(run_dir).record
    target = Path(path).resolve()
    recorded = {Path(k).resolve(): v for k, v in record.checkpoints.items()}.get(target)
    try:
        if recorded is None or file_sha256(path) == recorded:
            return ""
    except OSError:
        return ""
    return (
        f"{path} is not what run {Path(run_dir).name} wrote there (its SHA-256 differs from "
        "the one in run.json): it was overwritten or changed since"
    )

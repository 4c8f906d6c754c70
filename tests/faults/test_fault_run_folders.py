"""Items 1, 2, 8, 10 of the fault campaign: damaged run folders, torn JSONL lines, one writer
per run, leftovers of killed processes. Engine level; the CLI side is in test_fault_cli.py."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from injector import dead_pid

from engine.runs.files import append_line, read_jsonl_checked, remove_stale_temp_files
from engine.runs.record import (
    LOCK_FILE,
    RunBusyError,
    WriterLock,
    list_runs,
    load_run,
    read_metrics,
    read_run,
    resolve_run,
)

GOOD = {
    "kind": "train",
    "model": "resnet20",
    "created": "2026-01-01T00:00:00",
    "status": "completed",
}

# The 16 kinds of damage: (folder name, {file: bytes}).
DAMAGES: dict[str, dict[str, bytes]] = {
    "list": {"run.json": b"[1,2,3]"},
    "created-int": {"run.json": json.dumps({**GOOD, "created": 1}).encode()},
    "created-null": {"run.json": json.dumps({**GOOD, "created": None}).encode()},
    "half": {"run.json": json.dumps(GOOD).encode()[:25]},
    "empty": {"run.json": b""},
    "garbage": {"run.json": b"\x00\x01garbage\xff"},
    "number": {"run.json": b"42"},
    "missing-fields": {"run.json": b'{"status": "completed"}'},
    "non-utf8": {"run.json": b'{"kind": "train\xff\xfe"}'},
    "bad-config": {"run.json": json.dumps(GOOD).encode(), "config.json": b"{{{"},
    "string-metric": {
        "run.json": json.dumps(GOOD).encode(),
        "metrics.jsonl": b'{"epoch": 1, "test_acc": 50.0}\n"just a string"\n',
    },
    "nan-accuracy": {
        "run.json": json.dumps(GOOD).encode(),
        "metrics.jsonl": b'{"epoch": 1, "test_acc": "NaN"}\n',
    },
    "torn-line": {
        "run.json": json.dumps(GOOD).encode(),
        "metrics.jsonl": b'{"epoch": 1, "test_acc": 50.0}\n{"epoch": 2, "te',
    },
    "no-run-json": {"config.json": b"{}", "metrics.jsonl": b'{"epoch": 1, "test_acc": 9.0}\n'},
    "wrong-types": {"run.json": json.dumps({**GOOD, "summary": [1], "synthetic": "yes"}).encode()},
    "duplicate-epochs": {
        "run.json": json.dumps(GOOD).encode(),
        "metrics.jsonl": b"".join(
            json.dumps({"epoch": e, "test_acc": float(e)}).encode() + b"\n" for e in (1, 2, 2, 3)
        ),
    },
}


def make_damaged(root: Path) -> list[Path]:
    folders = []
    for n, (name, files) in enumerate(DAMAGES.items()):
        folder = root / f"20260101-0000{n:02d}-train-{name}"
        folder.mkdir(parents=True)
        for file, data in files.items():
            (folder / file).write_bytes(data)
        folders.append(folder)
    return folders


def test_every_damaged_run_is_listed_with_its_damage(tmp_path: Path) -> None:
    make_damaged(tmp_path)
    listings = list_runs(tmp_path)
    assert len(listings) == len(DAMAGES), "nothing silently left out"
    by_name = {item.path.name.split("-train-")[1]: item for item in listings}
    for name in ("list", "half", "empty", "garbage", "number", "non-utf8", "no-run-json"):
        assert by_name[name].damage, name
        assert by_name[name].record.status == "damaged"
    assert "not a JSON object" in by_name["list"].damage
    assert "empty" in by_name["empty"].damage
    assert "half-written" in by_name["half"].damage
    assert "UTF-8" in by_name["non-utf8"].damage
    assert "'created' is 1" in by_name["created-int"].damage
    assert "no 'kind'" in by_name["missing-fields"].damage
    # the folder name still tells kind, model and date
    assert by_name["empty"].record.kind == "train" and by_name["empty"].record.created
    for item in listings:
        assert isinstance(item.record.created, str) and isinstance(item.record.summary, dict)


def test_damaged_files_inside_a_run_are_skipped_and_named(tmp_path: Path) -> None:
    folders = {p.name.split("-train-")[1]: p for p in make_damaged(tmp_path)}
    history, damage = read_metrics(folders["string-metric"])
    assert [h["epoch"] for h in history] == [1] and "line 2" in damage
    history, damage = read_metrics(folders["nan-accuracy"])
    assert history == [] and "record 1" in damage
    history, damage = read_metrics(folders["torn-line"])
    assert [h["epoch"] for h in history] == [1] and "torn" in damage
    history, damage = read_metrics(folders["duplicate-epochs"])
    assert [h["epoch"] for h in history] == [1, 2, 3] and damage == ""
    assert resolve_run(tmp_path, folders["no-run-json"].name) == folders["no-run-json"]
    assert load_run(folders["garbage"]).status == "damaged"


def test_append_after_a_torn_tail_starts_a_fresh_line(tmp_path: Path) -> None:
    path = tmp_path / "sweep.jsonl"
    path.write_bytes(b'{"level_percent": 0}\n{"level_perc')  # a full disk tore this line
    append_line(path, json.dumps({"level_percent": 5}))
    read = read_jsonl_checked(path)
    assert [r["level_percent"] for r in read.records] == [0, 5], "not glued to the fragment"
    assert read.skipped == ["line 2: torn or not JSON"]
    assert "skipped 1 damaged line" in read.damage(path)


def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with WriterLock(run), pytest.raises(RunBusyError, match=f"PID {os.getpid()}"):
        WriterLock(run).acquire()
    # a writer killed by SIGKILL leaves its lock file; the kernel has dropped its flock
    (run / LOCK_FILE).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    with WriterLock(run):
        assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_run_whose_process_died_reads_as_interrupted(tmp_path: Path) -> None:
    run = tmp_path / "20260101-000000-train-resnet20"
    run.mkdir()
    record = {**GOOD, "status": "running", "pid": dead_pid(), "host": socket.gethostname()}
    (run / "run.json").write_text(json.dumps(record))
    assert read_run(run).record.status == "interrupted"
    (run / "run.json").write_text(json.dumps({**record, "pid": os.getpid()}))
    assert read_run(run).record.status == "running"


def test_temp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / f".x_ckpt_epoch2.pth.{dead_pid()}.0123abcd.tmp"
    mine = tmp_path / f".x_ckpt_epoch4.pth.{os.getpid()}.0123abcd.tmp"
    other = tmp_path / "notes.tmp"
    for p in (stale, mine, other):
        p.write_bytes(b"x")
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert mine.exists() and other.exists()

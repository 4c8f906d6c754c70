"""Issue 23, items 1, 2, 5 and 6: hostile run folders. Markup and terminal escapes in names and
reasons are shown as text; a deeply nested, oversized, mistyped or endless file damages its own
run only; `runs`, `report` and the Runs screen list every other run and never wait on a file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from textual.widgets import DataTable, Static
from typer.testing import CliRunner

from engine.runs.files import read_jsonl_checked
from engine.runs.lifecycle import list_run_infos, read_run_info
from engine.runs.record import read_metrics, read_run
from engine.runs.summaries import TrainSummary
from engine.runs.text import printable
from tui import cli
from tui.app import PrunelabApp
from tui.safe import markup

GLOO = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed [/b]"
)
GOOD = {"kind": "train", "model": "resnet20", "created": "2026-01-01T00:00:00"}


def _run(root: Path, name: str, record: dict, files: dict[str, bytes] | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(record))
    for file, data in (files or {}).items():
        (folder / file).write_bytes(data)
    return folder


def hostile_runs(root: Path) -> dict[str, Path]:
    """One healthy run and one run per hostile thing, each built here, all small."""
    metrics = b'{"epoch": 1, "test_acc": 50.0, "train_acc": 40.0}\n'
    found = {
        "good": _run(root, "20260101-000000-train-resnet20", {**GOOD, "status": "completed"}),
        "gloo": _run(
            root, "20260101-000001-train-resnet20", {**GOOD, "status": "failed", "reason": GLOO}
        ),
        "escape-name": _run(root, "20260101-000002-train-\x1b[2Jx", {**GOOD, "status": "failed"}),
        "escape-model": _run(
            root,
            "20260101-000003-train-resnet20",
            {**GOOD, "model": "\x1b[31mred\x1b]0;title\x07", "status": "completed"},
        ),
        "nested": _run(root, "20260101-000004-train-resnet20", {}),
        "nan-summary": _run(
            root,
            "20260101-000005-train-resnet20",
            {**GOOD, "status": "completed", "summary": {"final_test_acc": "NaN"}},
            {"metrics.jsonl": metrics},
        ),
        "huge-metric": _run(
            root,
            "20260101-000006-train-resnet20",
            {**GOOD, "status": "completed"},
            {"metrics.jsonl": metrics + b'{"epoch": 2, "test_acc": 1e308}\n'},
        ),
        "fifo-metrics": _run(root, "20260101-000007-train-resnet20", {**GOOD, "status": "ok"}),
        "long-model": _run(
            root, "20260101-000008-train-resnet20", {**GOOD, "model": "m" * 100_000}
        ),
    }
    (found["nested"] / "run.json").write_text('{"kind": ' + "[" * 100_000 + "]" * 100_000 + "}")
    os.mkfifo(found["fifo-metrics"] / "metrics.jsonl")
    zero = root / "20260101-000009-train-resnet20"
    zero.mkdir()
    (zero / "run.json").symlink_to("/dev/zero")
    found["zero-link"] = zero
    return found


def invoke(*args: object):
    env = {"COLUMNS": "80", "NO_COLOR": "1", "FORCE_COLOR": None}
    return CliRunner(env=env).invoke(cli.app, [str(a) for a in args])


def test_printable_removes_escapes_and_controls_and_caps_length() -> None:
    assert printable("a\x1b[2Jb\x1b]0;t\x07c\x07\x9b31md\u202ee") == "abcde"
    assert printable("x" * 10_000, 40).count("x") == 39
    assert markup(GLOO).startswith("\\[/__w")


def test_runs_lists_every_hostile_run_as_text(tmp_path: Path) -> None:
    found = hostile_runs(tmp_path)
    start = time.monotonic()
    result = invoke("runs", "--run-dir", tmp_path)
    assert time.monotonic() - start < 10, "no file is waited on"
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "unexpected" not in result.output
    assert "Connection closed [/b]" in result.output  # the reason, as written
    table = result.stdout.split("\ndamaged: ")[0].splitlines()
    assert all(len(line) <= 80 for line in table), "long fields are elided in the table"
    wide = CliRunner(env={"COLUMNS": "130"}).invoke(cli.app, ["runs", "--run-dir", str(tmp_path)])
    assert "m" * 40 not in wide.stdout and max(map(len, wide.stdout.splitlines())) < 2100
    for name in ("good", "gloo", "nan-summary", "huge-metric", "fifo-metrics"):
        assert found[name].name in result.stdout
    damaged = [line for line in result.stdout.splitlines() if line.startswith("damaged: ")]
    assert any("nests deeper than" in line for line in damaged)
    assert any("not a regular file" in line for line in damaged)  # the /dev/zero link


def test_report_of_a_hostile_run_names_it_and_others_still_report(tmp_path: Path) -> None:
    found = hostile_runs(tmp_path)
    for name in ("nested", "fifo-metrics", "huge-metric", "nan-summary", "zero-link", "gloo"):
        start = time.monotonic()
        result = invoke("report", found[name], "--run-dir", tmp_path)
        assert time.monotonic() - start < 10
        assert result.exit_code in (0, 1), result.output
        assert "unexpected" not in result.output and "\x1b" not in result.output
    fifo = invoke("report", found["fifo-metrics"], "--run-dir", tmp_path)
    assert "metrics.jsonl is a named pipe" in fifo.output


def test_engine_reads_tolerate_wrong_types_and_huge_values(tmp_path: Path) -> None:
    found = hostile_runs(tmp_path)
    assert len(list_run_infos(tmp_path)) == len(found)
    summary = read_run_info(found["nan-summary"]).summary
    assert isinstance(summary, TrainSummary) and summary.final_test_acc is None
    epochs, damage = read_metrics(found["huge-metric"])
    assert [e["epoch"] for e in epochs] == [1] and "record 2" in damage
    assert "nests deeper than 64" in read_run(found["nested"]).damage


def test_run_json_and_jsonl_are_read_within_their_limits(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PRUNELAB_MAX_JSON_MB", "0.01")
    monkeypatch.setenv("PRUNELAB_MAX_JSONL_MB", "0.01")
    run = _run(tmp_path, "20260101-000000-train-big", {**GOOD, "reason": "r" * 20_000})
    damage = read_run(run).damage
    assert "limit 0.01 MB; raise it with PRUNELAB_MAX_JSON_MB" in damage
    lines = b"".join(b'{"epoch": %d, "test_acc": 1.0}\n' % i for i in range(1, 2001))
    (run / "metrics.jsonl").write_bytes(lines)
    read = read_jsonl_checked(run / "metrics.jsonl")
    assert read.records[-1]["epoch"] == 2000 and len(read.records) < 2000  # the tail
    assert "PRUNELAB_MAX_JSONL_MB" in read.skipped[0]


async def test_the_runs_screen_shows_every_hostile_run(tmp_path: Path) -> None:
    found = hostile_runs(tmp_path / "runs")
    app = PrunelabApp(run_root=str(tmp_path / "runs"), devices=["cpu"], mode="train")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        screen = app.runs_screen
        table = screen.query_one("#runs-table", DataTable)
        for _ in range(100):
            if table.row_count == len(found):
                break
            await pilot.pause(0.05)
        assert table.row_count == len(found)
        rows = [" ".join(map(str, table.get_row_at(i))) for i in range(table.row_count)]
        gloo = [row.key.value for row in table.ordered_rows].index(found["gloo"].name)
        assert " failed" in rows[gloo], rows
        assert not any("\x1b" in row for row in rows)
        seen: list[str] = []
        for _ in range(table.row_count):  # every run's details and chart render
            await pilot.press("down")
            await pilot.pause()
            assert app.screen is screen and app.is_running
            shown = str(screen.query_one("#run-details", Static).render())
            assert "\x1b" not in shown
            seen.append(shown)
        assert any("pair.cc:561] Connection closed [/b]" in text for text in seen)


def test_metrics_beyond_any_epoch_are_skipped_and_summarised(tmp_path: Path) -> None:
    run = _run(tmp_path, "20260101-000000-train-many", {**GOOD, "status": "completed"})
    line = b'{"epoch": %d, "test_acc": 50.0}\n'
    (run / "metrics.jsonl").write_bytes(b"".join(line % i for i in range(9_990, 10_010)))
    epochs, damage = read_metrics(run)
    assert [e["epoch"] for e in epochs] == list(range(9_990, 10_001))
    assert "record 12, 13, 14 and 6 more has no usable" in damage

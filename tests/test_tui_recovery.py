"""Pilot tests of prune-and-recover in the app: the Fine-tune screen runs and reports."""

from __future__ import annotations

from test_tui import SIZE, TINY, finish_job, make_app, table_rows, tiny_checkpoint  # noqa: F401
from textual.widgets import DataTable

from engine.runs import list_runs


async def test_finetune_screen_prunes_then_recovers(tmp_path, tiny_checkpoint):  # noqa: F811
    app = make_app(tmp_path, mode="finetune")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.finetune_screen
        values = {**TINY, "epochs": 1, "checkpoint": tiny_checkpoint, "level": 50.0}
        screen.form.set_values({**values, "method": "global"})
        await pilot.pause()
        await pilot.press("f5")
        await pilot.pause()
        assert screen.status != "idle", "F5 started the fine-tuning"
        await finish_job(app, pilot)
        assert screen.status == "completed"
        rows = table_rows(screen.query_one("#epoch-table", DataTable))
        assert [r[0] for r in rows] == ["1"] and rows[0][-1] == "50.0", "sparsity column"
        assert "one-shot" in screen.progress_text and "sparsity 50.00%" in screen.progress_text
        (run,) = list_runs(tmp_path / "runs")
        assert run.record.kind == "finetune" and run.record.summary["level_percent"] == 50

"""Pilot tests of prune-and-recover in the app: the Fine-tune screen runs and reports."""

from __future__ import annotations

from test_tui import SIZE, TINY, finish_job, make_app, table_rows, tiny_checkpoint  # noqa: F401
from textual.widgets import DataTable

from engine.runs.record import list_runs


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


async def test_recovery_sweep_draws_both_curves(tmp_path, tiny_checkpoint):  # noqa: F811
    from tui.widgets.charts import SweepChart

    app = make_app(tmp_path, mode="sweep")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sweep_screen
        values = {**TINY, "checkpoint": tiny_checkpoint, "levels": "0,80", "finetune_epochs": 1}
        screen.form.set_values(values)
        await pilot.pause()
        await pilot.press("f5")
        await pilot.pause()
        await finish_job(app, pilot)
        chart = screen.query_one(SweepChart)
        assert len(chart.points) == 2 and len(chart.recovered) == 2
        rows = table_rows(screen.query_one("#level-table", DataTable))
        assert all(row[4] not in ("", "-") for row in rows), "the tuned% column is filled"
        assert screen.sentence.startswith("one-shot: ")

"""Pilot tests of the Runs screen (issue 22): runs told apart, `/` filter, export of a sweep's
level or a fine-tuned model from its row, the export dialog's reasons and output path.

Tiny runs: ResNet-20 on synthetic images on the CPU, at 80x24.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_tui import SIZE, TINY, finish_job, make_app, table_rows, wait_for
from textual.widgets import DataTable, Input, Select, Static
from tiny_runs import next_second

from engine.config import SweepConfig
from engine.runs.record import list_runs
from engine.sweep.run import run_sweep
from engine.training.finetune import finetune
from engine.training.finetune_config import FinetuneConfig
from tui.screens.dialogs import MessageDialog
from tui.screens.export_dialog import ExportDialog

SWEEP_FIELDS = {k: v for k, v in TINY.items() if k in SweepConfig.__dataclass_fields__}


@pytest.fixture(scope="module")
def three_runs(trained_checkpoint, tmp_path_factory) -> Path:
    """A layerwise and a global sweep of one checkpoint, then a fine-tune of it (newest)."""
    root = tmp_path_factory.mktemp("three")
    checkpoint = root / "cifar10_resnet20_ckpt_epoch2.pth"
    shutil.copy(trained_checkpoint, checkpoint)
    runs = root / "runs"
    for method in ("layerwise", "global"):
        next_second()
        run_sweep(
            SweepConfig(
                **SWEEP_FIELDS,
                checkpoint=str(checkpoint),
                levels=(0.0, 50.0),
                method=method,
                run_dir=str(runs),
                name=f"{method} try",
            )
        )
    tuned = FinetuneConfig(  # TINY's 2 epochs
        **{k: v for k, v in TINY.items() if k in FinetuneConfig.__dataclass_fields__},
        checkpoint=str(checkpoint),
        level=50.0,
        method="global",
        run_dir=str(runs),
        checkpoint_dir=str(root / "tuned"),
        note="one epoch",
    )
    next_second()
    assert finetune(tuned).status == "completed"
    return root


def column(table: DataTable, name: str) -> list[str]:
    names = [str(c.label) for c in table.ordered_columns]
    return [row[names.index(name)] for row in table_rows(table)]


async def test_runs_list_tells_sweeps_apart_and_filters(three_runs, tmp_path):
    """Method and checkpoint columns, the given name, the headline numbers; `/` keeps the runs
    whose text holds every word typed; more than 6 rows fit at 80x24."""
    app = make_app(three_runs, mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.runs_screen
        table = screen.query_one("#runs-table", DataTable)
        assert table.has_focus, "the list has the keys, not the hidden filter field"
        assert column(table, "pruning") == ["global", "global", "layerwise"]
        assert column(table, "run")[1:] == ["global try", "layerwise try"]
        assert all(cell.endswith("epoch2.pth") for cell in column(table, "checkpoint"))
        assert column(table, "level") == ["50%", *column(table, "level")[1:]]
        assert table.size.height - 1 > 6, "more than six rows visible at 80x24"
        details = str(screen.query_one("#run-details", Static).render())
        assert "note: one epoch" in details and "dense" in details  # the fine-tune's headline
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("space", "down", "space")  # the two sweeps overlaid
        await pilot.pause()
        legend = str(screen.query_one("#run-details", Static).render()).splitlines()[:3]
        assert legend[0].startswith("overlay")  # first: in view at 80x24, every series named
        assert "global try · global · cifar10_resnet20_ckpt_epoch2.pth" in legend[1]
        assert "layerwise try · layerwise" in legend[2]
        await pilot.press("slash")
        await pilot.press(*"layer")
        await pilot.pause()
        assert column(table, "run") == ["layerwise try"]
        assert screen.check_action("export", ()) is True
        await pilot.press("escape")
        await pilot.pause()
        assert table.row_count == 3 and table.has_focus


async def test_export_dialog_says_why_beside_the_field(three_runs, tmp_path):
    """slim on a layerwise sweep: the engine's reason under the format field, in the dialog's
    words (`method`, not `--method`), and nothing written; the output field says where the
    file would go."""
    app = make_app(three_runs, mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.runs_screen
        table = screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=2)  # the layerwise sweep
        table.focus()
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog))
        dialog = app.screen
        assert dialog.query_one("#export-level", Input).value == "0"  # its best level
        assert dialog.query_one("#export-output", Input).placeholder.endswith(".sparse.pth")
        dialog.query_one("#export-level", Input).value = "50"
        dialog.query_one("#export-format", Select).value = "slim"
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExportDialog), "an invalid choice keeps the dialog open"
        said = str(dialog.query_one("#export-error-format", Static).render())
        assert "slim removes whole channels" in said and "method structured" in said
        assert "--method" not in said
        assert dialog.query_one("#export-row-format").has_class("-invalid")
        await pilot.press("escape")
        assert not list(three_runs.glob("*layerwise50*"))


async def test_a_fine_tune_row_exports_and_the_cursor_stays(three_runs, tmp_path):
    """`e` on a fine-tune row writes its model at its own level; when the export's run appears
    at the top, the cursor and the details stay on the fine-tune."""
    app = make_app(three_runs, mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.runs_screen
        table = screen.query_one("#runs-table", DataTable)
        assert screen.selected().record.kind == "finetune"
        before = screen.selected().path
        table.focus()
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog))
        assert app.screen.query_one("#export-level", Input).disabled  # its own level only
        out_file = tmp_path / "tuned.sparse.pth"
        app.screen.query_one("#export-output", Input).value = str(out_file)
        await pilot.press("enter")
        await finish_job(app, pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, MessageDialog))
        await pilot.press("enter")
        await pilot.pause()
        assert out_file.is_file()
        assert list_runs(three_runs / "runs")[0].record.kind == "export"
        assert screen.selected().path == before, "the cursor stays on the fine-tune"
        details = str(screen.query_one("#run-details", Static).render())
        assert before.name in details


async def test_form_errors_name_fields_not_flags(tmp_path):
    """One rule, two phrasings: the engine says `needs --finetune-epochs N`, the Sweep form
    `needs finetune-epochs N`, the field the user sees."""
    from tui.widgets.config_form import Flag

    app = make_app(tmp_path, mode="sweep")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sweep_screen
        flag = screen.query_one("#f-cumulative", Flag)
        flag.value = True
        await pilot.pause()
        said = str(screen.query_one("#error-cumulative", Static).render())
        assert said == "needs finetune-epochs N (N >= 1)"
        assert "--" not in screen.form.first_problem()
        assert "name" in [row.field_name for row in screen.query("FieldRow")]

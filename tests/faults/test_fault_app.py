"""Item 1 of the fault campaign in the app: F4 on a runs folder damaged in every known way lists
every run, names the damage, and shows each run's details without leaving the app."""

from __future__ import annotations

from pathlib import Path

from test_fault_run_folders import DAMAGES, make_damaged
from textual.widgets import DataTable, Static

from tui.app import PrunelabApp


async def test_the_runs_screen_lists_every_damaged_run(tmp_path: Path) -> None:
    folders = make_damaged(tmp_path / "runs")
    app = PrunelabApp(run_root=str(tmp_path / "runs"), devices=["cpu"], mode="train")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        screen = app.runs_screen
        table = screen.query_one("#runs-table", DataTable)
        for _ in range(100):
            if table.row_count == len(folders):
                break
            await pilot.pause(0.05)
        cells = [" ".join(map(str, table.get_row_at(i))) for i in range(table.row_count)]
        keys = {row.key.value for row in table.ordered_rows}  # a row per run folder
        assert {folder.name for folder in folders} <= keys
        assert sum("damaged: " in row for row in cells) >= len(DAMAGES) // 2
        for _ in range(table.row_count):  # every run's details render
            await pilot.press("down")
            await pilot.pause()
            assert app.screen is screen and app.is_running
        assert str(screen.query_one("#run-details", Static).render())

"""One flow from a sweep to fine-tuning, keys that do what they say and only then: Enter on a
level fine-tunes it with the sweep's settings, `l` reads the row's key, letters typed into a
field stay text, the palette offers what makes sense now, F7 is in the footer and the help.

No training: the screens are fed events, as the engine would send them.
"""

from __future__ import annotations

from pathlib import Path

from test_tui_charts import sweep_point
from textual.widgets import Select

from engine.config import SweepConfig
from engine.events import RunStarted, SweepFinished, SweepPoint
from engine.sweep.answer import PointResult, SweepResult
from tui.app import PrunelabApp
from tui.palette import PrunelabCommands
from tui.screens.dialogs import ConfirmDialog
from tui.screens.help import HELP_MARKDOWN
from tui.widgets.charts import SweepChart

SIZE = (80, 24)
SHARED = set(SweepPoint.__dataclass_fields__) & set(PointResult.__dataclass_fields__)


def make_app(tmp_path: Path, mode: str = "sweep") -> PrunelabApp:
    return PrunelabApp(
        run_root=str(tmp_path / "runs"),
        checkpoint_dir=str(tmp_path / "checkpoints"),
        devices=["auto", "cpu"],
        mode=mode,
    )


def screen_text(app: PrunelabApp) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


CONFIG = SweepConfig(
    checkpoint="checkpoints/net.pth",
    method="global",
    score="random",
    levels=(0.0, 50.0, 70.0, 90.0),
    test_subset=200,
)


async def feed(app: PrunelabApp, pilot, passed_over: float | None = None) -> None:
    """A finished global sweep; `passed_over` marks one level as the rule overruled it."""
    screen = app.sweep_screen
    screen.begin(CONFIG)
    screen.apply(RunStarted("sweep", "runs/s1", "cpu", "resnet20", 1000, CONFIG.to_dict()))
    curve = [(0.0, 90.0), (50.0, 89.5), (70.0, 88.0), (90.0, 40.0)]
    for i, (level, acc) in enumerate(curve, start=1):
        point = sweep_point(level, acc, index=i, total=len(curve))
        screen.apply(point)
    screen.apply(SweepFinished(90.0, 50.0, 89.5, 1.0, len(curve)))
    points = [
        PointResult(
            **{k: getattr(p, k) for k in SHARED}, passed_over=p.level_percent == passed_over
        )
        for p in screen.points
    ]
    result = SweepResult(
        "completed", "runs/s1", "resnet20", "global", points, 90.0, 1.0, 50.0, 89.5
    )
    screen.finish(result)
    await pilot.pause()


async def test_layers_on_a_passed_over_row_reads_the_row_key(tmp_path):
    """`70~` in the cell: the level comes from the row key (it raised ValueError)."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await feed(app, pilot, passed_over=70.0)
        screen = app.sweep_screen
        opened: list[float] = []
        screen._open_layer_view = lambda config, level: opened.append(level)
        table = screen.query_one("#level-table")
        table.focus()
        table.move_cursor(row=2)
        assert str(table.get_row_at(2)[0]).endswith("~")
        await pilot.press("l")
        assert opened == [70.0]


async def test_enter_on_a_level_row_fills_the_finetune_form(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await feed(app, pilot)
        table = app.sweep_screen.query_one("#level-table")
        table.focus()
        table.move_cursor(row=2)
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_mode == "finetune"
        values = app.finetune_screen.form.raw_values()
        assert values["checkpoint"] == CONFIG.checkpoint
        assert values["method"] == "global" and values["score"] == "random"
        assert float(values["level"]) == 70.0 and int(values["test_subset"]) == 200


async def test_letters_typed_into_a_dropdown_are_not_hotkeys(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await feed(app, pilot)
        screen = app.sweep_screen
        screen.action_toggle_form()  # the form was hidden while the sweep ran
        await pilot.pause()
        select = screen.form.query(Select).first()
        select.focus()
        await pilot.pause()
        zoomed = screen.query_one(SweepChart).zoomed
        opened: list[float] = []
        screen._open_layer_view = lambda config, level: opened.append(level)
        await pilot.press("z", "l", "f")
        assert screen.query_one(SweepChart).zoomed == zoomed
        assert not opened and not screen.has_class("-chart-full")
        screen.query_one("#level-table").focus()
        await pilot.press("z")
        assert screen.query_one(SweepChart).zoomed != zoomed


async def test_f_gives_the_chart_the_whole_screen_and_back(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await feed(app, pilot)
        chart = app.sweep_screen.query_one(SweepChart)
        before = chart.size.height
        await pilot.press("f")
        await pilot.pause()
        assert chart.size.height >= before + 7
        await pilot.press("f")
        await pilot.pause()
        assert chart.size.height == before


async def test_palette_offers_only_what_makes_sense_during_a_sweep(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await feed(app, pilot)
        app.job = "sweep"
        names = {name: help for name, help, _ in PrunelabCommands(app.screen)._commands()}
        assert "Fine-tune: stop" not in names
        assert "Train: start training" not in names
        assert "Sweep: stop the sweep" in names
        assert names["Sweep: stop the sweep"].endswith("(F6)"), "keys read from the bindings"
        app.job = None


async def test_f7_is_in_the_footer_and_the_help(tmp_path):
    app = make_app(tmp_path, mode="train")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "F7 Fine-tune" in footer.replace("f7", "F7"), footer
    assert "## Fine-tune" in HELP_MARKDOWN


async def test_finetune_form_starts_with_the_newest_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "old.pth").write_bytes(b"")
    newest = folder / "new.pth"
    newest.write_bytes(b"")
    import os

    os.utime(folder / "old.pth", (1, 1))
    app = make_app(tmp_path, mode="finetune")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.finetune_screen.form.raw_values()["checkpoint"] == str(newest)


async def test_stop_asks_in_plain_words(tmp_path):
    app = make_app(tmp_path, mode="train")
    async with app.run_test(size=SIZE) as pilot:
        app.job = "train"
        app.action_stop_job()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        assert app.screen.title_text == "Stop training?"
        app.screen.dismiss(False)
        app.job = None


async def test_the_progress_line_moves_while_a_level_is_measured(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sweep_screen
        screen.begin(CONFIG)
        screen.apply(RunStarted("sweep", "runs/s1", "cpu", "resnet20", 1000, CONFIG.to_dict()))
        screen.apply(sweep_point(0.0, 90.0, index=1, total=4))
        app.job, app.worker = "sweep", object()  # a running engine job
        screen._level_started -= 12
        screen._tick()
        assert "measuring level 50% for 12s" in screen.progress_text
        app.job, app.worker = None, None
        await pilot.pause()


LONG = "/data/shared/models/experiments/imagefolder_resnet20_ckpt_epoch2.pth"


async def test_a_long_path_keeps_its_file_name_in_the_form(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.sweep_screen.form.set_values({"checkpoint": LONG})
        await pilot.pause(0.2)
        lines = screen_text(app).splitlines()
        label = next(i for i, line in enumerate(lines) if line.startswith("checkpoint "))
        shown = lines[label + 1].split("▕")[0].strip()
        assert "…" in shown and shown.endswith("resnet20_ckpt_epoch2.pth"), shown
        assert shown.startswith("/data/"), "the start, then … then whole words of the end"


def test_answer_lines_and_toasts_never_cut_a_word_unmarked():
    from tui.widgets.text import fit_lines, toast_path

    sentence = " ".join(["the answer is wider than this line"] * 6)
    fitted = fit_lines(sentence, 30, 2).splitlines()
    assert len(fitted) == 2 and fitted[-1].endswith("…")
    assert all(len(line) <= 30 for line in fitted)
    assert toast_path(LONG).endswith("_ckpt_epoch2.pth") and len(toast_path(LONG)) <= 34


async def test_f7_stays_in_the_footer_of_a_finished_sweep(tmp_path):
    """At 80 columns a finished sweep's footer still ends with F7; Enter is named in the
    progress line instead."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await feed(app, pilot)
        app.sweep_screen.query_one("#start").focus()
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "f7 Fine-tune" in text.splitlines()[-1].replace("F7", "f7")
        assert "Enter on a level fine-tunes it" in app.sweep_screen.progress_text


async def test_e_on_a_fine_tune_result_opens_its_export_on_runs(tmp_path):
    """The finished fine-tune's `e`: the Runs screen with that run selected, and its export."""
    from engine.runs.record import RunRecord

    runs = tmp_path / "runs"
    for name, kind in (
        ("20250101-090000-train-resnet20", "train"),
        ("20250101-100000-finetune-resnet20", "finetune"),
    ):
        RunRecord(
            kind=kind, model="resnet20", created="2025-01-01T09:00:00", status="completed"
        ).save(runs / name)
    app = make_app(tmp_path, mode="finetune")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.finetune_screen
        assert screen.offers("export_result") is False, "nothing to export before a run"
        screen.status, screen.run_dir = "completed", str(runs / "20250101-100000-finetune-resnet20")
        screen.query_one("#start").focus()
        await pilot.press("e")
        await pilot.pause(0.3)
        assert app.current_mode == "runs"
        assert app.runs_screen.selected().path.name == "20250101-100000-finetune-resnet20"

"""Pilot tests of the Textual app: forms, a tiny training run, stop/resume, sweeps, runs, errors.

Everything runs on the CPU with ResNet-20 on a few synthetic images, at 80x24 (the compact
layout). Engine work runs in the app's thread worker exactly as for a user.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from pathlib import Path

import pytest
import torch
from textual import events
from textual.widgets import Button, DataTable, Input, Static
from typer.testing import CliRunner

from engine.checkpoints.io import read_checkpoint
from engine.config import SweepConfig, TrainConfig
from engine.events import BatchProgress, EpochEnded, SweepPoint
from engine.models.resnets import build_model
from engine.pruning.pruner import Pruner
from engine.runs.lifecycle import list_run_infos
from engine.runs.lifecycle import read_run_info as read_run
from engine.runs.record import list_runs, load_run
from engine.sweep.run import find_best, run_sweep
from engine.training.train import resume_config, train
from tui.app import PrunelabApp
from tui.cli import app as cli_app
from tui.formatting import fmt_acc
from tui.messages import EngineProgress, wrap
from tui.screens.dialogs import (
    ConfirmDialog,
    ErrorDialog,
    MessageDialog,
    PickDialog,
)
from tui.screens.export_dialog import ExportDialog
from tui.screens.train import LOSS_REDRAW_S
from tui.widgets.charts import AccuracyChart, LossChart, OverlayChart, SweepChart
from tui.widgets.progress import ProgressPanel

SIZE = (80, 24)
TINY = dict(
    model="resnet20",
    dataset="synthetic",
    train_subset=64,
    test_subset=32,
    epochs=2,
    batch_size=32,
    eval_batch_size=32,
    device="cpu",
)


@pytest.fixture(autouse=True)
def one_thread():
    """The test box is small and shared: one intra-op thread for torch."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A one-epoch ResNet-20 checkpoint on synthetic data (trained by the engine directly)."""
    root = tmp_path_factory.mktemp("ckpt")
    torch.set_num_threads(1)
    config = TrainConfig(
        **{**TINY, "epochs": 1},
        run_dir=str(root / "runs"),
        checkpoint_dir=str(root / "checkpoints"),
    )
    result = train(config)
    assert result.checkpoint
    return result.checkpoint


def make_app(tmp_path: Path, **kwargs) -> PrunelabApp:
    return PrunelabApp(
        run_root=str(tmp_path / "runs"),
        checkpoint_dir=str(tmp_path / "checkpoints"),
        devices=["auto", "cpu"],
        **kwargs,
    )


def palette_first(app) -> str:
    """The open palette's first hit, lower-cased ("" while its search runs: it is async)."""
    from textual.command import CommandList

    hits = app.screen.query_one(CommandList)
    return str(hits.get_option_at_index(0).prompt).lower() if hits.option_count else ""


async def wait_for(pilot, condition, timeout: float = 60.0) -> None:
    """Let the app run until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.05)


async def finish_job(app: PrunelabApp, pilot, timeout: float = 90.0) -> None:
    """Wait for the engine worker, then for its last messages to be handled."""
    await asyncio.wait_for(app.workers.wait_for_complete(), timeout)
    await wait_for(pilot, lambda: app.job is None, timeout=10)
    await pilot.pause()


async def press_busy(app: PrunelabApp, pilot, *keys: str) -> None:
    """Press keys while a worker keeps the process busy. (`pilot.press` waits up to 2 s per key
    for the process to go idle, which it never does while training; a user's keys are handled
    at once, and so are these: each gets 50 ms.)"""
    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else None))
        await pilot.pause(0.05)


def table_rows(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_bad_value_shows_engine_message_and_disables_start(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.train_screen
        start = screen.query_one("#start", Button)
        assert not start.disabled, "the seed's defaults are valid"

        epochs = screen.query_one("#f-epochs", Input)
        epochs.focus()
        await pilot.press("ctrl+a", "ctrl+k", "0")
        await pilot.pause()

        expected = TrainConfig(epochs=0).problems()[0].message  # the engine's own words
        error = screen.query_one("#error-epochs", Static)
        assert str(error.render()) == expected
        assert error.display
        assert start.disabled
        lr_input = screen.query_one("#f-lr", Input)
        lr_input.focus()
        await pilot.press("f5")
        await pilot.pause()
        assert app.job is None, "F5 must not start an invalid config"
        said = [n.message for n in app._notifications]
        assert said and said[-1] == f"epochs: {expected}", "F5 says which field to fix"
        assert app.focused is epochs, "and takes the cursor there"

        lr = screen.query_one("#f-lr", Input)
        lr.focus()
        await pilot.press("ctrl+a", "ctrl+k", *"abc")
        await pilot.pause()
        assert "'abc' is not a number" in str(screen.query_one("#error-lr", Static).render())

        await pilot.press("ctrl+a", "ctrl+k", *"0.1")
        epochs.focus()
        await pilot.press("ctrl+a", "ctrl+k", "5")
        await pilot.pause()
        assert not screen.query_one("#error-epochs", Static).display
        assert not start.disabled
        assert screen.form.config.epochs == 5 and screen.form.config.lr == 0.1


async def test_tiny_training_run_updates_table_and_charts(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.train_screen
        screen.form.set_values(TINY)
        await pilot.pause()
        acc, loss = screen.query_one(AccuracyChart), screen.query_one(LossChart)
        redraws = acc.redraws, loss.redraws
        started = time.monotonic()
        await pilot.press("f5")
        await pilot.pause()
        assert screen.status != "idle", "F5 started the run"
        await finish_job(app, pilot)
        seconds = time.monotonic() - started

        rows = table_rows(screen.query_one("#epoch-table", DataTable))
        assert [r[0] for r in rows] == ["1", "2"]
        assert rows[0][4] == "0.01", "the lr column shows the schedule"
        assert acc.epochs == [1, 2] and len(acc.test_acc) == 2
        assert loss.steps[-1] == 4 and len(loss.steps) >= 2, (
            "the (throttled) losses reach the chart"
        )
        # accuracy: cleared at the start, then once per epoch; loss: also at the first batch
        # report and then at most every LOSS_REDRAW_S, never per batch
        assert acc.redraws - redraws[0] == 3
        live = loss.redraws - redraws[1] - 3
        assert 1 <= live <= 1 + seconds / LOSS_REDRAW_S
        assert screen.status == "completed"

        runs = list_runs(tmp_path / "runs")
        assert len(runs) == 1 and runs[0].record.status == "completed"
        assert runs[0].record.config["epochs"] == 2
        checkpoint = runs[0].record.summary["checkpoint"]
        assert Path(checkpoint).is_file()
        # the sweep screen now offers the new checkpoint
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.screen is app.sweep_screen and app.sweep_screen.ready)
        assert app.sweep_screen.form.raw_values()["checkpoint"] == checkpoint


async def test_loss_is_on_screen_before_the_first_epoch_ends(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.train_screen
        # one long epoch (250 batches of 8): the first loss report comes long before its end
        screen.form.set_values({**TINY, "train_subset": 2000, "batch_size": 8, "epochs": 1})
        await pilot.pause()
        await press_busy(app, pilot, "f5")
        await wait_for(pilot, lambda: screen.last_loss is not None)
        await wait_for(pilot, lambda: "loss" in str(screen.query_one(ProgressPanel).render()))
        panel = str(screen.query_one(ProgressPanel).render())
        chart = screen.query_one(LossChart)
        assert not screen.epochs, "epoch 1 has not ended yet"
        assert re.search(r"loss \d+\.\d{4}", panel), panel
        assert chart.losses and chart.chart_title.startswith("loss ")
        app.request_stop()
        await finish_job(app, pilot)
        assert screen.status == "stopped"


async def test_stop_midway_leaves_resumable_checkpoint(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.train_screen
        screen.form.set_values({**TINY, "epochs": 500, "batch_size": 8})
        await pilot.pause()
        await press_busy(app, pilot, "f5")
        await wait_for(pilot, lambda: len(screen.epochs) >= 1)

        # quitting during a run asks first; "no" keeps it running
        await press_busy(app, pilot, "ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await press_busy(app, pilot, "n")
        await wait_for(pilot, lambda: app.screen is screen)
        assert app.job == "train" and app.is_running

        # the UI answers keys while the worker trains: Help opens and closes
        await press_busy(app, pilot, "f1")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await press_busy(app, pilot, "escape")
        await wait_for(pilot, lambda: app.screen is screen)

        await press_busy(app, pilot, "f6")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await press_busy(app, pilot, "y")
        await finish_job(app, pilot)

        assert screen.status == "stopped"
        stopped = Path(screen.resume_path or "")
        assert stopped.is_file() and stopped.name.endswith("_stopped.pth")
        checkpoint = read_checkpoint(stopped)
        assert {"optimizer", "scheduler", "position"} <= set(checkpoint.extra)
        assert resume_config(stopped).epochs == 500
        run_dir = list_runs(tmp_path / "runs")[0].path
        assert load_run(run_dir).status == "stopped"
        done = len(screen.epochs)
        assert done < 500

        # resume it from the picker (ctrl+o): the form is filled from the checkpoint's config
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, PickDialog))
        await pilot.press("down", "enter")  # the first checkpoint after "(none)"
        await wait_for(pilot, lambda: screen.form.raw_values()["batch_size"] == 8)
        assert screen.resume_path == str(stopped)
        screen.form.set_values({"epochs": done + 1})  # finish the interrupted epoch only
        await pilot.pause()
        await pilot.press("f5")
        await finish_job(app, pilot)
        assert screen.status == "completed"
        assert [e["epoch"] for e in screen.epochs] == list(range(1, done + 2))
        assert [r.path for r in list_runs(tmp_path / "runs")] == [run_dir], "same run folder"
        assert load_run(run_dir).status == "completed"


async def test_quit_during_run_asks_then_stops_cleanly(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        app.train_screen.form.set_values({**TINY, "epochs": 500, "batch_size": 8})
        await pilot.pause()
        await press_busy(app, pilot, "f5")
        await wait_for(pilot, lambda: app.train_screen.status == "running")
        await press_busy(app, pilot, "ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await press_busy(app, pilot, "y")
        await wait_for(pilot, lambda: not app.is_running, timeout=60)
    assert app.job is None
    assert load_run(list_runs(tmp_path / "runs")[0].path).status == "stopped"
    assert list((tmp_path / "checkpoints").glob("*_stopped.pth"))


async def test_command_palette_lists_main_actions(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"runs screen")
        await wait_for(pilot, lambda: "runs" in palette_first(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "runs")


async def test_tiny_sweep_draws_curve_and_sentence(tmp_path, tiny_checkpoint):
    app = make_app(tmp_path, mode="sweep")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sweep_screen
        screen.form.set_values(
            {**TINY, "checkpoint": tiny_checkpoint, "levels": "0,50,90", "tolerance": 100.0}
        )
        await pilot.pause()
        await pilot.press("f5")
        await pilot.pause()
        assert screen.status != "idle", "F5 started the sweep"
        await finish_job(app, pilot)

        chart = screen.query_one(SweepChart)
        assert len(chart.points) == 3
        assert chart.baseline is not None and chart.best is not None
        rows = table_rows(screen.query_one("#level-table", DataTable))
        assert [r[0].rstrip("*~") for r in rows] == ["0", "50", "90"]
        sentence = str(screen.query_one("#sentence").render())
        assert sentence.startswith("90% of weights removed within 100.0 points of")
        assert "SYNTHETIC" in sentence
        assert list_runs(tmp_path / "runs")[0].record.kind == "sweep"


async def test_sweeping_a_synthetic_checkpoint_needs_no_dataset_change(tmp_path, tiny_checkpoint):
    app = make_app(tmp_path, mode="sweep")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sweep_screen
        assert screen.form.raw_values()["dataset"] == "auto", "the form's default"
        # only the checkpoint and what makes the test small: dataset is left alone
        screen.form.set_values(
            {"checkpoint": tiny_checkpoint, "levels": "0,50", "test_subset": 32, "device": "cpu"}
        )
        await wait_for(pilot, lambda: screen.checkpoint_text.startswith("resnet20"))
        assert screen.checkpoint_text.startswith("resnet20 · synthetic · epoch 1/1")
        assert screen.form.raw_values()["dataset"] == "auto", "the form is not rewritten"
        await pilot.press("f5")
        await finish_job(app, pilot)
        assert screen.status == "completed", screen.headline
        assert list_runs(tmp_path / "runs")[0].record.synthetic


async def test_runs_screen_overlays_two_sweeps_and_exports(tmp_path, tiny_checkpoint):
    runs = tmp_path / "runs"
    for levels in ((0.0, 50.0), (0.0, 30.0, 60.0)):
        run_sweep(
            SweepConfig(
                **{k: v for k, v in TINY.items() if k in SweepConfig.__dataclass_fields__},
                checkpoint=tiny_checkpoint,
                levels=levels,
                run_dir=str(runs),
            )
        )
    train(TrainConfig(**{**TINY, "epochs": 1}, run_dir=str(runs), checkpoint_dir=str(tmp_path)))
    app = make_app(tmp_path, mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.runs_screen
        table = screen.query_one("#runs-table", DataTable)
        assert table.row_count == 3
        # the newest run is the training run: export, continue and layers are not offered
        assert screen.selected().record.kind == "train"
        for action in ("export", "continue_sweep", "layers"):
            assert screen.check_action(action, ()) is False, action
        chart = screen.query_one(OverlayChart)
        assert chart.kind == "train" and [label for label, _, _ in chart.series] == [
            "test",
            "train",
        ], "a training run shows its curves"
        table.move_cursor(row=1)
        await pilot.pause()
        table.focus()
        await pilot.press("space", "down", "space")
        await pilot.pause()
        chart = screen.query_one(OverlayChart)
        assert len(chart.series) == 2
        assert sorted(len(xs) for _, xs, _ in chart.series) == [2, 3]
        details = str(screen.query_one("#run-details", Static).render())
        assert "of weights removed" in details or "no pruned level" in details
        # the app and `prunelab runs` show the engine's one headline (and its numbers) per run
        infos = list_run_infos(runs)
        headlines = [info.headline() for info in infos]
        columns = [str(column.label) for column in table.ordered_columns]
        cells = [row[columns.index("top-1")] for row in table_rows(table)]
        assert cells == [fmt_acc(info.numbers().accuracy) for info in infos]
        listed = CliRunner().invoke(cli_app, ["runs", "--run-dir", str(runs), "--json"])
        assert [r["headline"] for r in json.loads(listed.stdout)] == headlines

        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog))
        app.screen.query_one("#export-level", Input).value = "50"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MessageDialog))
        assert "wrote" in str(app.screen.query_one("#dialog-message", Static).render())
        await pilot.press("enter")
        assert list(Path(tiny_checkpoint).parent.glob("*layerwise50.sparse.pth"))


async def test_worker_error_shows_dialog_and_app_survives(tmp_path):
    app = make_app(tmp_path, mode="sweep")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sweep_screen
        missing = str(tmp_path / "no_such_checkpoint.pth")
        screen.form.set_values({**TINY, "checkpoint": missing})
        await pilot.pause()
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        message = str(app.screen.query_one("#dialog-message", Static).render())
        assert "no_such_checkpoint.pth" in message
        assert "\n" not in message.strip()
        assert app.job is None and screen.status == "failed"

        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and app.is_running
        assert not screen.query_one("#start", Button).disabled
        await pilot.press("f2")  # still answering keys
        await pilot.pause()
        assert app.current_mode == "train"


async def test_runs_screen_continues_an_interrupted_sweep(tmp_path, tiny_checkpoint):
    points = []
    stopped = run_sweep(
        SweepConfig(
            **{k: v for k, v in TINY.items() if k in SweepConfig.__dataclass_fields__},
            checkpoint=tiny_checkpoint,
            levels=(0.0, 40.0, 80.0),
            run_dir=str(tmp_path / "runs"),
        ),
        on_event=lambda e: points.append(e) if isinstance(e, SweepPoint) else None,
        stop=lambda: len(points) >= 2,  # stop before the third level
    )
    assert stopped.status == "stopped" and len(stopped.points) == 2
    app = make_app(tmp_path, mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        app.runs_screen.query_one("#runs-table", DataTable).focus()
        await pilot.press("c")
        await finish_job(app, pilot)
        assert app.current_mode == "sweep"
        screen = app.sweep_screen
        assert screen.status == "completed"
        assert [p.level_percent for p in screen.points] == [0.0, 40.0, 80.0]
        assert len(list_runs(tmp_path / "runs")) == 1, "continued in the same run folder"


def test_progress_messages_coalesce_but_others_do_not():
    progress = [BatchProgress(1, 2, b, 10, 0.5, 100.0, b) for b in (1, 2)]
    older, newer = wrap("train", progress[0]), wrap("train", progress[1])
    assert isinstance(older, EngineProgress) and older.can_replace(newer)
    assert not older.can_replace(wrap("sweep", progress[1])), "only the same job's progress"
    epoch = wrap("train", EpochEnded(1, 2, 0.5, 50.0, 0.6, 40.0, 0.01, 1.0, 100.0))
    assert not older.can_replace(epoch) and not epoch.can_replace(newer)


async def test_command_palette_finds_every_action_once(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        from textual.command import CommandPalette

        from tui.app import PrunelabCommands

        provider = PrunelabCommands(app.screen)
        names = [name for name, _, _ in provider._commands()]
        assert len(names) == len(set(names))
        assert any("export" in n for n in names) and any("form" in n for n in names)
        assert not any(n == "Quit" for n in names), "Textual's own Quit is the only one"
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"hide or show the form")
        await wait_for(pilot, lambda: "form" in palette_first(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.train_screen.form_hidden)


async def test_f1_on_a_field_shows_its_full_help(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        app.train_screen.query_one("#f-epochs", Input).focus()
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, MessageDialog))
        text = str(app.screen.query_one("#dialog-message", Static).render())
        assert text.startswith("epochs: ") and "default: 60" in text and "--epochs" in text
        await pilot.press("escape")
        # help texts name other fields in the form's words, not as CLI flags
        app.train_screen.query_one("#f-test_subset", Input).focus()
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, MessageDialog))
        text = str(app.screen.query_one("#dialog-message", Static).render())
        assert "drawn with seed (0 = all)" in text and "with --seed" not in text
        await pilot.press("escape")
        app.train_screen.query_one("#start", Button).focus()
        await pilot.press("f1")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen")


async def test_layers_sensitivity_and_png_from_the_sweep_screen(tmp_path, tiny_checkpoint):
    from tui.screens.layers import LayerView
    from tui.widgets.chart_png import PNG_HINT, png_available

    app = make_app(tmp_path, mode="sweep")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sweep_screen
        screen.form.set_values(
            {"checkpoint": tiny_checkpoint, "levels": "0,50", "test_subset": 32, "device": "cpu"}
        )
        await pilot.press("f5")
        await finish_job(app, pilot)
        screen.query_one("#level-table", DataTable).focus()
        await pilot.pause()
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LayerView), timeout=30)
        view = app.screen
        percents = [layer.percent for layer in view.rows]
        assert len(percents) > 10 and all(abs(p - 50) < 1 for p in percents), "layerwise 50%"
        assert view.sensitivity is None
        await pilot.press("escape")

        await pilot.press("ctrl+s")
        if png_available():
            png = Path(screen.run_dir) / "sweep.png"
            await wait_for(pilot, png.is_file, timeout=60)
            assert png.read_bytes()[:4] == b"\x89PNG"
        else:  # the png extra is not installed: the app says how to get it
            await wait_for(pilot, lambda: PNG_HINT in [n.message for n in app._notifications])

        await pilot.press("s")  # sensitivity: one layer at a time at 50%
        await wait_for(pilot, lambda: app.job is None and isinstance(app.screen, LayerView), 120)
        sens = app.screen.sensitivity
        assert sens is not None and sens.levels == [50.0]
        assert set(sens.accuracy) == {layer.name for layer in app.screen.rows}
        kinds = sorted(r.record.kind for r in list_runs(tmp_path / "runs"))
        assert kinds == ["sensitivity", "sweep"]
        await pilot.press("escape", "f4")  # the Runs screen: the newest run is selected
        await wait_for(pilot, lambda: app.screen is app.runs_screen)
        await pilot.pause()
        details = str(app.runs_screen.query_one("#run-details", Static).render())
        assert "1 level, dense" in details, "the headline the table cuts at 80 columns"
        assert "most sensitive at 50%" in details
        chart = app.runs_screen.query_one(OverlayChart)
        assert [label for label, _, _ in chart.series] == sens.most_sensitive()
        assert all(xs == [0.0, 50.0] for _, xs, _ in chart.series), "from the dense point"


async def test_resume_picker_offers_only_resumable_checkpoints(tmp_path, tiny_checkpoint):
    import shutil

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shutil.copy(tiny_checkpoint, folder / "finished.pth")
    torch.save({"net": read_checkpoint(tiny_checkpoint).state_dict}, folder / "weights.pth")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, PickDialog), timeout=30)
        labels = [description for _, description in app.screen.choices]
        assert labels[0].startswith("(none)") and len(labels) == 2, labels
        assert labels[1].startswith("finished.pth · resnet20 · synthetic · epoch 1/1")
        assert "raise epochs" in labels[1]
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.train_screen.resume_epochs_done == 1)
        await pilot.press("f5")  # epochs is still 1: nothing to resume
        await pilot.pause()
        assert app.job is None
        assert "set epochs above 1" in [n.message for n in app._notifications][-1]


async def test_sweep_chart_x_axis_cycles_level_speedup_macs_params(tmp_path, tiny_checkpoint):
    app = make_app(tmp_path, mode="sweep")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.sweep_screen
        values = {**TINY, "checkpoint": tiny_checkpoint, "levels": "0,50", "tolerance": 100.0}
        screen.form.set_values({**values, "method": "structured", "latency_batch": 2})
        await pilot.pause()
        await pilot.press("f5")
        await finish_job(app, pilot)
        chart = screen.query_one(SweepChart)
        assert chart.axis is None and [p.sparsity for p in chart.points][0] == 0.0
        assert any(b.key == "x" and b.description == "Axis" for b in screen.BINDINGS)
        screen.query_one("#level-table", DataTable).focus()
        await pilot.press("x")
        speedups = [p.speedup for p in screen.points]
        assert chart.axis == "speedup x (measured)" and speedups[0] == 1.0
        assert sorted(p.sparsity for p in chart.points) == sorted(speedups)
        assert chart.spec().xlabel == "speedup x (measured)"
        assert str(screen.query_one("#level-table", DataTable).ordered_columns[-3].label) == (
            "speedup"
        )
        await pilot.press("x")
        assert chart.axis == "x fewer MACs" and chart.points[0].sparsity == 1.0
        assert chart.points[-1].sparsity > 2.0  # half the filters: far fewer MACs
        await pilot.press("x")
        assert chart.axis == "x fewer params" and chart.points[-1].sparsity > 1.5
        await pilot.press("x")
        assert chart.axis is None
        # a masked sweep: its levels have the dense model's MACs, parameters and speed, so the
        # chart stays on sparsity (every point would stack at 1x)
        screen.config = dataclasses.replace(screen.config, method="layerwise", latency_batch=0)
        await pilot.press("x")
        assert chart.axis is None


async def export_from_runs_screen(tmp_path, level: float, checkpoint) -> tuple:
    """`e` on the Runs screen's newest sweep at `level`: the dialog's message, the export runs,
    the exported state dict, and the source model (resnet20) to compare it with."""
    app = make_app(tmp_path, mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        app.runs_screen.query_one("#runs-table", DataTable).focus()
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportDialog))
        app.screen.query_one("#export-level", Input).value = f"{level:g}"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MessageDialog))
        message = str(app.screen.query_one("#dialog-message", Static).render())
    exports = [i for i in list_run_infos(tmp_path / "runs") if i.kind == "export"]
    exported = read_checkpoint(exports[0].summary.path).state_dict
    model = build_model("resnet20")
    model.load_state_dict(read_checkpoint(checkpoint).state_dict)
    return message, exports, exported, model


async def test_runs_screen_exports_a_global_sweep_with_its_own_masks(tmp_path, tiny_checkpoint):
    sweep = run_sweep(
        SweepConfig(
            **{k: v for k, v in TINY.items() if k in SweepConfig.__dataclass_fields__},
            checkpoint=tiny_checkpoint,
            method="global",
            min_density=0.4,
            levels=(0.0, 80.0),
            run_dir=str(tmp_path / "runs"),
        )
    )
    _, exports, exported, model = await export_from_runs_screen(tmp_path, 80, tiny_checkpoint)
    pruner = Pruner(model, "global", False, 0.4)
    pruner.set_level(80)
    for name, module in pruner.layers:
        assert torch.equal(exported[f"{name}.weight"] == 0, module.weight == 0), name
    assert exports[0].summary.sparsity_percent == pytest.approx(sweep.points[-1].sparsity_percent)


async def test_runs_screen_exports_a_gradient_sweep_with_its_own_batch(tmp_path, tiny_checkpoint):
    from engine.pruning.scores import ScoreInputs, make_score, training_batch

    config = SweepConfig(
        **{k: v for k, v in TINY.items() if k in SweepConfig.__dataclass_fields__},
        checkpoint=tiny_checkpoint,
        method="global",
        score="gradient",
        levels=(0.0, 70.0),
        run_dir=str(tmp_path / "runs"),
    )
    sweep = run_sweep(config)
    message, exports, exported, model = await export_from_runs_screen(tmp_path, 70, tiny_checkpoint)
    assert "global, gradient" in message
    saved = SweepConfig.from_dict(json.loads((Path(sweep.run_dir) / "config.json").read_text()))
    batch = training_batch(saved, saved.batch_size)  # the sweep's batch, as it resolved its data
    score = make_score("gradient", ScoreInputs(saved.seed, lambda: batch))
    pruner = Pruner(model, "global", score=score)
    pruner.set_level(70)
    for name, module in pruner.layers:
        assert torch.equal(exported[f"{name}.weight"] == 0, module.weight == 0), name
    assert exports[0].summary.sparsity_percent == pytest.approx(sweep.points[-1].sparsity_percent)


async def test_cli_and_app_resume_a_find_run_alike(tmp_path, tiny_checkpoint):
    config = SweepConfig(
        **{k: v for k, v in TINY.items() if k in SweepConfig.__dataclass_fields__},
        checkpoint=tiny_checkpoint,
        tolerance=0.0,
        resolution=10.0,
        run_dir=str(tmp_path / "runs"),
    )
    stopped = []
    for _ in range(2):
        points = []
        result = find_best(
            config,
            lambda e, points=points: points.append(e) if isinstance(e, SweepPoint) else None,
            lambda points=points: len(points) >= 1,
            coarse_step=25,
        )
        assert result.status == "stopped"
        stopped.append(result.run_dir)
    by_cli = CliRunner().invoke(cli_app, ["sweep", "--resume", stopped[0], "--json"])
    assert by_cli.exit_code == 0, by_cli.output
    app = make_app(tmp_path, mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        table = app.runs_screen.query_one("#runs-table", DataTable)
        table.focus()
        names = [row.key.value for row in table.ordered_rows]  # a row per run folder
        table.move_cursor(row=names.index(Path(stopped[1]).name))
        await pilot.press("c")
        await finish_job(app, pilot)
        by_app = [p.level_percent for p in app.sweep_screen.points]
    assert [p["level_percent"] for p in json.loads(by_cli.stdout)["points"]] == by_app
    assert {read_run(r).kind for r in stopped} == {"find"}
    assert all(read_run(r).record.status == "completed" for r in stopped)


async def test_a_run_on_jpeg_files_says_so_in_the_screen_headline(tmp_path):
    from engine.events import RunStarted

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE):
        screen = app.sweep_screen
        started = dict(kind="sweep", run_dir=str(tmp_path), device="cpu, fp32", model="resnet20")
        screen.apply(RunStarted(**started, parameters=10, config={}, data="JPEG image folder x"))
        assert screen.headline.endswith(" · JPEG")
        screen.apply(RunStarted(**started, parameters=10, config={}, data="CIFAR-10 test batch"))
        assert "JPEG" not in screen.headline


async def test_the_runs_details_say_jpeg(tmp_path):
    from engine.runs.lifecycle import Run, read_run_info

    run = Run("sweep", lambda event: None)
    jpeg = "JPEG image folder test split, DIR, 10 of 10 images"
    run.open(
        tmp_path / "runs", model="resnet20", config={}, device="cpu", data=jpeg, synthetic=False
    )
    run.start(parameters=1)
    run.finish("completed")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.screen is app.runs_screen)
        details = app.runs_screen._details(read_run_info(run.dir))
        assert "sweep · resnet20 · completed · JPEG" in details


async def test_sensitivity_key_says_the_engines_rule_for_levels(tmp_path, tiny_checkpoint):
    """`s` with no level above 0 is refused with the CLI's words, not started and emptied."""
    from engine.sweep.rules import sensitivity_problems

    app = make_app(tmp_path, mode="sweep")
    async with app.run_test(size=SIZE) as pilot:
        app.sweep_screen.form.set_values(
            {"checkpoint": tiny_checkpoint, "levels": "0", "test_subset": 32, "device": "cpu"}
        )
        await pilot.pause()
        await pilot.press("s")
        rule = sensitivity_problems(SweepConfig(checkpoint="x", levels=(0.0,)))[0]
        await wait_for(pilot, lambda: any(rule.message in n.message for n in app._notifications))
        assert app.job is None

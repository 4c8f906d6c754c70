"""Snapshot tests of every screen at 80x24 and 120x40 with frozen data.

No training happens: the screens are fed a recorded event stream (the seed's ResNet50 schedule
and its published pruning curve), run folders are written with fixed dates, and the app runs in
a temporary working directory so every path on screen is relative. Update with
`pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs before committing.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pytest
from textual.widgets import Input

from engine.config import SweepConfig, TrainConfig
from engine.events import (
    BatchProgress,
    CheckpointSaved,
    EpochEnded,
    RunStarted,
    SweepFinished,
    SweepPoint,
)
from engine.runs.record import RunRecord, append_jsonl, write_json
from engine.sweep.answer import PointResult, SweepResult, best_level
from engine.sweep.layers import LayerSparsity
from engine.sweep.store import SensitivityResult
from engine.training.train import TrainResult
from tui.app import PrunelabApp
from tui.messages import JobFinished, wrap
from tui.screens.layers import LayerView

SIZES = [(80, 24), (120, 40)]
DEVICE = "cuda:0 (NVIDIA H100 80GB HBM3), bf16, channels_last"
TRAIN_RUN = "runs/20250101-090000-train-resnet50"
SWEEP_RUN = "runs/20250102-100000-sweep-resnet50"
CHECKPOINT = "checkpoints/cifar10_resnet50_ckpt_epoch60.pth"
PARAMS = 23_520_842
PRUNABLE = 23_467_712

# The original project's published curve: level % -> top-1 %
SEED_CURVE = {0: 93.1, 5: 93.1, 10: 93.0, 15: 92.9, 20: 92.9, 25: 92.7, 30: 92.1, 35: 91.8}
SEED_CURVE |= {40: 90.2, 45: 85.0, 50: 72.0, 55: 42.0, 60: 18.0, 65: 12.5}
SEED_CURVE |= {level: 10.0 for level in range(70, 101, 5)}
GLOBAL_CURVE = {level: SEED_CURVE.get(level - 10, 93.1) for level in SEED_CURVE}  # 10 points later


def lr_at(epoch: int) -> float:
    """The seed's CosineAnnealingLR(T_max=20) as it cycles over 60 epochs."""
    return 0.005 * (1 + math.cos(math.pi * (epoch - 1) / 20))


def epoch_event(epoch: int) -> EpochEnded:
    progress = 1 - math.exp(-epoch / 6)
    return EpochEnded(
        epoch=epoch,
        epochs=60,
        train_loss=round(1.6 * (1 - progress) + 0.05, 4),
        train_acc=round(45 + 53 * progress, 2),
        test_loss=round(1.3 * (1 - progress) + 0.25, 4),
        test_acc=round(50 + 42 * progress, 2),
        lr=lr_at(epoch),
        seconds=0.52,
        images_per_s=104_000.0,
        gpu_memory_mb=3_412.0,
    )


def point(level: float, accuracy: float) -> PointResult:
    kept = PRUNABLE * (1 - level / 100)
    return PointResult(
        level_percent=float(level),
        sparsity_percent=float(level),
        total_sparsity_percent=level * PRUNABLE / PARAMS,
        nonzero_parameters=int(kept + PARAMS - PRUNABLE),
        accuracy=accuracy,
        loss=None,
        accuracy_bn_recalibrated=None,
        dense_bytes=PARAMS * 4,
        sparse_bytes=int(kept * 4 + PRUNABLE / 8 + (PARAMS - PRUNABLE) * 4),
        seconds=0.31,
    )


def seed_points(curve: dict[int, float]) -> list[PointResult]:
    return [point(level, acc) for level, acc in sorted(curve.items())]


def write_runs(root: Path) -> None:
    """A finished training run and two finished sweeps, with fixed dates."""
    train = RunRecord(
        kind="train",
        model="resnet50",
        created="2025-01-01T09:00:00",
        status="completed",
        device=DEVICE,
        data="CIFAR-10 from data/cifar-10-batches-py, train split, 50000 images",
        config=TrainConfig().to_dict(),
        summary={
            "epochs_completed": 60,
            "final_test_acc": 93.12,
            "best_test_acc": 93.2,
            "checkpoint": CHECKPOINT,
        },
        finished="2025-01-01T09:00:40",
    )
    train.save(root / TRAIN_RUN)
    for epoch in range(1, 61):
        append_jsonl(root / TRAIN_RUN / "metrics.jsonl", asdict(epoch_event(epoch)))
    for name, method, curve, hour in (
        (SWEEP_RUN, "layerwise", SEED_CURVE, "10"),
        ("runs/20250102-110000-sweep-resnet50", "global", GLOBAL_CURVE, "11"),
    ):
        folder = root / name
        # two sweeps told apart: by method, checkpoint and (given with --name) name
        run_name = "global, seed's ckpt" if method == "global" else ""
        config = SweepConfig(checkpoint=CHECKPOINT, method=method, name=run_name)
        points = seed_points(curve)
        best = best_level(points, points[0].accuracy, 1.0)
        result = SweepResult(
            status="completed",
            run_dir=name,
            model="resnet50",
            method=method,
            points=points,
            baseline_accuracy=points[0].accuracy,
            tolerance=1.0,
            best_level_percent=best.level_percent,
            best_accuracy=best.accuracy,
        )
        RunRecord(
            kind="sweep",
            model="resnet50",
            created=f"2025-01-02T{hour}:00:00",
            status="completed",
            device=DEVICE,
            data="CIFAR-10 from data/cifar-10-batches-py, test split, 10000 images",
            config=config.to_dict(),
            summary=result.summary(),
            finished=f"2025-01-02T{hour}:00:09",
            name=run_name,
        ).save(folder)
        write_json(folder / "config.json", config.to_dict())
        for p in points:
            append_jsonl(folder / "sweep.jsonl", asdict(p))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / CHECKPOINT).write_bytes(b"")
    write_runs(tmp_path)
    return tmp_path


def make_app(mode: str = "train") -> PrunelabApp:
    return PrunelabApp(devices=["auto", "cpu", "cuda:0"], mode=mode)


async def settle(pilot) -> None:
    """Let background readers (the Sweep form reads its checkpoint's metadata) finish."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def no_blink(app: PrunelabApp) -> None:
    for widget in app.screen.query(Input):
        widget.cursor_blink = False


async def feed_training(pilot) -> None:
    """A 60-epoch ResNet50 run seen at epoch 24, batch 200 of 391."""
    app: PrunelabApp = pilot.app
    app.train_screen.begin(TrainConfig(), None)
    app.job = "train"
    app._job_changed()
    events = [
        RunStarted("train", TRAIN_RUN, DEVICE, "resnet50", PARAMS, TrainConfig().to_dict()),
        *[epoch_event(e) for e in range(1, 24)],
        CheckpointSaved("checkpoints/cifar10_resnet50_ckpt_epoch20.pth", 20),
        BatchProgress(24, 60, 200, 391, 0.21, 101_500.0, 23 * 391 + 200),
    ]
    steps = 23 * 391 + 200
    app.train_screen.loss_log.extend(
        (s, 2.3 * math.exp(-s / 1500) + 0.05 + 0.04 * math.sin(s / 7)) for s in range(1, steps, 25)
    )
    for event in events:
        app.post_message(wrap("train", event))
    await pilot.pause()


async def feed_sweep(pilot) -> None:
    """The seed's layerwise sweep, finished."""
    app: PrunelabApp = pilot.app
    await settle(pilot)
    config = SweepConfig(checkpoint=CHECKPOINT)
    app.sweep_screen.begin(config)
    points = seed_points(SEED_CURVE)
    app.post_message(
        wrap("sweep", RunStarted("sweep", SWEEP_RUN, DEVICE, "resnet50", PARAMS, config.to_dict()))
    )
    for i, p in enumerate(points, start=1):
        fields = {k: v for k, v in asdict(p).items() if k in SweepPoint.__dataclass_fields__}
        app.post_message(wrap("sweep", SweepPoint(**fields, index=i, total=len(points))))
    best = best_level(points, points[0].accuracy, 1.0)
    app.post_message(
        wrap("sweep", SweepFinished(points[0].accuracy, best.level_percent, best.accuracy, 1.0, 21))
    )
    await pilot.pause()
    result = SweepResult(
        "completed",
        SWEEP_RUN,
        "resnet50",
        "layerwise",
        points,
        points[0].accuracy,
        1.0,
        best.level_percent,
        best.accuracy,
    )
    app.sweep_screen.finish(result)
    await pilot.pause()


async def mark_two_sweeps(pilot) -> None:
    screen = pilot.app.runs_screen
    table = screen.query_one("#runs-table")
    table.focus()
    table.move_cursor(row=0)
    screen.action_toggle_mark()
    table.move_cursor(row=1)
    screen.action_toggle_mark()
    await pilot.pause()


async def feed_sweep_running(pilot) -> None:
    """The seed's layerwise sweep at its 9th of 21 levels."""
    app: PrunelabApp = pilot.app
    await settle(pilot)
    config = SweepConfig(checkpoint=CHECKPOINT)
    app.sweep_screen.begin(config)
    app.job = "sweep"
    app._job_changed()
    points = seed_points(SEED_CURVE)[:9]
    app.post_message(
        wrap("sweep", RunStarted("sweep", SWEEP_RUN, DEVICE, "resnet50", PARAMS, config.to_dict()))
    )
    for i, p in enumerate(points, start=1):
        fields = {k: v for k, v in asdict(p).items() if k in SweepPoint.__dataclass_fields__}
        app.post_message(wrap("sweep", SweepPoint(**fields, index=i, total=21)))
    while len(app.sweep_screen.points) < len(points):
        await pilot.pause(0.05)
    await settle(pilot)
    app.sweep_screen._redraw_all()  # column widths from all rows at once, as on any redraw
    await pilot.pause()


async def train_stopped(pilot) -> None:
    """The same run stopped at epoch 24: F5 resumes from the checkpoint written."""
    await feed_training(pilot)
    app: PrunelabApp = pilot.app
    app.job = None
    result = TrainResult(
        status="stopped",
        run_dir=TRAIN_RUN,
        epochs_completed=23,
        final_test_acc=90.95,
        best_test_acc=90.95,
        checkpoint="checkpoints/cifar10_resnet50_ckpt_epoch24_stopped.pth",
        history=[],
    )
    app.post_message(JobFinished("train", result=result))
    await pilot.pause()


async def layer_view(pilot) -> None:
    """ResNet-20-like layers at layerwise 60%, with a sensitivity run beside them."""
    await settle(pilot)
    names = ["conv1"] + [
        f"layer{s}.{b}.conv{c}" for s in (1, 2, 3) for b in (0, 1, 2) for c in (1, 2)
    ]
    sizes = [432] + [2304] * 6 + [4608] + [9216] * 5 + [18432] + [36864] * 5
    rows = [LayerSparsity(n, w, 60.0) for n, w in zip(names, sizes, strict=True)]
    levels = [30.0, 50.0, 70.0, 90.0]
    drop = {n: (40.0 if n == "conv1" else 8.0 if "layer1" in n else 1.5) for n in names}
    sensitivity = SensitivityResult(
        "runs/20250103-090000-sensitivity-resnet20",
        names,
        levels,
        92.0,
        {n: {lv: round(92.0 - drop[n] * (lv / 90) ** 2, 2) for lv in levels} for n in names},
    )
    pilot.app.push_screen(
        LayerView(
            "layerwise 60% · pruned share of each layer · cifar10_resnet20_ckpt_epoch60.pth",
            rows,
            sensitivity=sensitivity,
            tolerance=1.0,
        )
    )
    await pilot.pause()


async def select_train_run(pilot) -> None:
    table = pilot.app.runs_screen.query_one("#runs-table")
    table.focus()
    table.move_cursor(row=2)
    await pilot.pause()


async def select_sweep_run(pilot) -> None:
    table = pilot.app.runs_screen.query_one("#runs-table")
    table.focus()
    table.move_cursor(row=1)
    await pilot.pause()


async def field_help(pilot) -> None:
    no_blink(pilot.app)
    pilot.app.screen.query_one("#f-lr", Input).focus()
    await pilot.press("f1")


async def general_help(pilot) -> None:
    pilot.app.screen.query_one("#start").focus()
    await pilot.press("f1")
    while type(pilot.app.screen).__name__ != "HelpScreen":
        await pilot.pause(0.05)
    await pilot.pause(0.3)  # the Markdown widget builds its blocks after mounting


async def sweep_full_chart(pilot) -> None:
    """The finished sweep, zoomed, the chart on the whole screen (f)."""
    await feed_sweep(pilot)
    await pilot.press("f")


async def sweep_whole_range(pilot) -> None:
    """The finished sweep on 0-100 (z)."""
    await feed_sweep(pilot)
    await pilot.press("z")


async def train_resumed(pilot) -> None:
    """The stopped run resumed: both charts keep their history from epoch 1 and step 1."""
    await train_stopped(pilot)
    app: PrunelabApp = pilot.app
    screen = app.train_screen
    screen.begin(TrainConfig(), "checkpoints/cifar10_resnet50_ckpt_epoch24_stopped.pth")
    app.job = "train"
    app._job_changed()
    started = RunStarted("train", TRAIN_RUN, DEVICE, "resnet50", PARAMS, TrainConfig().to_dict())
    steps = 23 * 391 + 200
    screen.loss_log.extend(
        (s, 0.3 + 0.04 * math.sin(s / 7)) for s in range(steps + 1, steps + 800, 25)
    )
    for event in (started, epoch_event(24), BatchProgress(25, 60, 100, 391, 0.2, 101_500.0, 0)):
        app.post_message(wrap("train", event))
    await pilot.pause()


async def sweep_row_finetune(pilot) -> None:
    """Enter on the sweep's 30% row: the Fine-tune form, filled from the sweep."""
    await feed_sweep(pilot)
    table = pilot.app.sweep_screen.query_one("#level-table")
    table.focus()
    table.move_cursor(row=6)
    await pilot.press("enter")
    await settle(pilot)
    no_blink(pilot.app)
    pilot.app.clear_notifications()


SCENES = {
    "train_idle": ("train", None),
    "train_running": ("train", feed_training),
    "train_stopped": ("train", train_stopped),
    "finetune_idle": ("finetune", None),
    "sweep_running": ("sweep", feed_sweep_running),
    "sweep_finished": ("sweep", feed_sweep),
    "sweep_full_chart": ("sweep", sweep_full_chart),
    "sweep_whole_range": ("sweep", sweep_whole_range),
    "train_resumed": ("train", train_resumed),
    "sweep_row_finetune": ("sweep", sweep_row_finetune),
    "layer_view": ("sweep", layer_view),
    "runs_train_row": ("runs", select_train_run),
    "runs_sweep_row": ("runs", select_sweep_run),
    "runs_overlay": ("runs", mark_two_sweeps),
    "help": ("train", general_help),
    "field_help": ("train", field_help),
}


@pytest.mark.parametrize("scene", list(SCENES))
@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_screen(snap_compare, workdir, size, scene):
    mode, before = SCENES[scene]
    if before is None:
        before = settle
    assert snap_compare(make_app(mode), terminal_size=size, run_before=before)


def test_train_form_invalid(snap_compare, workdir):
    async def bad_epochs(pilot) -> None:
        no_blink(pilot.app)
        pilot.app.screen.query_one("#f-epochs", Input).focus()
        await pilot.press("ctrl+a", "ctrl+k", "0")

    assert snap_compare(make_app("train"), terminal_size=(80, 24), run_before=bad_epochs)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_error_dialog(snap_compare, workdir, size):
    async def fail(pilot) -> None:
        await settle(pilot)
        app: PrunelabApp = pilot.app
        app.sweep_screen.begin(SweepConfig(checkpoint=CHECKPOINT))
        app.job = "sweep"
        # the engine's words (CLI flags) become the form's: "set dataset to synthetic"
        app.post_message(
            JobFinished(
                "sweep",
                error="CIFAR-10 not found in data: download it with `prunelab train --download "
                "--data-dir data` (or use --dataset synthetic for a demo)",
                title="Sweep failed",
            )
        )
        await pilot.pause()

    assert snap_compare(make_app("sweep"), terminal_size=size, run_before=fail)

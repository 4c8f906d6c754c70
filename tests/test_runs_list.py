"""Runs you can tell apart (issue 22): names and notes, the pruning and checkpoint of each run in
`prunelab runs`, exports that take a run's name, fine-tune files named after their source, and
the CLI's messages at 80 columns.

Tiny runs: ResNet-20 on synthetic images on the CPU.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from test_cli import TINY, invoke, one_line_error
from tiny_runs import next_second

from engine.events import EpochEnded, Notice, SweepPoint
from engine.runs.lifecycle import list_run_infos
from engine.runs.record import RUN_KINDS, load_run


@pytest.fixture(scope="module")
def swept(trained_checkpoint, tmp_path_factory) -> dict[str, Path]:
    """Two sweeps of one checkpoint, layerwise (named, with a note) and structured."""
    root = tmp_path_factory.mktemp("swept")
    runs = root / "runs"
    checkpoint = root / "cifar10_resnet20_ckpt_epoch2.pth"
    shutil.copy(trained_checkpoint, checkpoint)
    found = {"runs": runs, "checkpoint": checkpoint}
    for method, extra in (
        ("layerwise", ["--name", "first try", "--note", "l1 on the copy"]),
        ("structured", []),
    ):
        next_second()
        args = ["sweep", checkpoint, *TINY, "--levels", "0,50", "--run-dir", runs]
        result = invoke([*args, "--method", method, *extra, "--json"])
        assert result.exit_code == 0, result.output
        found[method] = Path(json.loads(result.stdout)["run_dir"])
    return found


def test_name_and_note_are_recorded_and_listed(swept):
    """--name and --note land in run.json (the folder keeps its timestamp) and in `runs`, whose
    rows at 80 columns say how each run pruned and which checkpoint it read."""
    record = load_run(swept["layerwise"])
    assert (record.name, record.note) == ("first try", "l1 on the copy")
    assert swept["layerwise"].name.split("-")[2] == "sweep"  # YYYYmmdd-HHMMSS-sweep-...
    listed = invoke(["runs", "--run-dir", swept["runs"]], COLUMNS="80").clean_stdout
    assert all(len(line) <= 80 for line in listed.splitlines())
    assert "first try" in listed and "note: l1 on the copy" in listed
    assert "layerwise ·" in listed and "structured ·" in listed  # two sweeps told apart
    assert listed.count("ckpt_epoch2.pth") == 2  # the file name survives the elision
    document = json.loads(invoke(["runs", "--run-dir", swept["runs"], "--json"]).stdout)
    assert {r["name"] for r in document} == {"first try", ""}


def test_runs_kind_help_lists_every_kind():
    """`runs --help` names every kind --kind takes (export and finetune were missing)."""
    text = invoke(["runs", "--help"], COLUMNS="200").clean_stdout
    for kind in RUN_KINDS:
        assert kind in text


def test_export_takes_a_run_name_and_its_method(swept, tmp_path):
    """`prunelab export NAME` resolves a run's name in --run-dir as report does; slim on a
    structured sweep is that sweep's own method (it said "needs --method structured")."""
    out_file = tmp_path / "slim.pth"
    name = swept["structured"].name
    args = ["export", name, "--run-dir", swept["runs"], "--level", 50, "--format", "slim"]
    result = invoke([*args, "-o", out_file])
    assert result.exit_code == 0, result.output
    assert out_file.is_file()
    # the best level when --level is left out
    prefix = name[:18]  # a unique prefix is enough, as for report
    result = invoke(["export", prefix, "--run-dir", swept["runs"], "-o", tmp_path / "b.pth"])
    assert result.exit_code == 0, result.output
    # a slim export of a layerwise sweep says why not, naming the option
    refused = invoke(["export", swept["layerwise"], "--format", "slim", "-o", tmp_path / "c"])
    assert refused.exit_code == 2
    assert "slim removes whole channels" in one_line_error(refused)


def test_finetune_files_are_named_after_their_source(trained_checkpoint, tmp_path):
    """A fine-tune's checkpoint starts with its source file's name, so a second checkpoint
    fine-tuned at the same level into the same folder is not refused as another run's."""
    from engine.training.finetune import finetune
    from engine.training.finetune_config import FinetuneConfig

    written, said = [], []
    for stem in ("downloaded_resnet20", "mine"):
        source = tmp_path / f"{stem}.pth"
        shutil.copy(trained_checkpoint, source)
        config = FinetuneConfig(
            checkpoint=str(source),
            level=50.0,
            epochs=1,
            dataset="synthetic",
            train_subset=64,
            test_subset=32,
            batch_size=32,
            device="cpu",
            run_dir=str(tmp_path / "runs"),
            checkpoint_dir=str(tmp_path / "tuned"),
        )
        result = finetune(config, on_event=said.append)
        assert result.status == "completed" and result.checkpoint
        written.append(Path(result.checkpoint).name)
    assert written[0].startswith("downloaded_resnet20_ft50layerwise_ckpt_epoch")
    assert written[1].startswith("mine_ft50layerwise_ckpt_epoch")
    # before the two silent test passes, it says what it measures (the CLI printed nothing)
    first = next(e for e in said if isinstance(e, Notice) and "dense" in e.text)
    assert "measuring the dense accuracy" in first.text
    assert said.index(first) < next(i for i, e in enumerate(said) if isinstance(e, EpochEnded))


def test_report_png_without_matplotlib_prints_the_tables_first(swept, monkeypatch, tmp_path):
    """No matplotlib: the tables and the answer are printed, then one line names the [png]
    extra (it exited before printing anything)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails, find_spec too
    png = tmp_path / "chart.png"
    result = invoke(["report", swept["layerwise"], "--png", png])
    assert result.exit_code == 1
    assert "level" in result.clean_stdout and "top-1" in result.clean_stdout
    assert "first try: layerwise sweep" in result.clean_stdout  # its name titles its table
    assert "note: l1 on the copy" in result.clean_stdout
    assert "pip install 'prunelab[png]'" in one_line_error(result)
    assert not png.exists()
    help_text = invoke(["report", "--help"], COLUMNS="200").clean_stdout
    assert "prunelab[png]" in help_text


def test_the_runs_list_reads_one_headline_per_run(swept):
    """`runs --json` and the engine's RunInfo agree (the app's Runs screen shows the same)."""
    document = json.loads(invoke(["runs", "--run-dir", swept["runs"], "--json"]).stdout)
    infos = list_run_infos(swept["runs"])
    assert [d["headline"] for d in document] == [i.headline() for i in infos]
    assert {i.pruning() for i in infos} == {"layerwise", "structured"}


def test_find_bisection_steps_have_no_false_counter():
    """find's bisection said `[5/5] [6/6] [7/7]`: how many steps follow is not known ahead."""
    from tui.render import point_line

    common = dict(
        sparsity_percent=55.0,
        total_sparsity_percent=55.0,
        nonzero_parameters=1,
        accuracy=50.0,
        loss=1.0,
        dense_bytes=1,
        sparse_bytes=1,
        seconds=1.0,
    )
    coarse = point_line(SweepPoint(level_percent=50.0, **common, index=4, total=11))
    refined = point_line(SweepPoint(level_percent=55.0, **common, refined=True, index=5, total=5))
    assert coarse.startswith("[ 4/11] level")
    assert refined.startswith("[bisect] level") and "5/5" not in refined


def test_noisy_batch1_latency_gets_a_caveat():
    """A pruned level timed slower than dense at batch 1 (pruning adds no work) is noise from
    a busy machine: the cost table says so."""
    from types import SimpleNamespace

    from tui.tables import cost_table

    def point(level: float, ms: float) -> SimpleNamespace:
        return SimpleNamespace(level_percent=level, latency_ms=ms, latency_batch=10.0)

    def caption(*points: SimpleNamespace) -> str:
        result = SimpleNamespace(timed_on="CPU, batch 64", method="structured", points=points)
        return str(cost_table(result).caption)

    assert "caution" not in caption(point(0, 8.0), point(50, 6.0))
    said = caption(point(0, 8.0), point(50, 575.0), point(70, 7.0))
    assert "caution: batch 1 took up to 71.9x the dense model's time" in said


def test_sensitivity_says_how_many_evaluations_and_warns_on_few_images(
    trained_checkpoint, tmp_path
):
    """Before its evaluations a sensitivity run says how many and about how long; its most
    sensitive line warns when the test set is too small to rank layers."""
    from engine.config import SweepConfig
    from engine.sweep.sensitivity import run_sensitivity
    from tui.render import most_sensitive_line

    said = []
    config = SweepConfig(
        checkpoint=trained_checkpoint,
        dataset="synthetic",
        test_subset=32,
        levels=(50.0,),
        device="cpu",
        run_dir=str(tmp_path / "runs"),
    )
    result = run_sensitivity(config, on_event=said.append, layers=["conv1", "layer1.0.conv1"])
    notice = next(e.text for e in said if isinstance(e, Notice) and "evaluations" in e.text)
    assert notice.startswith("2 evaluations to go") and "32 test images" in notice
    assert "about" in notice
    assert result.test_images == 32
    line = most_sensitive_line(result)
    assert "caution: 32 test images measure each accuracy only to about" in line

"""Distributed runs through torch's launcher: 2 gloo ranks on the CPU, tiny synthetic data.

The end-to-end tests start the real `prunelab` command as a subprocess (it launches
`torch.distributed.run`, which starts the ranks), so they check what a user runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.checkpoints.io import read_checkpoint
from engine.config import SweepConfig
from engine.data.loader import BatchLoader
from engine.data.sources import load_split
from engine.errors import PrunelabError
from engine.options import parse_levels
from engine.runs.record import load_run, read_jsonl
from engine.runtime.distributed import (
    World,
    describe_batch,
    fingerprint,
    rank_device,
    world_from_env,
)
from engine.sweep.run import run_sweep

TINY = [
    "--model", "resnet20", "--dataset", "synthetic", "--device", "cpu",
    "--train-subset", "96", "--test-subset", "40", "--batch-size", "32",
]  # fmt: skip


REPO = Path(__file__).resolve().parents[1]


def prunelab(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    """`prunelab ARGS` as a user runs it (the console script's module), output captured."""
    command = [sys.executable, "-m", "tui.cli", *(str(a) for a in args)]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        env.pop(key, None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_world_comes_from_the_launcher_environment():
    assert world_from_env({}) == World()
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    world = world_from_env(env)
    assert world == World(1, 2, 1, 2) and world.distributed and not world.writer
    with pytest.raises(PrunelabError, match="not numeric"):
        world_from_env({**env, "RANK": "x"})
    with pytest.raises(PrunelabError, match="inconsistent"):
        world_from_env({**env, "RANK": "2"})


def test_cuda_ranks_take_their_local_gpu_and_refuse_a_fixed_one():
    cpu = torch.device("cpu")
    assert rank_device(cpu, World(1, 2, 1, 2)) == cpu
    with pytest.raises(PrunelabError, match="--device cuda"):
        rank_device(torch.device("cuda:1"), World(1, 2, 1, 2))


def test_the_batch_and_lr_sentence_says_the_lr_is_not_scaled():
    text = describe_batch(128, 0.1, World(0, 4, 0, 4))
    assert "4 ranks x 32 images = global batch 128" in text and "lr 0.1" in text
    assert "not scaled" in text


def test_rank_shares_make_up_exactly_the_single_process_batches(tmp_path):
    from tiny_runs import tiny_train_config

    data = load_split(tiny_train_config(tmp_path, train_subset=70), train=True)
    args = dict(augment=True, shuffle=True, seed=3)
    whole = BatchLoader(data, 16, **args)
    parts = [BatchLoader(data, 16, part=(r, 3), **args) for r in range(3)]
    for loader in (whole, *parts):
        loader.set_epoch(2)
    for batch, *shares in zip(whole, *parts, strict=True):
        assert max(len(s[1]) for s in shares) - min(len(s[1]) for s in shares) <= 1
        assert torch.equal(torch.cat([s[0] for s in shares]), batch[0])
        assert torch.equal(torch.cat([s[1] for s in shares]), batch[1])


def test_train_on_two_ranks_then_resume_on_one(tmp_path):
    runs, checkpoints = tmp_path / "runs", tmp_path / "ckpt"
    common = ["--run-dir", runs, "--checkpoint-dir", checkpoints]
    done = prunelab(
        "train", *TINY, *common, "--devices", "2", "--epochs", "2", "--checkpoint-every", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 ranks x 16 images = global batch 32" in done.stdout + done.stderr
    (run_dir,) = runs.iterdir()  # one run folder, written by rank 0 alone
    saved = sorted(p.name for p in checkpoints.iterdir())
    assert saved == ["synthetic_resnet20_ckpt_epoch1.pth", "synthetic_resnet20_ckpt_epoch2.pth"]
    assert load_run(run_dir).world_size == 2 and load_run(run_dir).status == "completed"
    assert json.loads((run_dir / "run.json").read_text())["world_size"] == 2
    for name in saved:  # both ranks held the same weights at every save
        checkpoint = read_checkpoint(checkpoints / name)
        ranks = checkpoint.extra["ranks"]
        assert ranks["world_size"] == 2 and len(ranks["fingerprints"]) == 2
        assert ranks["fingerprints"][0] == ranks["fingerprints"][1]
        assert ranks["fingerprints"][0] == fingerprint(checkpoint.state_dict)

    resumed = prunelab(
        "train", "--resume", checkpoints / saved[-1], "--epochs", "3", "--devices", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [p.name for p in runs.iterdir()] == [run_dir.name]  # the same run goes on
    assert [e["epoch"] for e in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2, 3]
    record = load_run(run_dir)
    assert record.status == "completed" and record.world_size == 1
    assert read_checkpoint(checkpoints / "synthetic_resnet20_ckpt_epoch3.pth").epoch == 3


POINT_FIELDS = ("level_percent", "sparsity_percent", "nonzero_parameters", "accuracy", "loss")


def test_a_two_rank_sweep_gives_the_single_process_points(trained_checkpoint, tmp_path):
    levels = "0,20,40,60,80"
    single = run_sweep(
        SweepConfig(
            checkpoint=trained_checkpoint,
            dataset="synthetic",
            test_subset=100,
            device="cpu",
            levels=parse_levels(levels),
            run_dir=str(tmp_path / "single"),
            eval_batch_size=50,
        )
    )
    args = ["--dataset", "synthetic", "--test-subset", "100", "--device", "cpu"]
    done = prunelab(
        "sweep", trained_checkpoint, *args, "--levels", levels, "--eval-batch-size", "50",
        "--run-dir", tmp_path / "spread", "--devices", "2",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "spread").iterdir()
    assert load_run(run_dir).world_size == 2
    spread = read_jsonl(run_dir / "sweep.jsonl")
    assert [p["level_percent"] for p in spread] == [0, 20, 40, 60, 80]  # in order, once each
    for mine, theirs in zip(spread, single.points, strict=True):
        for name in POINT_FIELDS:
            assert mine[name] == pytest.approx(getattr(theirs, name), rel=1e-6), name


def test_a_worker_refuses_sync_bn_on_cpu_ranks(tmp_path, monkeypatch):
    from tiny_runs import tiny_train_config

    from engine.training.train import train

    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(PrunelabError, match="SyncBatchNorm runs on GPUs only"):
        train(tiny_train_config(tmp_path, sync_bn=True))


def test_ctrl_c_stops_both_ranks_and_rank_0_saves(tmp_path):
    """SIGINT to the command's process group (what Ctrl-C or the app's Stop sends) reaches the
    launcher, which forwards it to the ranks; they stop at the same step and rank 0 saves."""
    import signal

    command = [sys.executable, "-m", "tui.cli", "train", *TINY, "--epochs", "50", "--devices", "2"]
    command += ["--run-dir", str(tmp_path / "runs"), "--checkpoint-dir", str(tmp_path / "ckpt")]
    env = {**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        for line in process.stdout:  # type: ignore[union-attr]
            if line.split()[:2] == ["epoch", "1/50"]:
                os.killpg(process.pid, signal.SIGINT)
                break
        process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130
    stopped = read_checkpoint(tmp_path / "ckpt" / "synthetic_resnet20_ckpt_stopped.pth")
    prints = stopped.extra["ranks"]["fingerprints"]
    assert len(prints) == 2 and prints[0] == prints[1] == fingerprint(stopped.state_dict)
    assert 1 <= stopped.epoch < 50
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert load_run(run_dir).status == "stopped"

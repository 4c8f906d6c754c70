"""A real SIGKILL, not an injected one: `prunelab train` killed after its first checkpoint leaves
that checkpoint whole, the run reads `interrupted`, and `--resume` finishes the run with one
metrics line per epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PRUNELAB = [sys.executable, "-m", "tui.cli"]


def prunelab(*args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    command = [*PRUNELAB, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def test_kill_9_after_the_first_checkpoint_loses_nothing_saved(tmp_path: Path) -> None:
    runs, checkpoints = tmp_path / "runs", tmp_path / "ck"
    args = ["train", "--dataset", "synthetic", "--model", "resnet20", "--device", "cpu"]
    # more epochs than the test waits for: however fast the machine, the kill lands mid-run
    args += ["--train-subset", "512", "--test-subset", "32", "--epochs", "1000"]
    args += ["--checkpoint-every", "1", "--run-dir", runs, "--checkpoint-dir", checkpoints]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([*PRUNELAB, *map(str, args)], env=env, stderr=subprocess.DEVNULL)
    first = checkpoints / "synthetic_resnet20_ckpt_epoch1.pth"
    deadline = time.monotonic() + 240
    try:
        while not first.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, "the run ended before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL

    listed = json.loads(prunelab("runs", "--run-dir", runs, "--json").stdout)
    (run,) = listed if isinstance(listed, list) else listed["runs"]
    assert run["status"] == "interrupted", run

    resumed = prunelab(
        "train",
        "--resume",
        first,
        "--epochs",
        3,
        "--run-dir",
        runs,
        "--checkpoint-dir",
        checkpoints,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "3/3 epochs done" in resumed.stdout
    (folder,) = [p for p in runs.iterdir() if p.is_dir()]  # the resume continues the same run
    metrics = folder / "metrics.jsonl"
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1, 2, 3]

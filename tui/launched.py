"""Runs the app starts on several devices: the `prunelab` command a user would type.

The app runs single-device jobs in its own process. With `devices` > 1 it runs
`prunelab <command> --devices N ... --json-lines` (which starts torch's launcher), turns rank 0's
event lines back into engine events, and stops it as Ctrl-C would: SIGINT to the command's
process group; the launcher forwards it to every rank, the ranks stop together and rank 0 saves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from engine.errors import PrunelabError
from engine.events import Event, event_from_dict
from engine.options import format_levels

POSITIONAL = ("checkpoint",)  # config fields the commands take as arguments


def config_args(config: Any) -> list[str]:
    """The command-line words that rebuild `config`: its non-default fields as options."""
    words: list[str] = [str(getattr(config, name)) for name in POSITIONAL if hasattr(config, name)]
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in POSITIONAL or value == f.default:
            continue
        option = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            words.append(option if value else "--no-" + f.name.replace("_", "-"))
        else:
            words += [option, format_levels(value) if isinstance(value, tuple) else str(value)]
    return words


def run_command(
    argv: list[str], on_event: Callable[[Event], None], stop: Callable[[], bool]
) -> dict[str, Any]:
    """Run `prunelab argv... --json-lines`, relay its events, return its closing Result."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", *argv, "--json-lines"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, so SIGINT reaches the launcher too
    )
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(process.stderr or ()), daemon=True)
    reader.start()
    finished = threading.Event()

    def watch_stop() -> None:
        while not finished.wait(0.2):
            if stop():
                os.killpg(process.pid, signal.SIGINT)
                return

    threading.Thread(target=watch_stop, daemon=True).start()
    result: dict[str, Any] | None = None
    try:
        for line in process.stdout or ():
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if data.get("event") == "Result":
                result = data
                continue
            event = event_from_dict(data)
            if event is not None:
                on_event(event)
        process.wait()
    finally:
        finished.set()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
    reader.join(timeout=5)
    if result is None:
        lines = [e.strip() for e in errors if e.strip() and not e.startswith(("W", "["))]
        raise PrunelabError(lines[-1] if lines else f"the run exited with {process.returncode}")
    return result


def train_on_devices(command: str, config: Any, resume: str | None, on_event, stop) -> Any:
    """`prunelab train` (or `finetune`) on `config.devices` ranks; its result."""
    if command == "finetune":
        from engine.training.finetune import FinetuneResult as result_type
    else:
        from engine.training.train import TrainResult as result_type

    argv = [command, *config_args(config), *(["--resume", resume] if resume else [])]
    data = run_command(argv, on_event, stop)
    return result_type(**{f.name: data[f.name] for f in fields(result_type) if f.name in data})


def sweep_on_devices(config: Any, resume_run: str | None, on_event, stop) -> Any:
    """`prunelab sweep` on `config.devices` ranks; the sweep as its run folder holds it."""
    from engine.sweep.run import read_sweep

    argv = ["sweep", "--resume", resume_run] if resume_run else ["sweep", *config_args(config)]
    if resume_run:
        argv += ["--devices", str(config.devices)]
    return read_sweep(run_command(argv, on_event, stop)["run_dir"])

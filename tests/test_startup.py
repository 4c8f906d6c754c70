"""Start-up pays only for what is used: help and bad options never import torch, the app or the
charts (each case a fresh interpreter, since this test process has them loaded already)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchvision", "textual", "plotext", "matplotlib", "numpy")

PROBE = """
import json, sys
from tui.cli import main
argv = json.loads(sys.argv[1])
heavy_names = sys.argv[2]
sys.argv = ["prunelab", *argv]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = json.loads(heavy_names)
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def run_probe(argv: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env={"COLUMNS": "100", "PATH": "", "PYTHONPATH": ":".join(sys.path)},
        timeout=120,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--help"], 0),
        (["sweep", "--help"], 0),
        (["train", "--help"], 0),
        (["sweep", "model.pth", "--bogus"], 2),
        (["sweep", "model.pth", "--levels", "0:200:5"], 2),
        (["sweep", "model.pth", "--tolerance", "-1"], 2),
        (["find", "model.pth", "--coarse-step", "0"], 2),
        (["sensitivity", "model.pth", "--test-subset", "-3"], 2),
        (["train", "--epochs", "0"], 2),
        (["finetune", "model.pth", "--epochs", "0"], 2),
        (["export", "model.pth", "50", "--method", "nope"], 2),
    ],
)
def test_help_and_bad_options_import_nothing_heavy(argv, code):
    result = run_probe(argv)
    assert result["code"] == code
    assert result["loaded"] == []


def test_the_console_script_skips_teardown_only_when_nothing_else_runs(monkeypatch, capsys):
    """`prunelab` ends with os._exit once torch is loaded (its teardown cost half a second of
    every command), after flushing what it printed; with another non-daemon thread alive, or a
    profiler watching, it exits normally so that nothing is cut short."""
    import threading

    import tui.cli as cli

    exits: list[tuple[str, int]] = []
    monkeypatch.setattr(cli.os, "_exit", lambda code: exits.append(("os._exit", code)))
    monkeypatch.setattr(cli, "main", lambda: (print("done"), sys.exit(3)))
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch") or object())
    cli.console()
    assert exits == [("os._exit", 3)] and capsys.readouterr().out == "done\n"

    release = threading.Event()
    worker = threading.Thread(target=release.wait)  # e.g. an app worker still saving
    worker.start()
    try:
        with pytest.raises(SystemExit) as exited:
            cli.console()
        assert exited.value.code == 3 and len(exits) == 1
    finally:
        release.set()
        worker.join()
    monkeypatch.setattr(cli.sys, "getprofile", lambda: object())  # e.g. python -m cProfile
    with pytest.raises(SystemExit):
        cli.console()
    assert len(exits) == 1


def test_importing_the_front_ends_changes_no_signal_handler():
    """Only the console script (tui.entry.console) installs the Ctrl-C handler; importing tui,
    tui.cli or tui.entry leaves the process's handlers alone (tests, the app, notebooks)."""
    probe = (
        "import signal; before = signal.getsignal(signal.SIGINT)\n"
        "import tui, tui.entry, tui.cli\n"
        "print(signal.getsignal(signal.SIGINT) is before)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
        env={"PATH": "", "PYTHONPATH": ":".join(sys.path)},
    )  # fmt: skip
    assert done.stdout.strip() == "True", done.stderr

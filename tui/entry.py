"""The `prunelab` command's entry point: Ctrl-C handled from the first instruction on."""

import contextlib
import os
import signal
import sys
from types import FrameType


def stop_before_start(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C while no run is going (imports, parsing, printing): stop at once, no traceback.

    In the middle of an import (torch takes seconds) the process ends right here: an exception
    unwinding through a half-loaded C extension sometimes crashed the interpreter on its way out
    (SIGABRT, or a RecursionError from the next import), about one Ctrl-C in eight on a busy
    2-core machine. Nothing is being written then."""
    print("\nstopped (Ctrl-C)", file=sys.stderr, flush=True)
    if _importing(frame):
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os._exit(130)
    raise SystemExit(130)


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def console() -> None:
    """The `prunelab` console script (and `python -m tui.cli`). The Ctrl-C handler goes in
    before anything heavy is imported (typer, then torch: seconds on a cold start), so one
    Ctrl-C never shows a traceback; importing this module changes nothing."""
    signal.signal(signal.SIGINT, stop_before_start)
    from tui.cli import console as run_cli

    run_cli()

"""Front ends over the engine: the `prunelab` CLI (tui.cli) and the Textual app (tui.app)."""

import signal
import sys
from pathlib import Path


def stop_before_start(signum: int, frame: object) -> None:
    """Ctrl-C while no run is going (imports, parsing, printing): stop at once, no traceback."""
    print("\nstopped (Ctrl-C)", file=sys.stderr, flush=True)
    raise SystemExit(130)


# Started as the `prunelab` console script: from here on, one Ctrl-C never shows a traceback
# (tui.cli imports typer, the commands import torch: seconds on a cold start).
if Path(sys.argv[0]).name == "prunelab":
    signal.signal(signal.SIGINT, stop_before_start)

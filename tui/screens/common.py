"""Small helpers the screens share: checkpoint listing, error lines (numbers: tui.formatting)."""

from __future__ import annotations

import time
from pathlib import Path

from tui.formatting import fmt_bytes

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt")
WIDE = 110  # columns from which the roomy layout is used (below it the form hides during runs)


def find_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoint files in `folder` (not recursive), newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES and not p.name.startswith(".")
    ]
    found.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    return found


def checkpoint_choices(folder: str | Path) -> list[tuple[str, str]]:
    """(path, one-line description) per checkpoint, newest first, for a picker."""
    choices = []
    for path in find_checkpoints(folder):
        stat = path.stat()
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(stat.st_mtime))
        choices.append((str(path), f"{path.name}  {fmt_bytes(stat.st_size)}  {when}"))
    return choices


def one_line(error: BaseException | None) -> str:
    """The message a dialog shows for a worker's exception: expected errors as they are, anything
    else with its type so a bug report has something to go on."""
    from engine.errors import PrunelabError

    if error is None:
        return "unknown error"
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(error, PrunelabError):
        return str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

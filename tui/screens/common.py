"""Small helpers the screens share: checkpoint listing, error lines (numbers: tui.formatting)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tui.formatting import fmt_bytes

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt")
WIDE = 110  # columns from which the roomy layout is used (below it the form hides during runs)
NARROW = 70  # below this the form and the live panels take turns (ctrl+f switches)


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


_COMMAND = re.compile(r"(?: with)? `prunelab \w+ ([^`]*)`")
_FLAG = re.compile(r"(?:\b(?:pass|use|try) )?--([a-z][a-z0-9-]*)(?: (?!--)([^\s,;)`]+))?")


def form_words(message: str, fields: dict[str, bool]) -> str:
    """An engine message with its CLI flags said as form fields, for the app's dialogs:
    `use --dataset synthetic` -> `set dataset to synthetic`, `pass --skip-checksum` -> `turn
    skip-checksum on`. `fields` maps each form field (CLI spelling) to whether it is a flag."""

    def flag(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if name not in fields:
            return match.group(0)
        if match.string[: match.start()].endswith("another "):
            return name  # "or another --checkpoint-dir" -> "or another checkpoint-dir"
        if fields[name]:
            tail = f" {value}" if value else ""
            return f"turn {name} on{tail}"
        return f"set {name} to {value}" if value else f"set {name}"

    def command(match: re.Match[str]) -> str:
        said = [_FLAG.sub(flag, f"--{part}".strip()) for part in match.group(1).split("--")[1:]]
        return ": " + " and ".join(said)

    return _FLAG.sub(flag, _COMMAND.sub(command, message))

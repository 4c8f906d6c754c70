"""`python -m tui.cli` is the `prunelab` command (torch's launcher starts the workers this way)."""

from tui.entry import console

console()

"""Front ends over the engine: the `prunelab` CLI (tui.cli) and the Textual app (tui.app).

Importing a package here has no side effects: the console script (tui.entry) installs the
Ctrl-C handler when it runs."""

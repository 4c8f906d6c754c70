"""The command palette (ctrl+p): every action of every screen by name, so a user can search
"export", "form" or "png" and run it from anywhere. Textual adds Quit, Keys and Theme itself."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

# Every action by name for the command palette: (screen, action, name, what it does).
# An action its screen says is not offered now (check_action False) is left out.
PALETTE = (
    ("train", "start", "Train: start training", "run the Train form (F5)"),
    ("train", "stop", "Train: stop training", "a resumable checkpoint is written (F6)"),
    ("train", "pick_resume", "Train: resume from a checkpoint", "fills the form from it (ctrl+o)"),
    ("train", "toggle_form", "Train: hide or show the form", "more room for the charts (ctrl+f)"),
    ("train", "save_chart", "Train: save the charts as PNG", "loss and accuracy (ctrl+s)"),
    ("finetune", "start", "Fine-tune: prune and fine-tune", "run the Fine-tune form (F5)"),
    ("finetune", "stop", "Fine-tune: stop", "a resumable checkpoint is written (F6)"),
    ("finetune", "pick_resume", "Fine-tune: resume from a checkpoint", "(ctrl+o)"),
    ("finetune", "toggle_form", "Fine-tune: hide or show the form", "(ctrl+f)"),
    ("finetune", "save_chart", "Fine-tune: save the charts as PNG", "(ctrl+s)"),
    ("sweep", "start", "Sweep: start a sweep", "prune the checkpoint level by level (F5)"),
    ("sweep", "stop", "Sweep: stop the sweep", "finished levels are kept (F6)"),
    (
        "sweep",
        "pick_checkpoint",
        "Sweep: pick the checkpoint",
        "from the checkpoint folder (ctrl+o)",
    ),
    ("sweep", "toggle_form", "Sweep: hide or show the form", "more room for the chart (ctrl+f)"),
    ("sweep", "zoom", "Sweep: zoom the chart", "the tolerance band, or all of 0-100 (z)"),
    (
        "sweep",
        "x_axis",
        "Sweep: chart against level, speedup, MACs or parameters",
        "the chart's x-axis in turn; speedup is measured when Latency batch is set (x)",
    ),
    ("sweep", "layers", "Sweep: per-layer view of the selected level", "sparsity per layer (l)"),
    ("sweep", "sensitivity", "Sweep: per-layer sensitivity", "prune one layer at a time (s)"),
    ("sweep", "save_chart", "Sweep: save the chart as PNG", "accuracy vs sparsity (ctrl+s)"),
    ("runs", "toggle_mark", "Runs: mark the run for the overlay", "compare runs (space)"),
    ("runs", "export", "Runs: export a pruned model", "from the selected sweep (e)"),
    ("runs", "continue_sweep", "Runs: continue the interrupted sweep", "only missing levels (c)"),
    ("runs", "layers", "Runs: per-layer view of the sweep's best level", "sparsity per layer (l)"),
    ("runs", "save_chart", "Runs: save the overlay chart as PNG", "(ctrl+s)"),
    ("runs", "refresh", "Runs: re-read the run folder", "(r)"),
)


class PrunelabCommands(Provider):
    """Every action by name in the command palette (ctrl+p); Textual adds Quit, Keys, Theme."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app: Any = self.app  # the PrunelabApp
        commands: list[tuple[str, str, Callable[[], Any]]] = [
            (
                "Go to the Train screen",
                "the training form and live panels (F2)",
                partial(app.switch_mode, "train"),
            ),
            (
                "Go to the Sweep screen",
                "prune a checkpoint level by level (F3)",
                partial(app.switch_mode, "sweep"),
            ),
            (
                "Go to the Runs screen",
                "past runs, overlays, export (F4)",
                partial(app.switch_mode, "runs"),
            ),
            (
                "Go to the Fine-tune screen",
                "prune a checkpoint, then train it with the mask fixed (F7)",
                partial(app.switch_mode, "finetune"),
            ),
            ("Help", "keys and what each screen does (F1)", app.action_help),
            (
                "Help on the focused field",
                "its full description and range (F1 on a field)",
                app.action_field_help,
            ),
        ]
        screens = app.screens_by_mode()
        for mode, action, name, help_text in PALETTE:
            screen = screens[mode]
            if getattr(screen, "ready", False) and screen.check_action(action, ()) is False:
                continue
            commands.append((name, help_text, partial(app.run_on, mode, action)))
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = max(matcher.match(name), matcher.match(help_text) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)

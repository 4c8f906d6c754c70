"""The command palette (ctrl+p): every action of every screen by name, so a user can search
"export", "form" or "png" and run it from anywhere. Textual adds Quit, Keys and Theme itself."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

# Every action by name for the command palette: (screen, action, name, what it does). The key
# is read from the screen's own bindings (`key_text`), so the palette never names a stale key.
# An action that makes no sense now (its screen's `offers`/`check_action`) is left out.
PALETTE = (
    ("train", "start", "Train: start training", "run the Train form"),
    ("train", "stop", "Train: stop training", "a resumable checkpoint is written"),
    ("train", "pick_resume", "Train: resume from a checkpoint", "fills the form from it"),
    ("train", "toggle_form", "Train: hide or show the form", "more room for the charts"),
    ("train", "toggle_chart", "Train: charts on the whole screen", "and back"),
    ("train", "save_chart", "Train: save the charts as PNG", "loss and accuracy"),
    ("finetune", "start", "Fine-tune: prune and fine-tune", "run the Fine-tune form"),
    ("finetune", "stop", "Fine-tune: stop", "a resumable checkpoint is written"),
    ("finetune", "pick_resume", "Fine-tune: resume from a checkpoint", "fills the form from it"),
    ("finetune", "toggle_form", "Fine-tune: hide or show the form", "more room for the charts"),
    ("finetune", "export_result", "Fine-tune: export the fine-tuned model", "sparse or slim"),
    ("finetune", "save_chart", "Fine-tune: save the charts as PNG", "loss and accuracy"),
    ("sweep", "start", "Sweep: start a sweep", "prune the checkpoint level by level"),
    ("sweep", "stop", "Sweep: stop the sweep", "finished levels are kept"),
    ("sweep", "pick_checkpoint", "Sweep: pick the checkpoint", "from the checkpoint folder"),
    ("sweep", "toggle_form", "Sweep: hide or show the form", "more room for the chart"),
    ("sweep", "toggle_chart", "Sweep: chart on the whole screen", "and back"),
    ("sweep", "zoom", "Sweep: zoom the chart", "the tolerance band, or all of 0-100"),
    (
        "sweep",
        "x_axis",
        "Sweep: chart against level, speedup, MACs or parameters",
        "the chart's x-axis in turn; speedup is measured when Latency batch is set",
    ),
    ("sweep", "finetune_level", "Sweep: fine-tune the selected level", "on the Fine-tune form"),
    ("sweep", "layers", "Sweep: per-layer view of the selected level", "sparsity per layer"),
    ("sweep", "sensitivity", "Sweep: per-layer sensitivity", "prune one layer at a time"),
    ("sweep", "save_chart", "Sweep: save the chart as PNG", "accuracy vs sparsity"),
    ("runs", "toggle_mark", "Runs: mark the run for the overlay", "compare runs"),
    ("runs", "export", "Runs: export a pruned model", "from the selected sweep"),
    ("runs", "continue_sweep", "Runs: continue the interrupted sweep", "only missing levels"),
    ("runs", "layers", "Runs: per-layer view of the sweep's best level", "sparsity per layer"),
    ("runs", "save_chart", "Runs: save the overlay chart as PNG", ""),
    ("runs", "refresh", "Runs: re-read the run folder", ""),
)


def key_text(app: Any, screen: Any, action: str) -> str:
    """The key bound to `action` on `screen`, as the footer shows it (`F5`, `^o`), or ""."""
    for bindings in screen._bindings.key_to_bindings.values():
        for binding in bindings:
            if binding.action == action:
                text = app.get_key_display(binding)
                return text.upper() if text[:1] == "f" and text[1:].isdigit() else text
    return ""


def offered(app: Any, screen: Any, action: str) -> bool:
    """Whether the palette offers `action` now: never a start while any job runs, never what
    its screen says makes no sense (wherever that screen's focus is)."""
    if action == "start" and getattr(app, "job", None) is not None:
        return False
    offers = getattr(screen, "offers", None)
    if offers is not None:
        return offers(action) is True
    if not getattr(screen, "ready", False):
        return True  # not drawn yet: its state is unknown, so the action is offered
    return screen.check_action(action, ()) is True


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
            if not offered(app, screen, action):
                continue
            key = key_text(app, screen, action)
            help_text = f"{help_text} ({key})" if key and help_text else help_text or key
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

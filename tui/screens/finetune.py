"""Fine-tune screen: the FinetuneConfig form and the same live panels as training.

Pruning then masked fine-tuning is a training run to the engine (engine.training.finetune), so this screen
is the Train screen with another form, another job and a result that says what pruning cost and
what fine-tuning won back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.binding import Binding
from textual.widgets import DataTable

from engine.methods import pruning_label
from engine.training.finetune_config import FinetuneConfig
from tui.formatting import fmt_acc, fmt_pruning
from tui.screens.common import find_checkpoints
from tui.screens.train import TrainScreen
from tui.widgets.text import plural

FINETUNE_GROUPS = ("Pruning", "Training", "Model", "Data", "Device", "Checkpoints", "Run")


class FinetuneScreen(TrainScreen):
    """Prune a checkpoint to a level, then train it with the mask fixed."""

    JOB = "finetune"
    TITLE_TEXT = "Fine-tune"
    IDLE_HEADLINE = "F5 prunes and fine-tunes · pick a checkpoint and a level"
    CONFIG = FinetuneConfig
    GROUPS = FINETUNE_GROUPS

    BINDINGS = [Binding("e", "export_result", "Export")]
    LETTER_ACTIONS = frozenset({"toggle_chart", "export_result"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        newest = find_checkpoints(self.checkpoint_dir)  # like Sweep: the newest is the default
        self.initial_values = {
            "checkpoint": str(newest[0]) if newest else "",
            **self.initial_values,
        }

    def offers(self, action: str) -> bool | None:
        if action == "export_result":  # a fine-tuned model to export: the finished run's
            return self.status == "completed" and bool(self.run_dir) and self.app.job is None
        return super().offers(action)

    def action_export_result(self) -> None:
        """Export the fine-tuned model: the Runs screen with this run selected, and its export
        dialog (the engine's export of a fine-tuning run: its own level, method and masks)."""
        self.app.switch_mode("runs")
        self._export_on_runs(Path(self.run_dir).name, tries=40)

    def _export_on_runs(self, name: str, tries: int) -> None:
        """Once the Runs screen is drawn: select run `name` and open its export."""
        runs = self.app.runs_screen
        if not runs.ready:
            if tries:
                self.app.set_timer(0.05, lambda: self._export_on_runs(name, tries - 1))
            return
        runs.refresh_runs()
        names = [listing.path.name for listing in runs.listings]
        if name in names:
            runs.query_one("#runs-table", DataTable).move_cursor(row=names.index(name))
        runs.action_export()

    def prefill(self, values: dict[str, Any]) -> None:
        """Fill the form (e.g. from a sweep's level) for a fresh run."""
        self.set_resume(None)
        if self.ready:
            self.form.set_values(values)
        else:
            self.initial_values.update(values)

    def start(self, config: FinetuneConfig) -> None:  # type: ignore[override]
        self.app.start_finetune(config, resume=self.resume_path)

    @staticmethod
    def _load_resume_config(path: str) -> FinetuneConfig:  # type: ignore[override]
        from engine.training.finetune import finetune_resume_config

        return finetune_resume_config(path)

    def begin(self, config: FinetuneConfig, resume: str | None) -> None:  # type: ignore[override]
        super().begin(config, resume)  # type: ignore[arg-type]
        if not resume:
            self.progress_text = (
                f"pruning {config.level:g}% {pruning_label(config.method, config.score)}: "
                "measuring dense and one-shot accuracy…"
            )
            if self.ready:
                self._show_progress()

    def _take_result(self, result: Any) -> None:
        super()._take_result(result)
        if result.status == "completed":
            self.progress_text = (
                f"done: {result.level_percent:g}% {fmt_pruning(result)} · one-shot "
                f"{fmt_acc(result.oneshot_accuracy)}% → {fmt_acc(result.recovered_accuracy)}% "
                f"after {plural(result.epochs_completed, 'epoch')} · "
                f"sparsity {result.sparsity:.2f}% · e exports it"
            )

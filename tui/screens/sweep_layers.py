"""The Sweep screen's per-layer actions: `l` shows the selected level layer by layer, `s` runs
per-layer sensitivity at the form's levels and opens the view with it. A mixin of SweepScreen,
which holds the config, the points, the level table and the job's progress."""

from __future__ import annotations

from typing import Any

from textual.coordinate import Coordinate
from textual.widgets import DataTable

from engine.config import SweepConfig
from engine.methods import score_words
from engine.sweep.rules import sensitivity_problems
from tui.screens.layers import open_layer_view
from tui.widgets.config_form import label_for
from tui.widgets.text import plural


class LayerActions:
    """action_layers, action_sensitivity and the sensitivity run's start and end."""

    def action_layers(self) -> None:
        """The selected level row (else the best level) layer by layer."""
        config = self.config
        if not self.points or config is None:
            self.notify("run a sweep first: the view shows one of its levels", severity="warning")
            return
        level = self.best_level if self.best_level is not None else self.points[-1].level_percent
        key = self.selected_level_key()
        if key is not None:
            level = float(key)
        self._open_layer_view(config, level)

    def selected_level_key(self) -> str | None:
        """The level of the level table's cursor row, from its row key (the cell text carries
        marks such as `70*~`)."""
        table = self.query_one("#level-table", DataTable)
        if not table.row_count or table.cursor_row < 0:
            return None
        return str(table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value)

    def _open_layer_view(self, config: Any, level: float) -> None:
        """The per-layer view of `config`'s sweep at `level`."""
        open_layer_view(
            self,
            checkpoint=config.checkpoint,
            level=level,
            method=config.method,
            include_classifier=config.include_classifier,
            model=config.model,
            tolerance=config.tolerance,
            run_root=config.run_dir,
            config=config,
        )

    def action_sensitivity(self) -> None:
        """Per-layer sensitivity of the form's checkpoint at the form's levels (one layer pruned
        at a time); the per-layer view shows it when done."""
        config = self.form.config
        if config is None:
            self.app.bell()
            self.notify(self.form.first_problem(), title="Cannot start", severity="warning")
            return
        problems = sensitivity_problems(config)  # the engine's rule, the CLI's words
        if problems:
            self.app.bell()
            text = f"{label_for(problems[0].field)}: {problems[0].message}"
            self.notify(text, title="Cannot start", severity="warning")
            return
        self.app.start_sensitivity(config)

    def begin_sensitivity(self, config: SweepConfig) -> None:
        self._begin(
            config,
            f"sensitivity of {config.checkpoint}",
            "loading the checkpoint and test data…",
        )

    def finish_sensitivity(self, result: Any = None, error: str | None = None) -> None:
        """A sensitivity run ended: say so, and open the per-layer view with it."""
        if error is not None or result is None:
            self.finish(None, error)
            return
        self.status = result.status
        self.fraction = 1.0 if result.status == "completed" else self.fraction
        words = score_words(result.score)
        self.progress_text = (
            f"sensitivity {result.status}: {plural(len(result.accuracy), 'layer')}"
            f"{', ' + words if words else ''} · l shows them with a level's sparsity"
        )
        if self.ready:
            self._show_progress()
            self._update_buttons()
        config = self.config
        if config is not None:
            level = self.best_level if self.best_level is not None else max(config.levels)
            self._open_layer_view(config, level)

"""The per-layer view of one sweep level: a bar per layer of how much of it is pruned, and,
when a sensitivity run of the same checkpoint exists, its accuracy with only that layer pruned
at each level, shaded like a heatmap (how far below the dense baseline)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from engine.methods import pruning_label, score_words
from tui.widgets.progress import bar
from tui.widgets.text import plural, toast_path

BAR_CELLS = 10


def heat_style(drop: float, tolerance: float) -> str:
    """Within the tolerance: green; up to 5x it: yellow; beyond: red (and bold, for no colour)."""
    if drop <= tolerance:
        return "green"
    if drop <= 5 * tolerance:
        return "yellow"
    return "bold red"


def sensitivity_cells(layer: str, sensitivity: Any, tolerance: float) -> list[Text]:
    row = sensitivity.accuracy.get(layer, {})
    base = sensitivity.baseline_accuracy
    cells = []
    for level in sensitivity.levels:
        acc = row.get(level)
        if acc is None:
            cells.append(Text("·", "dim"))
        elif base is None:
            cells.append(Text(f"{acc:.1f}"))
        else:
            cells.append(Text(f"{acc:.1f}", heat_style(base - acc, max(tolerance, 0.1))))
    return cells


class LayerView(ModalScreen[None]):
    """Sparsity per layer at `level` (from `engine.sweep.layers`), sensitivity beside it if given."""

    BINDINGS = [Binding("escape,enter,l,q", "close", "Close")]

    def __init__(
        self,
        title: str,
        rows: list[Any],
        *,
        sensitivity: Any = None,
        tolerance: float = 1.0,
    ) -> None:
        super().__init__(classes="dialog-screen -layers")
        self.title_text = title
        self.rows = rows  # (Screen.layers is taken)
        self.sensitivity = sensitivity
        self.tolerance = tolerance

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="layers-dialog"):
            yield Static(self.title_text, classes="dialog-title")
            table: DataTable = DataTable(id="layers-table", cursor_type="row", zebra_stripes=True)
            columns = ["layer", "weights", "pruned"]
            if self.sensitivity is not None:
                columns += [f"{level:g}%" for level in self.sensitivity.levels]
            table.add_columns(*columns)
            for layer in self.rows:
                cells: list[Any] = [
                    layer.name,
                    f"{layer.weights:,}",
                    f"{bar(layer.percent / 100, BAR_CELLS)} {layer.percent:5.1f}%",
                ]
                if self.sensitivity is not None:
                    cells += sensitivity_cells(layer.name, self.sensitivity, self.tolerance)
                table.add_row(*cells, key=layer.name)
            yield table
            yield Static(self._hint(), classes="dialog-hint", id="layers-hint")

    def _hint(self) -> str:
        if self.sensitivity is None:
            return (
                "s on the Sweep screen runs sensitivity (one layer pruned at a time) · Esc closes"
            )
        base = self.sensitivity.baseline_accuracy
        words = score_words(getattr(self.sensitivity, "score", "l1"))
        by = f" ({words})" if words else ""
        return (
            f"sensitivity{by}: accuracy % with only that layer pruned, dense {base:.1f}% · green "
            f"within {self.tolerance:g} pt, yellow within {5 * self.tolerance:g}, red beyond · "
            f"{plural(len(self.sensitivity.accuracy), 'layer')} measured · Esc closes"
        )

    def on_mount(self) -> None:
        self.query_one("#layers-table", DataTable).focus()

    def action_close(self) -> None:
        self.dismiss(None)


def find_sensitivity(run_root: str, checkpoint: str, score: str = "l1") -> Any:
    """The newest sensitivity run of `checkpoint` under `run_root` ranked by `score`, else the
    newest by any score (its hint names the score), read back; None if there is none."""
    from engine.runs.record import list_runs
    from engine.sweep.store import read_sensitivity

    runs = [
        listing
        for listing in list_runs(run_root)
        if listing.record.kind == "sensitivity"
        and (listing.record.config or {}).get("checkpoint") == checkpoint
    ]
    # the run's config names its score (an old run's none: l1); only the one shown is read
    runs.sort(key=lambda listing: (listing.record.config or {}).get("score", "l1") != score)
    for listing in runs:  # stable: the newest first within each
        try:
            return read_sensitivity(listing.path)
        except (OSError, ValueError, KeyError):
            continue
    return None


def open_layer_view(
    screen: Any,
    *,
    checkpoint: str,
    level: float,
    method: str,
    include_classifier: bool = False,
    model: str | None = None,
    tolerance: float = 1.0,
    run_root: str = "runs",
    config: Any = None,
) -> None:
    """Compute the per-layer sparsity in a worker (it loads the checkpoint), then show it.

    `config` (the sweep's SweepConfig) supplies the score, its seed and data, and the minimum
    density."""
    from engine.errors import PrunelabError
    from engine.sweep.layers import layer_sparsity

    app = screen.app  # the worker thread has no active app of its own

    def work() -> None:
        try:
            layers = layer_sparsity(
                checkpoint,
                level,
                method=method,
                include_classifier=include_classifier,
                model=model,
                min_density=getattr(config, "min_density", 0.0),
                score=getattr(config, "score", "l1"),
                seed=getattr(config, "seed", 0),
                data=config,
            )
        except (PrunelabError, OSError, ValueError) as exc:
            app.call_from_thread(screen.notify, str(exc), severity="error")
            return
        sensitivity = find_sensitivity(run_root, checkpoint, getattr(config, "score", "l1"))
        name = checkpoint.rsplit("/", 1)[-1]
        how = pruning_label(method, getattr(config, "score", "l1"))
        title = f"{how} {level:g}% · pruned share of each layer · {name}"
        app.call_from_thread(
            lambda: app.push_screen(
                LayerView(title, layers, sensitivity=sensitivity, tolerance=tolerance)
            )
        )

    screen.notify(f"reading {toast_path(checkpoint)} for the per-layer view…", timeout=2)
    screen.run_worker(work, thread=True, group="layers", exit_on_error=False)

"""Runs screen: past runs from the run folder, details of one, sweeps overlaid, export."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from engine.config import SweepConfig
from engine.errors import PrunelabError
from engine.export.config import ExportConfig
from engine.operations import (
    EXPORTABLE_KINDS,
    SWEEP_KINDS,
    export_config_from_run,
    why_not_resumable,
)
from engine.runs.lifecycle import RunInfo, list_run_infos
from tui.formatting import fmt_acc, fmt_level
from tui.safe import markup as escape
from tui.safe import plain, printable
from tui.screens.export_dialog import ExportDialog
from tui.screens.layers import open_layer_view
from tui.screens.run_details import RunDetails
from tui.screens.save import chart_path, save_chart
from tui.widgets.charts import OverlayChart
from tui.widgets.text import cut_words, elide_middle

# The list's columns, left to right; at 80 columns the optional ones are left out (the details
# pane below has everything): `dense` first, then `result` (the headline's words).
RUN_COLUMNS = ("✓", "run", "pruning", "checkpoint", "level", "top-1", "dense", "status", "result")
OPTIONAL_COLUMNS = ("dense", "result")
# What reading one damaged run folder can raise: shown for that run, never a crash of the screen.
_DAMAGE = (PrunelabError, OSError, ValueError, TypeError, KeyError, OverflowError, RecursionError)
CHECKPOINT_WIDTH = (14, 30)  # the checkpoint column: at least, at most (elided, keeps the name)


class RunsScreen(RunDetails, Screen):
    """Browse runs; mark sweeps with space to overlay them; export a sweep's chosen level."""

    AUTO_FOCUS = "#runs-table"  # not the hidden filter field above it
    BINDINGS = [
        Binding("space", "toggle_mark", "Mark"),
        Binding("e", "export", "Export"),
        Binding("c", "continue_sweep", "Continue"),
        Binding("r", "refresh", "Refresh", show=False),  # runs are re-read on each visit
        Binding("ctrl+s", "save_chart", "Save PNG", show=False),
        Binding("l", "layers", "Layers"),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self, run_root: str, *, name: str | None = None) -> None:
        super().__init__(name=name, id="runs-screen")
        self.run_root = run_root
        self.listings: list[RunInfo] = []  # the runs shown (those the filter keeps)
        self.filter_text = ""
        self.marked: list[str] = []  # run folder names, in marking order
        self._results: dict[str, tuple[tuple[float, ...], Any]] = {}  # name -> (mtimes, result)
        self.ready = False  # True once composed and mounted: widgets can be updated

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: any text of a run (Esc clears)", id="runs-filter")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="runs-bottom"):
            with VerticalScroll(id="run-details-scroll"):
                yield Static("", id="run-details")
            yield OverlayChart(id="overlay-chart")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.ready = True
        self.sub_title = "Runs"
        self.refresh_runs()

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    # -- data ----------------------------------------------------------------------------------

    def refresh_runs(self) -> None:
        """Re-read the runs; the cursor stays on the run it was on (a new run, e.g. an export,
        appears at the top without moving the cursor or the details)."""
        if not self.ready:
            return
        table = self.query_one("#runs-table", DataTable)
        keep = self.selected()
        everything = list_run_infos(self.run_root)
        names = {listing.path.name for listing in everything}
        self.marked = [m for m in self.marked if m in names]
        self.listings = [item for item in everything if self._kept(item)]
        width = table.size.width or self.app.size.width
        columns, room = self._columns(width)
        rows = []
        for listing in self.listings:
            cells = run_cells(listing, room)
            cells["✓"] = "✓" if listing.path.name in self.marked else ""
            rows.append((listing.path.name, cells))
        table.clear(columns=True)
        for column in columns:  # widths set: cells are Text, which auto-width did not measure
            cells_width = max((len(cells[column]) for _, cells in rows), default=0)
            table.add_column(column, key=column, width=max(len(column), cells_width))
        for name, cells in rows:
            # names, statuses and reasons come from files: text, not markup
            table.add_row(*(plain(cells[c]) for c in columns), key=name)
        if self.listings:
            names_shown = [item.path.name for item in self.listings]
            row = names_shown.index(keep.path.name) if keep and keep.path.name in names_shown else 0
            table.move_cursor(row=row)
        self._show_selected()

    def _columns(self, width: int) -> tuple[list[str], dict[str, int]]:
        """The columns that fit `width`, and the widths of the elided ones."""

        def longest(texts: list[str], least: int, most: int) -> int:
            return min(max([least, *(len(printable(t)) for t in texts)]), most)

        widths = {"✓": 1, "level": 5, "top-1": 6, "dense": 6}
        widths["status"] = longest([i.record.status for i in self.listings], 6, 11)
        widths["run"] = longest([i.label() for i in self.listings], 3, 20)
        widths["pruning"] = longest([i.pruning() for i in self.listings], 7, 16)
        low, high = CHECKPOINT_WIDTH
        high = longest([i.source() for i in self.listings], low, high)
        columns = list(RUN_COLUMNS)
        for optional in (None, *OPTIONAL_COLUMNS):
            if optional is not None:
                columns.remove(optional)
            fixed = sum(widths.get(c, 0) for c in columns if c not in ("checkpoint", "result"))
            room = width - fixed - 2 * len(columns) - 2  # cell padding, scrollbar
            result = 24 if "result" in columns else 0
            if room - result >= low:
                checkpoint = min(room - result, high)
                shown = {"run": widths["run"], "pruning": widths["pruning"]}
                return columns, {**shown, "checkpoint": checkpoint, "result": room - checkpoint}
        return columns, {"run": widths["run"], "pruning": widths["pruning"], "checkpoint": low}

    def _kept(self, listing: RunInfo) -> bool:
        """Whether the filter keeps a run: every word of it in the run's text (any case)."""
        if not self.filter_text:
            return True
        record = listing.record
        text = " ".join(
            (
                listing.path.name,
                listing.label(),
                record.kind,
                record.model,
                record.status,
                record.note,
                listing.pruning(),
                listing.source(),
                listing.headline(),
            )
        ).lower()
        return all(word in text for word in self.filter_text.lower().split())

    def action_filter(self) -> None:
        """`/`: type to keep the runs whose text holds every word; Enter back to the list."""
        field = self.query_one("#runs-filter", Input)
        field.add_class("-shown")
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "runs-filter":
            event.stop()
            self.filter_text = event.value.strip()
            self.refresh_runs()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "runs-filter":
            event.stop()
            if not event.value.strip():
                event.input.remove_class("-shown")
            self.query_one("#runs-table", DataTable).focus()

    def on_key(self, event: events.Key) -> None:
        field = self.query_one("#runs-filter", Input)
        if event.key == "escape" and field.has_focus:
            event.stop()
            field.value = ""
            field.remove_class("-shown")
            self.query_one("#runs-table", DataTable).focus()

    def selected(self) -> RunInfo | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.listings or table.cursor_row < 0 or table.cursor_row >= len(self.listings):
            return None
        return self.listings[table.cursor_row]

    def selected_sweep(self) -> RunInfo | None:
        """The selected run when it is a sweep (or find) run."""
        listing = self.selected()
        return listing if listing is not None and listing.record.kind in SWEEP_KINDS else None

    def _cached(self, listing: RunInfo, files: tuple[str, ...], read: Any) -> Any:
        """`read(run folder)`, cached while the run's result `files` do not change (the
        details and the chart both ask, at every move of the cursor)."""
        name = listing.path.name
        stamps = tuple(
            (listing.path / f).stat().st_mtime if (listing.path / f).exists() else 0.0
            for f in files
        )
        cached = self._results.get(name)
        if cached is None or cached[0] != stamps:
            cached = (stamps, read(listing.path))
            self._results[name] = cached
        return cached[1]

    def sweep(self, listing: RunInfo) -> Any:
        """The SweepResult of a sweep run."""
        from engine.sweep.store import read_sweep  # not at start-up

        return self._cached(listing, ("sweep.jsonl",), read_sweep)

    def _sensitivity_or_none(self, listing: RunInfo) -> Any:
        if listing.record.kind != "sensitivity":
            return None
        from engine.sweep.store import read_sensitivity

        try:
            return self._cached(listing, ("sensitivity.jsonl", "summary.json"), read_sensitivity)
        except (PrunelabError, OSError, ValueError, KeyError):
            return None

    def _sweep_or_none(self, listing: RunInfo) -> Any:
        if listing.record.kind not in SWEEP_KINDS:
            return None
        try:
            return self.sweep(listing)
        except (PrunelabError, OSError, ValueError):
            return None

    # -- events / actions ----------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_mark":
            listing = self.selected() if self.ready else None
            return listing is not None and listing.record.kind in ("train", *SWEEP_KINDS)
        if action == "layers":
            return (self.selected_sweep() is not None) if self.ready else None
        if action == "export":
            if not self.ready:
                return None
            listing = self.selected()
            if listing is None or listing.record.kind not in EXPORTABLE_KINDS:
                return False  # a sweep's level or a fine-tuned model
            return None if getattr(self.app, "job", None) is not None else True
        if action == "continue_sweep":
            if not self.ready:
                return None
            listing = self.selected_sweep()
            if listing is None or why_not_resumable(listing) is not None:
                return False  # the engine's one rule for what can be resumed
            return None if getattr(self.app, "job", None) is not None else True
        return True

    def action_continue_sweep(self) -> None:
        """Resume an interrupted sweep: only the missing levels are evaluated."""
        listing = self.selected()
        if self.check_action("continue_sweep", ()) is not True or listing is None:
            self.app.bell()
            return
        self.app.switch_mode("sweep")
        self.app.start_resume(str(listing.path))

    def action_layers(self) -> None:
        """The selected sweep's best level (else its highest), layer by layer."""
        listing = self.selected_sweep()
        result = self._sweep_or_none(listing) if listing is not None else None
        if listing is None or result is None or not result.points:
            self.app.bell()
            return
        config = listing.record.config or {}
        level = result.best_level_percent
        if level is None:
            level = max(p.level_percent for p in result.points)
        open_layer_view(
            self,
            checkpoint=str(config.get("checkpoint", "")),
            level=level,
            method=str(config.get("method", result.method)),
            include_classifier=bool(config.get("include_classifier", False)),
            model=result.model,
            tolerance=float(config.get("tolerance", result.tolerance)),
            run_root=self.run_root,
            config=SweepConfig.from_dict(config),
        )

    def action_save_chart(self) -> None:
        """The chart as shown: a run's own curves go in its folder, an overlay under charts/."""
        chart = self.query_one(OverlayChart)
        selected = self.selected()
        if self.marked or selected is None:
            path = chart_path("", "overlay")
        else:
            path = chart_path(str(selected.path), "chart")
        save_chart(self, [chart.spec()], path)

    def action_refresh(self) -> None:
        self.refresh_runs()

    def action_toggle_mark(self) -> None:
        listing = self.selected()
        if listing is None or listing.record.kind not in ("train", *SWEEP_KINDS):
            self.app.bell()
            return
        name = listing.path.name
        table = self.query_one("#runs-table", DataTable)
        if name in self.marked:
            self.marked.remove(name)
        else:
            # one chart compares one kind: marking a training run clears marked sweeps
            is_train = listing.record.kind == "train"
            others = [m for m in self.marked if self._is_train(m) != is_train]
            for other in others:
                self.marked.remove(other)
                table.update_cell(other, table.ordered_columns[0].key, "")
            if others:
                self.notify("the overlay compares one kind of run: other marks cleared")
            self.marked.append(name)
        table.update_cell(name, table.ordered_columns[0].key, "✓" if name in self.marked else "")
        self._show_selected()

    def _is_train(self, name: str) -> bool:
        listing = next((item for item in self.listings if item.path.name == name), None)
        return listing is not None and listing.record.kind == "train"

    def action_export(self) -> None:
        """A sweep's level (its best, to start with) or a fine-tuned model, checked by the
        engine in the dialog; the cursor stays on this run while the export's row appears."""
        listing = self.selected()
        if listing is None or listing.record.kind not in EXPORTABLE_KINDS:
            self.app.bell()
            return
        if getattr(self.app, "job", None) is not None:
            self.notify("wait for the running job to finish", severity="warning")
            return
        try:
            base = export_config_from_run(listing.path)
        except (PrunelabError, OSError, ValueError) as exc:
            self.notify(escape(exc), severity="error")
            return

        def chosen(config: ExportConfig | None) -> None:
            if config is not None:
                self.app.start_export(config, run=str(listing.path))

        fixed = listing.record.kind == "finetune"
        self.app.push_screen(ExportDialog(listing.label(), base, level_fixed=fixed), chosen)

    # -- drawing -------------------------------------------------------------------------------

    def _show_selected(self) -> None:
        listing = self.selected()
        details = self.query_one("#run-details", Static)
        if listing is None:
            details.update(
                f"no runs in {escape(self.run_root)}/ yet: start one on the Train or Sweep screen"
            )
        else:
            try:
                details.update(self._details(listing))
            except _DAMAGE as exc:  # one damaged run never takes the screen down
                details.update(f"cannot show {escape(listing.path.name)}: {escape(exc)}")
        try:
            self._show_overlay()
        except _DAMAGE as exc:
            self.notify(f"cannot chart {listing.path.name if listing else 'the runs'}: {exc}")
        self.app.refresh_bindings()

    def on_resize(self) -> None:
        self.refresh_runs()


def run_cells(listing: RunInfo, room: dict[str, int]) -> dict[str, str]:
    """A run's cells in the Runs list (the `prunelab runs` table shows the same values)."""
    numbers = listing.numbers()
    return {  # text from run.json: printable first (no escapes), then fitted
        "run": elide_middle(printable(listing.label()), room["run"]),
        "pruning": elide_middle(printable(listing.pruning() or "-"), room["pruning"]),
        "checkpoint": elide_middle(printable(listing.source() or "-"), room["checkpoint"]),
        "level": fmt_level(numbers.level),
        "top-1": fmt_acc(numbers.accuracy),
        "dense": fmt_acc(numbers.dense),
        "status": printable(listing.record.status, 20),
        "result": cut_words(printable(listing.headline()), max(room.get("result", 0), 12)),
    }

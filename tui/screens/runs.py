"""Runs screen: past runs from the run folder, details of one, sweeps overlaid, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from engine.errors import PrunelabError
from engine.runs import RunListing, list_runs
from tui.formatting import fmt_acc
from tui.screens.dialogs import ExportDialog
from tui.widgets.charts import OverlayChart

SWEEP_KINDS = ("sweep", "find")
RUN_COLUMNS = ("✓", "run", "status", "result")


def result_line(listing: RunListing) -> str:
    """One line per run for the table, from what run.json records."""
    record = listing.record
    summary = record.summary or {}
    if record.status == "failed" and record.reason:
        return record.reason
    if record.kind == "train":
        acc = summary.get("final_test_acc")
        epochs = summary.get("epochs_completed")
        if acc is None:
            return ""
        return f"test {fmt_acc(acc)}% after {epochs} epochs"
    if record.kind in SWEEP_KINDS and summary.get("sentence"):
        return str(summary["sentence"])
    if record.kind == "export" and summary.get("path"):
        ratio = 100 * summary.get("ratio", 0.0)
        return f"{summary['path']}: {ratio:.1f}% of the dense file"
    return ""


class RunsScreen(Screen):
    """Browse runs; mark sweeps with space to overlay them; export a sweep's chosen level."""

    BINDINGS = [
        Binding("space", "toggle_mark", "Mark"),
        Binding("e", "export", "Export"),
        Binding("c", "continue_sweep", "Continue"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self, run_root: str, *, name: str | None = None) -> None:
        super().__init__(name=name, id="runs-screen")
        self.run_root = run_root
        self.listings: list[RunListing] = []
        self.marked: list[str] = []  # run folder names, in marking order
        self._sweeps: dict[str, tuple[float, Any]] = {}  # name -> (mtime, SweepResult)
        self.ready = False  # True once composed and mounted: widgets can be updated

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*RUN_COLUMNS)
        yield table
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
        if not self.ready:
            return
        table = self.query_one("#runs-table", DataTable)
        keep = table.cursor_row
        self.listings = list_runs(self.run_root)
        names = {listing.path.name for listing in self.listings}
        self.marked = [m for m in self.marked if m in names]
        table.clear()
        for listing in self.listings:
            record = listing.record
            name = listing.path.name
            table.add_row(
                "✓" if name in self.marked else "",
                name,
                record.status,
                result_line(listing),
                key=name,
            )
        if self.listings:
            table.move_cursor(row=min(max(keep, 0), len(self.listings) - 1))
        self._show_selected()

    def selected(self) -> RunListing | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.listings or table.cursor_row < 0 or table.cursor_row >= len(self.listings):
            return None
        return self.listings[table.cursor_row]

    def selected_sweep(self) -> RunListing | None:
        """The selected run when it is a sweep (or find) run."""
        listing = self.selected()
        return listing if listing is not None and listing.record.kind in SWEEP_KINDS else None

    def sweep(self, listing: RunListing) -> Any:
        """The SweepResult of a sweep run, cached while its files do not change."""
        from engine.sweep_store import read_sweep

        name = listing.path.name
        marker = listing.path / "sweep.jsonl"
        mtime = marker.stat().st_mtime if marker.exists() else 0.0
        cached = self._sweeps.get(name)
        if cached is None or cached[0] != mtime:
            cached = (mtime, read_sweep(listing.path))
            self._sweeps[name] = cached
        return cached[1]

    # -- events / actions ----------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("toggle_mark", "export", "continue_sweep"):
            if not self.ready:
                return None
            listing = self.selected_sweep()
            if listing is None:
                return None
            if action == "continue_sweep" and listing.record.status not in ("stopped", "failed"):
                return False  # only an interrupted sweep can be continued
            if action != "toggle_mark" and getattr(self.app, "job", None) is not None:
                return None
        return True

    def action_continue_sweep(self) -> None:
        """Resume an interrupted sweep: only the missing levels are evaluated."""
        listing = self.selected()
        if self.check_action("continue_sweep", ()) is not True or listing is None:
            self.app.bell()
            return
        from engine.config import SweepConfig

        config = SweepConfig.from_dict(listing.record.config)
        self.app.switch_mode("sweep")
        self.app.start_sweep(config, resume_run=str(listing.path))

    def action_refresh(self) -> None:
        self.refresh_runs()

    def action_toggle_mark(self) -> None:
        listing = self.selected_sweep()
        if listing is None:
            self.app.bell()
            return
        name = listing.path.name
        if name in self.marked:
            self.marked.remove(name)
        else:
            self.marked.append(name)
        table = self.query_one("#runs-table", DataTable)
        table.update_cell(name, table.ordered_columns[0].key, "✓" if name in self.marked else "")
        self._show_overlay()

    def action_export(self) -> None:
        listing = self.selected_sweep()
        if listing is None:
            self.app.bell()
            return
        if getattr(self.app, "job", None) is not None:
            self.notify("wait for the running job to finish", severity="warning")
            return
        from engine.export import FORMATS

        try:
            result = self.sweep(listing)
        except (PrunelabError, OSError, ValueError) as exc:
            self.notify(str(exc), severity="error")
            return
        config = listing.record.config

        def chosen(answer: dict | None) -> None:
            if answer is None:
                return
            self.app.start_export(
                checkpoint=str(config.get("checkpoint", "")),
                level_percent=answer["level_percent"],
                method=str(config.get("method", result.method)),
                include_classifier=bool(config.get("include_classifier", False)),
                fmt=answer["fmt"],
                model=result.model,
            )

        self.app.push_screen(
            ExportDialog(listing.path.name, result.best_level_percent, tuple(FORMATS)), chosen
        )

    # -- drawing -------------------------------------------------------------------------------

    def _show_selected(self) -> None:
        listing = self.selected()
        details = self.query_one("#run-details", Static)
        if listing is None:
            details.update(
                f"no runs in {self.run_root}/ yet: start one on the Train or Sweep screen"
            )
        else:
            details.update(self._details(listing))
        self._show_overlay()
        self.app.refresh_bindings()

    def _details(self, listing: RunListing) -> str:
        record = listing.record
        config = record.config or {}
        lines = [
            f"[b]{listing.path.name}[/b]",
            f"{record.kind} · {record.model} · {record.status}"
            + (" · [reverse]SYNTHETIC[/reverse]" if record.synthetic else ""),
            f"created {record.created}"
            + (f" · finished {record.finished}" if record.finished else ""),
        ]
        if record.device:
            lines.append(f"device {record.device}")
        if record.reason:
            lines.append(f"reason: {record.reason}")
        if record.kind == "train":
            s = record.summary or {}
            lines.append(
                f"epochs {s.get('epochs_completed', '?')}/{config.get('epochs', '?')} · "
                f"final {fmt_acc(s.get('final_test_acc'))}% · best {fmt_acc(s.get('best_test_acc'))}%"
            )
            lines.append(
                f"lr {config.get('lr')} · batch {config.get('batch_size')} · "
                f"T_max {config.get('t_max')}"
            )
            if s.get("checkpoint"):
                lines.append(f"checkpoint {s['checkpoint']}")
        elif record.kind in SWEEP_KINDS:
            try:
                result = self.sweep(listing)
            except (PrunelabError, OSError, ValueError) as exc:
                lines.append(f"cannot read the sweep: {exc}")
            else:
                lines.append(f"[b]{result.sentence()}[/b]")
                lines.append(
                    f"{result.method} · {len(result.points)} levels · "
                    f"tolerance {result.tolerance:g} · checkpoint {config.get('checkpoint', '?')}"
                )
                hint = "space marks it for the overlay · e exports a level"
                if record.status in ("stopped", "failed"):
                    hint += " · c continues it"
                lines.append(hint)
        if record.data:
            lines.append(f"data {record.data}")
        return "\n".join(lines)

    def _show_overlay(self) -> None:
        chart = self.query_one(OverlayChart)
        names = list(self.marked)
        if not names:
            listing = self.selected_sweep()
            if listing is not None:
                names = [listing.path.name]
        series = []
        for name in names:
            listing = next((item for item in self.listings if item.path.name == name), None)
            if listing is None:
                continue
            try:
                result = self.sweep(listing)
            except (PrunelabError, OSError, ValueError):
                continue
            points = [p for p in result.points if p.evaluated and p.accuracy is not None]
            series.append(
                (
                    _short(name),
                    [p.sparsity_percent for p in points],
                    [p.accuracy for p in points],
                )
            )
        if [s[0] for s in series] != [s[0] for s in chart.series] or series != chart.series:
            chart.set_data(series)

    def marked_paths(self) -> list[Path]:
        return [Path(self.run_root) / name for name in self.marked]


def _short(name: str) -> str:
    """A legend label: the run folder name without its date (the time tells runs apart)."""
    parts = name.split("-", 2)
    return f"{parts[1]}-{parts[2]}" if len(parts) == 3 and parts[0].isdigit() else name

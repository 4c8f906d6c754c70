"""The Runs screen's details pane and chart: what one run says about itself, and the curves
of the selected or marked runs. A mixin of RunsScreen, which holds the listing, the marks and
the cached sweep and sensitivity reads these use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Static

from engine.errors import PrunelabError
from engine.measure.stats import BEST_LEVEL_RULE
from engine.methods import pruning_label
from engine.operations import SWEEP_KINDS, why_not_resumable
from engine.runs.lifecycle import RunInfo
from engine.runs.record import read_metrics
from engine.runs.summaries import TrainSummary
from tui.formatting import fmt_acc, fmt_pruning, is_jpeg
from tui.render import classes_failing_line, most_sensitive_line
from tui.safe import markup as escape
from tui.safe import printable
from tui.screens.sweep import answer_text
from tui.widgets.charts import SERIES_COLORS, SERIES_SYMBOLS, OverlayChart
from tui.widgets.text import elide_middle, plural

RICH_COLORS = {"orange": "dark_orange"}  # plotext's colour names rich spells otherwise


class RunDetails:
    """The details text and the overlay chart of the Runs screen."""

    listings: list[RunInfo]
    marked: list[str]

    def _path_line(self, label: str, path: str) -> str:
        """`label path` in one line of the details pane: a long path loses its middle."""
        width = self.query_one("#run-details", Static).size.width or 58
        return f"{label} {escape(elide_middle(printable(path), width - len(label) - 1))}"

    def _details(self, listing: RunInfo) -> str:
        record = listing.record
        config = record.config or {}
        folder = f"[b]{escape(listing.path.name)}[/b]"
        lines = [
            f"[b]{escape(record.name, 60)}[/b] · {escape(listing.path.name)}"
            if record.name
            else folder,
            escape(f"{record.kind} · {record.model} · {record.status}", 200)
            + (" · [reverse]SYNTHETIC[/reverse]" if record.synthetic else "")
            + (" · JPEG" if is_jpeg(record.data) else ""),
            escape(
                f"created {record.created}"
                + (f" · finished {record.finished}" if record.finished else "")
            ),
        ]
        if listing.damage:
            lines.append(f"damaged: {escape(listing.damage)}")
        if record.note:
            lines.append(f"note: {escape(record.note, 400, one_line=False)}")
        if record.device:
            lines.append(f"device {escape(record.device)}")
        if record.reason:
            lines.append(f"reason: {escape(record.reason)}")
        if record.kind == "train":
            lines += self._train_details(listing, config)
        elif record.kind in SWEEP_KINDS:
            lines += self._sweep_details(listing)
        elif listing.headline():  # sensitivity, export, fine-tuning: the table cuts it at 80 cols
            lines.append(f"[b]{escape(listing.headline())}[/b]")
            sensitivity = self._sensitivity_or_none(listing)
            sensitive = most_sensitive_line(sensitivity) if sensitivity is not None else ""
            if sensitive:
                lines.append(escape(sensitive) + " · on the chart")
            if record.kind == "finetune":
                lines.append(self._path_line("from", listing.source()))
                lines.append("e exports the fine-tuned model")
        if record.data:
            lines.append(f"data {escape(record.data)}")
        return "\n".join(self._legend() + lines)  # the overlay's legend first: in view

    def _train_details(self, listing: RunInfo, config: dict) -> list[str]:
        """A training run's epochs and accuracy, its schedule, its last checkpoint."""
        s = listing.summary if isinstance(listing.summary, TrainSummary) else TrainSummary()
        lines = [
            f"epochs {s.epochs_completed}/{escape(config.get('epochs', '?'), 20)} · "
            f"final {fmt_acc(s.final_test_acc)}% · best {fmt_acc(s.best_test_acc)}%",
            escape(
                f"lr {config.get('lr')} · batch {config.get('batch_size')} · "
                f"T_max {config.get('t_max')}",
                200,
            ),
        ]
        if s.checkpoint:
            lines.append(self._path_line("checkpoint", s.checkpoint))
        return lines

    def _sweep_details(self, listing: RunInfo) -> list[str]:
        """A sweep's answer, its rule, the classes failing first, its checkpoint and keys."""
        try:
            result = self.sweep(listing)
        except (PrunelabError, OSError, ValueError) as exc:
            return [f"cannot read the sweep: {escape(exc)}"]
        lines = [f"[b]{escape(sweep_answer(listing.record, result))}[/b]", BEST_LEVEL_RULE]
        failing = classes_failing_line(result)
        if failing:
            lines.append(escape(failing))
        lines.append(
            escape(
                f"{fmt_pruning(result)} · {plural(len(result.points), 'level')} · "
                f"tolerance {result.tolerance:g}"
            )
        )
        lines.append(self._path_line("checkpoint", listing.source() or "?"))
        hint = "space marks it for the overlay · e exports a level · l per layer"
        if why_not_resumable(listing) is None:
            hint += " · c continues it"
        lines.append(hint)
        return lines

    def _legend(self) -> list[str]:
        """The overlay's legend, whole: each marked run's symbol, name, pruning and checkpoint
        (the chart's title has room for the symbols and names only)."""
        by_name = {item.path.name: item for item in self.listings}
        marked = [by_name[name] for name in self.marked if name in by_name]
        lines = ["[b]overlay[/b] (space unmarks)"] if marked else []
        for i, listing in enumerate(marked):
            symbol = SERIES_SYMBOLS[i % len(SERIES_SYMBOLS)]
            color = RICH_COLORS.get(SERIES_COLORS[i % len(SERIES_COLORS)], "default")
            parts = [listing.label(), listing.pruning(), Path(listing.source()).name]
            text = " · ".join(escape(p, 60) for p in parts if p)
            lines.append(f"[{color}]{symbol}[/] {text}")
        return lines + [""] * bool(marked)

    def _show_overlay(self) -> None:
        """The marked runs overlaid (sweeps: accuracy vs sparsity; training runs: test
        accuracy per epoch), else the selected run's own curves."""
        chart = self.query_one(OverlayChart)
        by_name = {item.path.name: item for item in self.listings}
        marked = [by_name[name] for name in self.marked if name in by_name]
        selected = self.selected()
        kind = "sweep"
        series: list[tuple[str, list[float], list[float]]] = []
        if marked:
            kind = "train" if marked[0].record.kind == "train" else "sweep"
            for listing in marked:
                series += self._curves(listing, label=_label(listing), train_too=False)
        elif selected is not None and selected.record.kind in (
            "train",
            "sensitivity",
            *SWEEP_KINDS,
        ):
            kind = "train" if selected.record.kind == "train" else "sweep"
            series = self._curves(selected, label=_label(selected), train_too=True)
        if series != chart.series or kind != chart.kind:
            chart.set_data(series, kind)

    def _curves(
        self, listing: RunInfo, *, label: str, train_too: bool
    ) -> list[tuple[str, list[float], list[float]]]:
        """A run's curves for the chart: a sweep's accuracy vs sparsity, or a training run's
        test accuracy per epoch (and its train accuracy when shown alone)."""
        if listing.record.kind == "train":
            epochs, _ = read_metrics(listing.path)  # damaged lines skipped (the details say so)
            xs = [float(e["epoch"]) for e in epochs]
            curves = [("test" if train_too else label, xs, [float(e["test_acc"]) for e in epochs])]
            trained = [e for e in epochs if isinstance(e.get("train_acc"), (int, float))]
            if train_too and trained:
                train_acc = [float(e["train_acc"]) for e in trained]
                curves.append(("train", [float(e["epoch"]) for e in trained], train_acc))
            return curves if xs else []
        sensitivity = self._sensitivity_or_none(listing)
        if sensitivity is not None:
            return sensitivity_curves(sensitivity)
        result = self._sweep_or_none(listing)
        if result is None:
            return []
        points = [p for p in result.points if p.evaluated and p.accuracy is not None]
        return [(label, [p.sparsity_percent for p in points], [p.accuracy for p in points])]


def sensitivity_curves(result: Any) -> list[tuple[str, list[float], list[float]]]:
    """The most sensitive layers' accuracy against that layer's level, from the dense point."""
    curves = []
    for name in result.most_sensitive():
        row = sorted(result.accuracy[name].items())
        if result.baseline_accuracy is not None:
            row = [(0.0, result.baseline_accuracy), *row]
        curves.append((name, [level for level, _ in row], [acc for _, acc in row]))
    return curves


def sweep_answer(record: Any, result: Any) -> str:
    """A sweep's answer in words; partial (`running after 3 of 21 levels, so far: …`) until
    every level is done."""
    levels = (record.config or {}).get("levels")
    total = len(levels) if isinstance(levels, list | tuple) else len(result.points)
    status = record.status if record.status != "completed" else result.status
    return answer_text(status, result.sentence(), len(result.points), total)


def _label(listing: RunInfo) -> str:
    """A legend label: the run's name, else a sweep's method and a run's start time
    (`layerwise 01-02 10:00`)."""
    record = listing.record
    if record.name:
        return printable(record.name, 60)
    created = record.created.replace("T", " ")[5:16] if record.created else listing.path.name
    if record.kind in SWEEP_KINDS:
        config = record.config or {}
        method = pruning_label(config.get("method", record.kind), config.get("score", "l1"))
        return printable(f"{method} {created}", 60)
    return printable(f"{record.model} {created}", 60)

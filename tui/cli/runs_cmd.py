"""`prunelab runs` and `report`: past runs listed, tabulated and charted."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from engine.errors import PrunelabError
from engine.methods import named_score
from engine.runs.record import RUN_KINDS, SWEEP_KINDS
from tui import render, sweep_chart, tables
from tui.cli.options import DEFAULT_RUN_DIR, RunDirOpt
from tui.cli.output import EXIT_FAILURE, Output, error_line, output_options
from tui.formatting import fmt_pruning, is_jpeg


@output_options("json_out")
def runs(
    out: Output,
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    kind: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--kind", help=f"only runs of this kind ({', '.join(RUN_KINDS)})"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="show at most N runs (0 = all)")] = 0,
) -> None:
    """The past runs, newest first: each run's folder and name, how it pruned, the checkpoint it
    read, its status and headline (its best accuracy, its best sparsity, or why it did not
    end: the line the app shows) and its note.

    Damaged runs are listed too, each with what is wrong with it, and each run that can go on
    (stopped, failed, or interrupted: killed) with the command that resumes it."""
    from engine.errors import ConfigError
    from engine.operations import why_not_resumable
    from engine.runs.lifecycle import list_run_infos
    from engine.runs.record import check_run_root

    try:
        check_run_root(run_dir, create=False)
    except PrunelabError as exc:
        raise ConfigError("run_dir", str(exc)) from None
    everything = list_run_infos(run_dir)
    kinds = sorted(set(RUN_KINDS) | {r.record.kind for r in everything})
    if kind is not None and kind not in kinds:
        raise ConfigError("kind", f"{kind!r} is not allowed; one of {', '.join(kinds)}")
    listings = [r for r in everything if kind is None or r.record.kind == kind]
    if limit:
        listings = listings[:limit]
    if out.json:
        out.document(
            [
                {
                    "run": item.path.name,
                    "path": str(item.path),
                    **dataclasses.asdict(item.record),
                    "headline": item.headline(),
                    "damage": item.damage,
                    "resume": resume_command(item) if why_not_resumable(item) is None else None,
                }
                for item in listings
            ]
        )
        return
    if not listings:
        missing = "" if Path(run_dir).is_dir() else " (the folder does not exist yet)"
        out.line(f"no {kind + ' ' if kind else ''}runs under {run_dir}{missing}")
        return
    out.renderable(tables.runs_table(listings, out.console.width))
    for item in listings:
        if item.damage:
            out.line(f"damaged: {item.path.name}: {item.damage}", "yellow")
        elif why_not_resumable(item) is None:
            out.line(f"{item.record.status}: {item.path.name}: resume with {resume_command(item)}")


def resume_command(info: Any) -> str:
    """The command that continues a resumable run (engine.operations.why_not_resumable)."""
    from engine.operations import SWEEP_KINDS, resume_checkpoint

    if info.kind in SWEEP_KINDS:
        return f"prunelab sweep --resume {info.path}"
    return f"prunelab {info.kind} --resume {resume_checkpoint(info)}"


@output_options("json_out", "quiet")
def report(
    out: Output,
    names: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN...", help="run folders, or their names (or unique prefixes) in --run-dir"
        ),
    ],
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    png: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--png",
            metavar="FILE",
            # escaped: rich markup would take `[png]` for a style and drop it
            help=escape(
                "also write the chart as an image (needs matplotlib: pip install 'prunelab[png]')"
            ),
        ),
    ] = None,
) -> None:
    """A table per run and one chart of accuracy vs sparsity with every sweep overlaid."""
    from engine.runs.record import resolve_run

    shown = Reported()
    for name in names:
        _report_run(out, resolve_run(run_dir, name), shown)
    sweeps, labels, documents, lines = shown.sweeps, shown.labels, shown.documents, shown.lines
    series, baselines = sweep_chart.chart_data(sweeps, labels if len(sweeps) > 1 else None)
    out.chart(series, baselines)
    if png is not None and not sweeps:
        raise PrunelabError("--png needs at least one sweep or find run among RUN...")
    missing = png is not None and importlib.util.find_spec("matplotlib") is None
    if png is not None and not missing:
        sweep_chart.write_png(png, series, baselines, title=_png_title(sweeps, documents))
        lines.append(f"chart written to {png}")
    out.document({"runs": documents, "png": None if missing else png})
    for line in lines[:-1]:
        out.line(line)
    out.final(lines[-1])
    if missing:  # the tables are printed; only the image could not be written
        error_line(f"{png} not written: --png needs matplotlib: pip install 'prunelab[png]'")
        raise typer.Exit(EXIT_FAILURE)


@dataclass
class Reported:
    """What `report` gathers over its runs: the sweeps to overlay with their labels, one
    document per run (--json) and the closing lines."""

    sweeps: list[Any] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _report_run(out: Output, path: Path, shown: Reported) -> None:
    """One run's lines, tables and warnings (by its kind: REPORTERS) and its JSON document."""
    from engine.runs.lifecycle import read_run_info
    from engine.runs.record import changed_checkpoints

    listing = read_run_info(path)
    record = listing.record
    entry: dict[str, Any] = {"run": path.name, "path": str(path), "kind": record.kind}
    entry["status"], entry["synthetic"] = record.status, record.synthetic
    entry["data"] = record.data
    if record.data:
        out.line(f"{path.name}: {record.data}")
    if record.note:
        out.line(f"{path.name}: note: {record.note}")
    warnings = [listing.damage] if listing.damage else []
    warnings += [
        f"{ck} no longer holds what this run wrote (its hash changed)"
        for ck in changed_checkpoints(record)
    ]
    reporter = REPORTERS.get(record.kind)
    if reporter is None:
        shown.lines.append(f"{path.name}: {record.kind} run, nothing to tabulate")
    else:
        warnings += reporter(out, listing, entry, shown)
    entry["warnings"] = warnings
    for warning in warnings:
        out.line(f"warning: {path.name}: {warning}", "yellow")
    shown.documents.append(entry)


def _report_sweep(out: Output, listing: Any, entry: dict[str, Any], shown: Reported) -> list[str]:
    from engine.sweep.store import read_sweep

    path, record = listing.path, listing.record
    result = read_sweep(path)
    shown.sweeps.append(result)
    shown.labels.append(f"{record.name or path.name} ({fmt_pruning(result)})")
    entry["result"] = {**dataclasses.asdict(result), "sentence": result.sentence()}
    for table in tables.sweep_tables(result, width=out.console.width, name=record.name):
        out.renderable(table)
    shown.lines.append(render.sweep_line(result))
    return [result.reason] if result.reason else []


def _report_train(out: Output, listing: Any, entry: dict[str, Any], shown: Reported) -> list[str]:
    from engine.runs.record import read_metrics

    path, record = listing.path, listing.record
    history, damage = read_metrics(path)
    entry["history"] = history
    title = f"{record.name + ': ' if record.name else ''}training {record.model}: {path}"
    out.renderable(tables.train_table(history, "SYNTHETIC " * record.synthetic + title))
    shown.lines.append(f"{path.name}: " + listing.headline())
    return [damage] if damage else []


def _report_sensitivity(
    out: Output, listing: Any, entry: dict[str, Any], shown: Reported
) -> list[str]:
    from engine.sweep.store import read_sensitivity

    path = listing.path
    result = read_sensitivity(path)
    entry["result"] = result
    out.renderable(tables.sensitivity_table(result))
    shown.lines.append(f"{path.name}: " + listing.headline())
    sensitive = render.most_sensitive_line(result)
    if sensitive:
        shown.lines.append(f"{path.name}: {sensitive}")
    return []


# What `report` shows for each kind of run: its tables, its closing line, its warnings.
REPORTERS = {
    "sweep": _report_sweep,
    "find": _report_sweep,
    "train": _report_train,
    "sensitivity": _report_sensitivity,
}


def _png_title(sweeps: list[Any], documents: list[dict[str, Any]]) -> str:
    """The chart's title, saying SYNTHETIC or JPEG when every run's test images were such."""
    axis = getattr(sweeps[0], "x", "level") if sweeps else "level"
    title = f"top-1 accuracy vs {sweep_chart.AXIS_TITLES[axis]}"
    runs = [d for d in documents if d["kind"] in SWEEP_KINDS]
    scores = {getattr(s, "score", "l1") for s in sweeps}
    if len(scores) == 1 and named_score(next(iter(scores))):
        title = f"{title}, {scores.pop()} score"
    if runs and all(d["synthetic"] for d in runs):
        return f"{title} (SYNTHETIC data)"
    if runs and all(is_jpeg(d.get("data")) for d in runs):
        return f"{title} (JPEG test images)"
    return title

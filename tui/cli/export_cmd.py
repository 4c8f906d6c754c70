"""`prunelab export`: write the model pruned at one level, masks made permanent."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.export.config import ExportConfig
from tui import tables
from tui.cli.options import CheckpointArg, config_options, make_config, typed_by_user
from tui.cli.output import EXIT_USAGE, Output, error_line, finish, output_options
from tui.cli.reporter import run_engine
from tui.formatting import fmt_bytes, fmt_level


@config_options(ExportConfig, skip=("checkpoint",))
@output_options("json_out", "quiet")
def export(
    ctx: typer.Context,
    out: Output,
    checkpoint: CheckpointArg,
    level: Annotated[
        float,
        typer.Option(
            "--level",
            help="percent of the prunable weights to remove (from 0 to 100)",
            show_default=False,
            rich_help_panel="Pruning",
        ),
    ],
    **options: Any,
) -> None:
    """Write the model pruned at one level, with masks made permanent, and print its sizes.

    The file is itself a checkpoint every other command accepts. CHECKPOINT may also be a sweep or find run folder: its level is then pruned exactly as the sweep pruned it (its checkpoint, method, score and seed, classifier choice and minimum density), as the app's Runs screen (e) does.
    """
    if "output" in typed_by_user(ctx, ["output"]) and not options["output"].strip():
        error_line("invalid value for --output: an empty path; leave --output out for the default")
        raise typer.Exit(EXIT_USAGE)
    if Path(checkpoint).is_dir():
        _export_sweep_level(ctx, out, checkpoint, level, options)
        return
    config = make_config(ExportConfig, options, checkpoint=checkpoint, level=level)
    from engine.export.writer import export_pruned  # torch: only once the options are known good

    result, _ = run_engine(out, export_pruned, config)
    _report(out, result, level)


# What a run folder's own config decides; only these export options may be given with one.
_FROM_RUN = ("format", "output")


def _export_sweep_level(
    ctx: typer.Context, out: Output, run: str, level: float, options: dict[str, Any]
) -> None:
    """`prunelab export RUN --level L`: one level of a sweep run, through the engine's
    `export_from_sweep` (the same masks the sweep measured)."""
    from engine.errors import PrunelabError
    from engine.operations import export_config_from_sweep, export_from_sweep

    taken = sorted(typed_by_user(ctx, [k for k in options if k not in _FROM_RUN]))
    if taken:
        flags = ", ".join("--" + name.replace("_", "-") for name in taken)
        error_line(
            f"{run} is a run folder: its own settings decide {flags}; "
            + ("drop them" if len(taken) > 1 else "drop it")
        )
        raise typer.Exit(EXIT_USAGE)
    try:
        config = export_config_from_sweep(run, level, options["format"], options["output"])
    except (PrunelabError, OSError, ValueError) as exc:
        error_line(f"invalid value for CHECKPOINT: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    make_config(ExportConfig, dataclasses.asdict(config))  # the same checks (exit 2)

    def entry(config: ExportConfig, on_event: Any, stop: Any) -> Any:
        return export_from_sweep(
            run, level, config.format, output=config.output, on_event=on_event, stop=stop
        )

    result, _ = run_engine(out, entry, config)
    _report(out, result, level)


def _report(out: Output, result: Any, level: float) -> None:
    if result.status != "completed":
        finish(out, result.status, f"export at {fmt_level(level)}: nothing written", None)
        return
    out.document({**dataclasses.asdict(result), "ratio": result.ratio})
    out.renderable(tables.export_table(result))
    finish(
        out,
        result.status,
        f"wrote {result.path}: {fmt_bytes(result.file_bytes)}, "
        f"{100 * result.ratio:.1f}% of the dense file "
        f"({fmt_bytes(result.dense_file_bytes)}); "
        f"sparsity {fmt_level(result.sparsity_percent)}"
        + (
            f"; ONNX Runtime within {result.onnx_max_abs_diff:.1e} of PyTorch"
            if result.onnx_max_abs_diff is not None
            else ""
        ),
        None,
    )

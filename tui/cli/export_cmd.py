"""`prunelab export`: write the model pruned at one level, masks made permanent."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from engine.export_config import ExportConfig
from tui import tables
from tui.cli.options import CheckpointArg, config_options, make_config
from tui.cli.output import Output, finish, output_options
from tui.cli.reporter import run_engine
from tui.formatting import fmt_bytes, fmt_level


@config_options(ExportConfig, skip=("checkpoint",))
@output_options("json_out", "quiet")
def export(
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

    The file is itself a checkpoint every other command accepts. To export a level of a sweep exactly as the sweep pruned it (its method, classifier choice and minimum density), use the app's Runs screen (e).
    """
    config = make_config(ExportConfig, options, checkpoint=checkpoint, level=level)
    from engine.export import export_pruned  # torch: only once the options are known good

    result, _ = run_engine(out, export_pruned, config)
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

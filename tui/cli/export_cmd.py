"""`prunelab export`: write the model pruned at one level, masks made permanent."""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Optional

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
        Optional[float],  # noqa: UP045 - typer needs a runtime type here
        typer.Option(
            "--level",
            help="percent of the prunable weights to remove (from 0 to 100); for a run: "
            "a sweep's best level, a fine-tuning run's own level when left out",
            show_default=False,
            rich_help_panel="Pruning",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Write the model pruned at one level, with masks made permanent, and print its sizes.

    The file is itself a checkpoint every other command accepts. CHECKPOINT may also be a run (its folder, or its name or a unique prefix of it in --run-dir, as report takes): a sweep or find run's level is pruned exactly as the sweep pruned it (its checkpoint, method, score and seed, classifier choice and minimum density), a fine-tuning run's model is written at its own level, as the app's Runs screen (e) does.
    """
    if "output" in typed_by_user(ctx, ["output"]) and not options["output"].strip():
        error_line("invalid value for --output: an empty path; leave --output out for the default")
        raise typer.Exit(EXIT_USAGE)
    run = _run_folder(checkpoint, options["run_dir"])
    if run is not None:
        _export_run(ctx, out, run, level, options)
        return
    if level is None:
        error_line("missing option --level (the percent of weights to remove, 0 to 100)")
        raise typer.Exit(EXIT_USAGE)
    config = make_config(ExportConfig, options, checkpoint=checkpoint, level=level)
    from engine.export.writer import export_pruned  # torch: only once the options are known good

    result, _ = run_engine(out, export_pruned, config)
    _report(out, result, level)


# What a run folder's own config decides; only these export options may be given with one.
_FROM_RUN = ("format", "output", "run_dir", "name", "note")


def _run_folder(checkpoint: str, run_dir: str) -> str | None:
    """The run CHECKPOINT names (a run folder, or a run's name in `run_dir` as `report` and
    `sweep --resume` take), None when it is a file or names no run."""
    from engine.errors import PrunelabError
    from engine.runs.record import resolve_run

    if Path(checkpoint).is_file():
        return None
    try:
        return str(resolve_run(run_dir, checkpoint))
    except PrunelabError:
        if Path(checkpoint).is_dir():
            return checkpoint  # a folder that is no run: the engine says so
        return None


def _export_run(
    ctx: typer.Context, out: Output, run: str, level: float | None, options: dict[str, Any]
) -> None:
    """`prunelab export RUN [--level L]`: a sweep's level or a fine-tuned model, through the
    engine's `export_from_run` (the same masks the run measured)."""
    from engine.errors import ConfigError, PrunelabError
    from engine.operations import export_config_from_run, export_run_as

    taken = sorted(typed_by_user(ctx, [k for k in options if k not in _FROM_RUN]))
    if taken:
        flags = ", ".join("--" + name.replace("_", "-") for name in taken)
        error_line(
            f"{run} is a run folder: its own settings decide {flags}; "
            + ("drop them" if len(taken) > 1 else "drop it")
        )
        raise typer.Exit(EXIT_USAGE)
    try:
        config = export_config_from_run(
            run,
            level,
            options["format"],
            options["output"],
            name=options["name"],
            note=options["note"],
        )
    except ConfigError:
        raise
    except (PrunelabError, OSError, ValueError) as exc:
        error_line(f"invalid value for CHECKPOINT: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    make_config(ExportConfig, dataclasses.asdict(config))  # the same checks (exit 2)

    result, _ = run_engine(out, partial(export_run_as, run), config)
    _report(out, result, config.level)


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

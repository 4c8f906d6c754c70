"""`prunelab export`: write the model pruned at one level, masks made permanent."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from engine.config import EXPORT_FORMATS, SweepConfig
from engine.options import describe_allowed, field_default
from tui import tables
from tui.cli.options import _SWEEP_FIELDS, CheckpointArg, ConfigProblems
from tui.cli.output import Output, output_options
from tui.formatting import fmt_bytes, fmt_level


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
        ),
    ],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help=escape(
                _SWEEP_FIELDS["method"].metadata["help"]
                + " ("
                + describe_allowed(_SWEEP_FIELDS["method"].metadata)
                + ")"
            ),
        ),
    ] = field_default(SweepConfig, "method"),
    include_classifier: Annotated[
        bool,
        typer.Option(
            "--include-classifier",
            help=escape(_SWEEP_FIELDS["include_classifier"].metadata["help"]),
        ),
    ] = field_default(SweepConfig, "include_classifier"),
    fmt: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--format",
            metavar="FORMAT",
            help=escape(
                "sparse = compact file (bitmask + values, compressed), dense = plain state "
                "dict the seed's code loads, slim = structured only: the removed channels "
                "taken out (fewer parameters and MACs, and faster: the format that speeds up) "
                f"[default: {EXPORT_FORMATS[0]}]"
            ),
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--model",
            help="architecture, when the checkpoint does not record it "
            f"({describe_allowed(_SWEEP_FIELDS['model'].metadata)})",
            show_default=False,
        ),
    ] = None,
    min_density: Annotated[
        float,
        typer.Option(
            "--min-density",
            help=escape(
                _SWEEP_FIELDS["min_density"].metadata["help"]
                + f" ({describe_allowed(_SWEEP_FIELDS['min_density'].metadata)})"
            ),
        ),
    ] = field_default(SweepConfig, "min_density"),
    output: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="where to write (default: beside the checkpoint, "
            "<name>_<method><level>.<format>.pth)",
        ),
    ] = None,
    run_dir: Annotated[
        str,
        typer.Option("--run-dir", help=_SWEEP_FIELDS["run_dir"].metadata["help"]),
    ] = field_default(SweepConfig, "run_dir"),
) -> None:
    """Write the model pruned at one level, with masks made permanent, and print its sizes.

    The file is itself a checkpoint every other command accepts.
    """
    # The config checks the values it shares with export (exit 2 naming the option).
    shared = {"method": method, "min_density": min_density}
    if model is not None:
        shared["model"] = model
    probe = SweepConfig(checkpoint=checkpoint, **shared)
    problems = [p for p in probe.problems() if p.field in shared]
    if problems:
        raise ConfigProblems(problems)
    kwargs: dict[str, Any] = {
        "method": method,
        "include_classifier": include_classifier,
        "model": model,
        "min_density": min_density,
    }
    if fmt is not None:
        kwargs["fmt"] = fmt
    from engine.export import export_pruned  # torch: only once the options are known good

    result = export_pruned(checkpoint, level, output=output, run_dir=run_dir, **kwargs)
    out.document({**dataclasses.asdict(result), "ratio": result.ratio})
    out.renderable(tables.export_table(result))
    out.final(
        f"wrote {result.path}: {fmt_bytes(result.file_bytes)}, "
        f"{100 * result.ratio:.1f}% of the dense file "
        f"({fmt_bytes(result.dense_file_bytes)}); "
        f"sparsity {fmt_level(result.sparsity_percent)}"
    )

"""`prunelab sweep`, `find` and `sensitivity`: prune a checkpoint and measure what it costs."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Optional

import typer

from engine.config import FIND_COARSE_STEP, RECOVERY_FIELDS, SENSITIVITY_LEVELS, SweepConfig
from engine.errors import PrunelabError
from engine.sweep.rules import find_problems, raise_first, sensitivity_problems
from tui import render, sweep_chart, tables
from tui.cli.options import CheckpointArg, config_options, make_config, typed_by_user
from tui.cli.output import EXIT_USAGE, Output, error_line, finish, output_options
from tui.cli.reporter import run_engine
from tui.formatting import fmt_pct


def _sweep_output(out: Output, result: Any, *, chart: bool = True) -> None:
    out.document(
        {**dataclasses.asdict(result), "sentence": result.sentence()}
        if hasattr(result, "sentence")
        else result
    )
    if result.points:
        for table in tables.sweep_tables(result, width=out.console.width):
            out.renderable(table)
        if chart:
            series, baselines = sweep_chart.chart_data([result])
            out.chart(series, baselines)


@config_options(SweepConfig, skip=("checkpoint", "target_speedup"))
@output_options("json_out", "json_lines", "quiet")
def sweep(
    ctx: typer.Context,
    out: Output,
    checkpoint: Annotated[
        Optional[str],  # noqa: UP045 - typer needs a runtime type here
        typer.Argument(
            metavar="CHECKPOINT",
            help="the checkpoint to prune (not needed with --resume)",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--resume",
            metavar="RUN",
            help="finish an interrupted sweep or find run (its folder or name under --run-dir) "
            "with its own checkpoint and settings; only missing levels are computed",
            rich_help_panel="Run",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Prune a checkpoint at each level and evaluate: accuracy vs sparsity, sizes, the answer.

    Levels are percents of the original prunable weights removed, as start:stop:step with stop included (e.g. 0:50:10) or a list (e.g. 0,40,60.5).

    Ctrl-C keeps every finished level and exits 130; --resume RUN computes only the missing ones.
    """
    run = _run_to_resume(resume, checkpoint, options["run_dir"])
    config = make_config(
        SweepConfig, options, checkpoint=checkpoint or ("(resumed)" if run else "")
    )
    # torch: only once the options are known to be good
    from engine.operations import DEVICE_SETTINGS, resume_run
    from engine.sweep.run import run_sweep

    if run is not None:  # the engine's one rule: the run's own settings, a find stays a find
        device = {k: options[k] for k in typed_by_user(ctx, DEVICE_SETTINGS)}
        result, _ = run_engine(
            out, lambda _, on_event, stop: resume_run(run, on_event, stop, **device), config
        )
    else:
        result, _ = run_engine(out, run_sweep, config)
    _sweep_output(out, result)
    finish(
        out,
        result.status,
        render.sweep_line(result),
        f"prunelab sweep --resume {result.run_dir}",
    )


def _run_to_resume(resume: str | None, checkpoint: str | None, run_dir: str) -> str | None:
    """The sweep run `--resume` names (a folder, or a name under --run-dir), checked by the
    engine's rule; None for a new sweep, which needs its checkpoint."""
    from engine.runs.record import load_run, resolve_run
    from engine.sweep.rules import sweep_resume_problem

    if resume is None:
        if checkpoint is None:
            error_line("missing argument CHECKPOINT (or --resume RUN)")
            raise typer.Exit(EXIT_USAGE)
        return None
    run = str(resolve_run(run_dir, resume))
    problem = sweep_resume_problem(run, load_run(run).kind)
    if problem:
        raise PrunelabError(problem)
    return run


@config_options(SweepConfig, skip=("checkpoint", "levels", "refine", "early_stop", "cumulative"))
@output_options("json_out", "json_lines", "quiet")
def find(
    out: Output,
    checkpoint: CheckpointArg,
    coarse_step: Annotated[
        float,
        typer.Option(
            "--coarse-step",
            help="scan 0, step, 2*step, ... % until the first level outside the tolerance, "
            "then bisect down to --resolution",
            rich_help_panel="Pruning",
        ),
    ] = FIND_COARSE_STEP,
    **options: Any,
) -> None:
    """The best-sparsity answer alone: the highest level within --tolerance of the dense baseline
    (with --target-speedup S: the most accurate level measured at least S times faster).

    Prints it as one line a script can read, e.g. best_level_percent=62.5 accuracy=92.31 baseline=93.10 tolerance=1 method=layerwise score=l1 run=...
    """
    raise_first(find_problems(coarse_step))
    config = make_config(SweepConfig, options, checkpoint=checkpoint)
    from engine.sweep.run import find_best

    result, _ = run_engine(out, find_best, config, coarse_step=coarse_step)
    _sweep_output(out, result, chart=False)
    if out.human and (config.target_speedup or config.x != "level"):
        out.line(result.sentence())  # the answer in the user's units, above the key=value line
    if result.synthetic and out.human:
        out.line(render.SYNTHETIC_WARNING, "bold yellow")
    finish(out, result.status, render.find_line(result), None)


@config_options(
    SweepConfig,
    skip=(
        "checkpoint",
        "method",
        "refine",
        "resolution",
        "tolerance",
        "early_stop",
        "bn_recalibrate",
        "min_density",
        "latency_batch",
        "x",
        "target_speedup",
        *RECOVERY_FIELDS,
        "devices",  # one layer at a time on one device; not spread over ranks
    ),
    defaults={"levels": SENSITIVITY_LEVELS},
)
@output_options("json_out", "json_lines", "quiet")
def sensitivity(
    out: Output,
    checkpoint: CheckpointArg,
    layers: Annotated[
        str,
        typer.Option(
            "--layers",
            help="comma-separated layer names to test (default: every prunable layer)",
            rich_help_panel="Pruning",
        ),
    ] = "",
    **options: Any,
) -> None:
    """Per-layer sensitivity: prune one layer at a time (layerwise, by --score), the others dense.

    The layer x level accuracy table shows which layers tolerate pruning.
    """
    config = make_config(SweepConfig, options, checkpoint=checkpoint)
    raise_first(sensitivity_problems(config))
    from engine.sweep.sensitivity import run_sensitivity  # torch: only once the options are good
    from tui.widgets.text import plural  # its package loads textual: not before it is needed

    names = [n.strip() for n in layers.split(",") if n.strip()] or None
    result, synthetic = run_engine(out, run_sensitivity, config, layers=names)
    out.document(result)
    if result.layers:
        out.renderable(tables.sensitivity_table(result))
        sensitive = render.most_sensitive_line(result)
        if sensitive:
            out.line(sensitive)
    line = (
        f"{plural(len(result.layers), 'layer')} x {plural(len(result.levels), 'level')}, baseline "
        f"{fmt_pct(result.baseline_accuracy)}, run {result.run_dir}"
    )
    finish(out, result.status, line, None, synthetic=synthetic)

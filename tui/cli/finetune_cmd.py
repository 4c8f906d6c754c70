"""`prunelab finetune`: prune a checkpoint once and let it recover with the mask fixed."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Optional

import typer

from engine.training.finetune_config import FinetuneConfig
from tui import tables
from tui.cli.options import check_config, config_options, make_config, typed_by_user
from tui.cli.output import EXIT_USAGE, Output, error_line, finish, output_options
from tui.cli.reporter import run_engine
from tui.formatting import fmt_level, fmt_pruning


@config_options(FinetuneConfig, skip=("checkpoint",))
@output_options("json_out", "json_lines", "quiet")
def finetune(
    ctx: typer.Context,
    out: Output,
    checkpoint: Annotated[
        Optional[str],  # noqa: UP045 - typer needs a runtime type here
        typer.Argument(
            metavar="CHECKPOINT",
            help="the trained checkpoint to prune and fine-tune (not needed with --resume)",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--resume",
            metavar="CHECKPOINT",
            help="continue a fine-tuning run from its checkpoint (mask, optimizer, position); "
            "only the options you type override its saved config",
            rich_help_panel="Checkpoints",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Prune CHECKPOINT to --level with --method, then train it with the mask fixed: pruned
    weights stay exactly 0, BatchNorm trains, the lr anneals per step (cosine to 0, or
    --lr-rewind). Reports one-shot and recovered accuracy and the measured sparsity.

    Ctrl-C saves a resumable checkpoint and exits 130; --resume CHECKPOINT goes on from it.
    """
    if resume is not None:
        from engine.training.finetune import finetune_resume_config

        explicit = {k: v for k, v in options.items() if k in typed_by_user(ctx, options)}
        config = finetune_resume_config(resume, **explicit)
        check_config(config)
    elif checkpoint is None:
        error_line("missing argument CHECKPOINT (or --resume CHECKPOINT)")
        raise typer.Exit(EXIT_USAGE)
    else:
        config = make_config(FinetuneConfig, options, checkpoint=checkpoint)
    from engine.training.finetune import (
        finetune as run_finetune,
    )  # torch: only once the options are good

    result, synthetic = run_engine(out, run_finetune, config, resume=resume)
    out.document({**dataclasses.asdict(result), "sentence": result.sentence()})
    if result.history:
        title = f"fine-tuning {result.level_percent:g}% {fmt_pruning(result)}: {result.run_dir}"
        out.renderable(tables.train_table(result.history, "SYNTHETIC " * synthetic + title))
    line = (
        f"{result.sentence()} on {result.train_images:,} training images ({result.data}); "
        f"measured sparsity "
        f"{fmt_level(result.sparsity)} ({result.pruned_weights:,} of "
        f"{result.prunable_weights:,} weights at 0), best epoch {result.best_epoch or '-'}, "
        f"checkpoint {result.checkpoint or 'none'}"
    )
    hint = f"prunelab finetune --resume {result.checkpoint}" if result.checkpoint else None
    finish(out, result.status, line, hint, synthetic=synthetic)

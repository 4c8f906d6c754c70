"""`prunelab train`: train a model with checkpoints, or resume one."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Optional

import typer

from engine.config import TrainConfig
from tui import tables
from tui.cli.options import check_config, config_options, make_config, typed_by_user
from tui.cli.output import Output, finish, output_options
from tui.cli.reporter import run_engine
from tui.formatting import fmt_pct


@config_options(TrainConfig)
@output_options("json_out", "json_lines", "quiet")
def train(
    ctx: typer.Context,
    out: Output,
    resume: Annotated[
        Optional[str],  # noqa: UP045 - typer needs a runtime type here
        typer.Option(
            "--resume",
            metavar="CHECKPOINT",
            help="continue from this checkpoint with its saved config; only the options "
            "you type override it (e.g. more --epochs)",
            rich_help_panel="Checkpoints",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Train a model with the seed's recipe (SGD + cosine lr per epoch), checkpointing as it goes.

    The defaults are the seed's recommended values. Ctrl-C saves a resumable checkpoint and exits 130.
    """
    if resume is not None:
        from engine.training.train import resume_config

        explicit = {k: v for k, v in options.items() if k in typed_by_user(ctx, options)}
        config = resume_config(resume, **explicit)
        check_config(config)
    else:
        config = make_config(TrainConfig, options)
    from engine.training.train import (
        train as run_train,
    )  # torch: only once the options are known good

    result, synthetic = run_engine(out, run_train, config, resume=resume)
    out.document({**dataclasses.asdict(result), "synthetic": synthetic})
    if result.history:
        title = f"training {config.model}: {result.run_dir}"
        out.renderable(tables.train_table(result.history, "SYNTHETIC " * synthetic + title))
    line = (
        f"{result.epochs_completed}/{config.epochs} epochs done, test accuracy "
        f"{fmt_pct(result.final_test_acc)} (best {fmt_pct(result.best_test_acc)})"
        f", checkpoint {result.checkpoint or 'none'}, run {result.run_dir}"
    )
    hint = f"prunelab train --resume {result.checkpoint}" if result.checkpoint else None
    finish(out, result.status, line, hint, synthetic=synthetic)

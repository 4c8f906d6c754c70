"""Resuming a training run: the config a checkpoint was saved with, where it stopped, and the
checks that find a bad checkpoint or folder before any training starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.checkpoints.io import check_finite, load_state, read_checkpoint
from engine.config import TrainConfig
from engine.errors import CheckpointError, ConfigError
from engine.runs.files import check_writable_dir, remove_stale_temp_files


@dataclass
class Position:
    """Where training stands: `epoch` is in progress, `batch` batches of it are done."""

    epoch: int = 1
    batch: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0


def resume_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """The config a checkpoint was trained with, updated by `overrides` (e.g. more epochs).

    A bad value stored in the checkpoint is blamed on the checkpoint (with the option that
    overrides it), not on an option the user never typed; one the user typed is theirs.
    """
    checkpoint = read_checkpoint(path)
    saved = checkpoint.extra.get("config")
    saved = dict(saved) if isinstance(saved, dict) else {}
    if not saved and checkpoint.model:
        saved = {"model": checkpoint.model}
    try:
        config = TrainConfig.from_dict({**saved, **overrides})
    except TypeError as exc:
        raise CheckpointError(f"{path} holds a damaged config ({exc})") from None
    for problem in config.problems():
        if problem.field not in overrides:
            option = "--" + problem.field.replace("_", "-")
            raise CheckpointError(
                f"{path} was saved with an invalid {problem.field}: {problem.message} "
                f"(pass {option} to override it)"
            )
    completed = checkpoint.epoch or 0
    if "epochs" in overrides and config.epochs < completed:
        raise ConfigError(
            "epochs",
            f"{config.epochs} is fewer than the {completed} epochs {path} already holds; "
            f"pass --epochs {completed + 1} or more",
        )
    return config


def preflight(config: TrainConfig) -> None:
    """Find a bad --checkpoint-dir or --run-dir now, not after hours of training."""
    for name in ("checkpoint_dir", "run_dir"):
        problem = check_writable_dir(getattr(config, name))
        if problem:
            raise ConfigError(name, problem)
    remove_stale_temp_files(config.checkpoint_dir)


def restore(resume, config, model, optimizer, scheduler):
    """Load a checkpoint (ours or the seed's) into model/optimizer/scheduler; return where to go
    on. Every damaged or implausible part is a CheckpointError naming the file."""
    checkpoint = read_checkpoint(resume)
    if checkpoint.model and checkpoint.model != config.model:
        raise CheckpointError(
            f"{resume} holds a {checkpoint.model} but the config asks for {config.model}; "
            f"pass --model {checkpoint.model}"
        )
    if not config.allow_nonfinite:
        check_finite(checkpoint.state_dict, str(resume))
    load_state(model, checkpoint, str(resume))
    extra = checkpoint.extra
    epoch = checkpoint.epoch or 0
    if epoch < 0 or epoch > config.epochs:
        raise CheckpointError(
            f"{resume} records epoch {epoch}; expected 0 to --epochs ({config.epochs})"
        )
    if "optimizer" in extra and "scheduler" in extra:
        try:
            optimizer.load_state_dict(extra["optimizer"])
            scheduler.load_state_dict(extra["scheduler"])
            position = Position(**extra.get("position", {"epoch": epoch + 1}))
        except (KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as exc:
            raise CheckpointError(
                f"{resume} holds a damaged optimizer or scheduler state ({type(exc).__name__})"
            ) from None
        if not (1 <= position.epoch <= config.epochs + 1 and position.batch >= 0):
            raise CheckpointError(f"{resume} records an impossible position ({position})")
    else:
        # The seed's checkpoints hold weights only: fresh momentum, schedule advanced to `epoch`.
        for _ in range(epoch):
            optimizer.step()
            scheduler.step()
        position = Position(epoch + 1)
    saved = extra.get("history")
    history = [
        h
        for h in (saved if isinstance(saved, list) else [])
        if isinstance(h, dict) and isinstance(h.get("epoch"), int) and h["epoch"] < position.epoch
    ]
    run_dir = Path(extra["run_dir"]) if isinstance(extra.get("run_dir"), str) else None
    return position, history, run_dir, extra

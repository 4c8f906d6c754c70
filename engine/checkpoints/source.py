"""The checkpoint a run starts from: read it once, check it, and let it fill in the config.

Sweeps, find, sensitivity and fine-tuning all start from a trained checkpoint; they share one
reading so that each gets the same checks (non-finite weights, a file that no longer matches
the run that wrote it) and the same defaults (architecture and normalisation from the file).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from engine.checkpoints.info import recorded_data
from engine.checkpoints.io import Checkpoint, check_finite, read_checkpoint
from engine.config import DataOptions
from engine.errors import PrunelabError
from engine.events import EventCallback, Notice
from engine.models.spec import changed_file_warning
from engine.options import field_default
from engine.runs.record import checkpoint_warning

C = TypeVar("C")
AUTO = "auto"


def resolve_source(config: C, on_event: EventCallback) -> tuple[C, Checkpoint]:
    """Read `config.checkpoint`; refuse non-finite weights unless allowed, warn when the file no
    longer matches its run, fill in `model` = auto and the data settings left at auto."""
    cfg: Any = config
    checkpoint = read_checkpoint(cfg.checkpoint)
    if not cfg.allow_nonfinite:
        check_finite(checkpoint.state_dict, cfg.checkpoint)
    warning = checkpoint_warning(cfg.checkpoint, checkpoint.extra.get("run_dir"))
    if warning:
        on_event(Notice(warning, "warning"))
    if cfg.model == "auto":
        if checkpoint.model is None:
            raise PrunelabError(
                f"cannot tell which architecture {cfg.checkpoint} holds; pass --model"
            )
        cfg = dataclasses.replace(cfg, model=checkpoint.model)
    changed = changed_file_warning(cfg.model, _recorded_sha256(checkpoint))
    if changed:
        on_event(Notice(changed, "warning"))
    cfg = resolve_data(cfg, recorded_data(checkpoint), on_event)
    return cfg, checkpoint


def _recorded_sha256(checkpoint: Checkpoint) -> str | None:
    config = checkpoint.extra.get("config")
    value = config.get("model_sha256") if isinstance(config, dict) else None
    return value if isinstance(value, str) else None


def resolve_data(config: C, recorded: dict[str, Any], on_event: EventCallback) -> C:
    """Fill the data settings left at `auto` from what the checkpoint recorded (`recorded`,
    see `engine.checkpoints.info.recorded_data`), else the training defaults: a checkpoint is
    evaluated on the data it was trained on unless the user says otherwise. The data folder is
    the checkpoint's only when the dataset is too. Says what it took, and warns when the user
    asked for another normalisation than the one the checkpoint was trained with."""
    cfg: Any = config
    taken: dict[str, Any] = {}
    if cfg.dataset == AUTO:
        taken["dataset"] = recorded.get("dataset") or field_default(DataOptions, "dataset")
    dataset = taken.get("dataset", cfg.dataset)
    if cfg.data_dir == AUTO:
        same = recorded.get("dataset") == dataset and recorded.get("data_dir")
        taken["data_dir"] = recorded["data_dir"] if same else field_default(DataOptions, "data_dir")
    if cfg.normalization == AUTO:
        taken["normalization"] = recorded.get("normalization") or field_default(
            DataOptions, "normalization"
        )
    elif recorded.get("normalization") not in (None, cfg.normalization):
        on_event(
            Notice(
                f"the checkpoint was trained with {recorded['normalization']} normalisation; "
                f"evaluating with {cfg.normalization} as asked",
                "warning",
            )
        )
    if not getattr(cfg, "image_size", 32) and recorded.get("image_size"):
        taken["image_size"] = recorded["image_size"]
    from_checkpoint = [k for k, v in taken.items() if recorded.get(k) == v]
    if from_checkpoint:
        said = ", ".join(f"{k.replace('_', '-')} {taken[k]}" for k in from_checkpoint)
        on_event(Notice(f"as the checkpoint was trained: {said}"))
    return dataclasses.replace(cfg, **taken) if taken else cfg

"""The checkpoint a run starts from: read it once, check it, and let it fill in the config.

Sweeps, find, sensitivity and fine-tuning all start from a trained checkpoint; they share one
reading so that each gets the same checks (non-finite weights, a file that no longer matches
the run that wrote it) and the same defaults (architecture and normalisation from the file).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from engine.checkpoints import Checkpoint, check_finite, read_checkpoint
from engine.errors import PrunelabError
from engine.events import EventCallback, Notice
from engine.runs import checkpoint_warning

C = TypeVar("C")


def resolve_source(config: C, on_event: EventCallback) -> tuple[C, Checkpoint]:
    """Read `config.checkpoint`; refuse non-finite weights unless allowed, warn when the file no
    longer matches its run, fill in `model` = auto and take its recorded normalisation."""
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
    if checkpoint.normalization and checkpoint.normalization != cfg.normalization:
        on_event(
            Notice(
                f"using the normalisation the checkpoint was trained with: {checkpoint.normalization}"
            )
        )
        cfg = dataclasses.replace(cfg, normalization=checkpoint.normalization)
    return cfg, checkpoint

"""Run configuration: the only place a default or a limit lives.

Each field carries its help text and its allowed values in `metadata`; `problems()` checks every
field against them, the CLI builds its options' help from them and the TUI shows the same
messages next to its form fields. The defaults are the seed project's recommended values.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from engine.data.options import (  # noqa: F401 - re-exported: every config starts from them
    CHANNELS_LAST,
    DATASETS,
    MAX_IMAGES,
    MAX_SEED,
    PRECISIONS,
    DataOptions,
)
from engine.errors import ConfigError
from engine.methods import METHODS, SCORES, score_problem
from engine.models.inputs import (  # noqa: F401 - the config's vocabulary, re-exported
    MODEL_FAMILIES,
    MODEL_HELP,
    MODEL_NAMES,
    NORMALIZATION_HELP,
    NORMALIZATIONS,
)
from engine.options import option, parse_levels, same_as

EXPORT_FORMATS = ("sparse", "dense", "slim", "onnx")  # the first is the default
X_AXES = ("level", "latency", "macs", "params")  # what a sweep's chart and answer are in
DEFAULT_LATENCY_BATCH = 64  # --x latency and find --target-speedup time this batch by default

SEED_LEVELS = "0:100:5"  # the seed's sweep: 0%, 5%, ..., 100% of weights removed
SENSITIVITY_LEVELS = "25,50,75,90"  # one layer at a time: a few levels keep it affordable
FIND_COARSE_STEP = 10.0  # `find` scans 0, 10, 20, ... until the first miss, then bisects


@dataclass
class TrainConfig(DataOptions):
    """Training as the seed did it: SGD + CosineAnnealingLR stepped per epoch."""

    init: str = option(
        "",
        "start from these weights (any checkpoint prunelab reads; must fit --model)",
        group="Model",
    )
    epochs: int = option(60, "number of epochs", minimum=1, maximum=10000, group="Training")
    batch_size: int = option(
        128,
        "mini-batch size (global: split over the devices)",
        minimum=1,
        maximum=65536,
        group="Training",
    )
    lr: float = option(
        0.01, "initial learning rate (SGD)", minimum=0.0, maximum=10.0, group="Training"
    )
    momentum: float = option(0.9, "SGD momentum", minimum=0.0, maximum=0.999, group="Training")
    weight_decay: float = option(
        5e-4, "L2 weight decay", minimum=0.0, maximum=1.0, group="Training"
    )
    t_max: int = option(
        20,
        "CosineAnnealingLR T_max in epochs (the seed's lr cycles: 0 at epoch 21, back to lr by 41)",
        minimum=1,
        maximum=10000,
        group="Training",
    )
    eta_min: float = option(
        0.0, "CosineAnnealingLR minimum lr", minimum=0.0, maximum=10.0, group="Training"
    )
    compile: bool = option(
        False, "torch.compile the model (checked against eager on one batch)", group="Device"
    )
    sync_bn: bool = option(
        False,
        "with several devices: BatchNorm statistics over the global batch (SyncBatchNorm, CUDA)",
        group="Device",
    )
    checkpoint_every: int = option(
        10,
        "write a checkpoint every N epochs (and always after the last)",
        minimum=1,
        maximum=10000,
        group="Checkpoints",
    )
    checkpoint_dir: str = option("checkpoints", "folder for checkpoints", group="Checkpoints")
    checkpoint_minutes: float = option(
        5.0,
        "also save this run's own rolling checkpoint every M minutes, mid-epoch too "
        "(0 = off): a crash loses at most M minutes",
        minimum=0.0,
        maximum=10000.0,
        group="Checkpoints",
    )
    overwrite: bool = option(
        False,
        "replace checkpoint files another run wrote (otherwise such a file stops the run)",
        group="Checkpoints",
    )
    prune_to: float = option(
        0.0,
        "gradual pruning: percent of weights removed by --prune-end (0 = off), raised on "
        "Zhu & Gupta's cubic schedule while training",
        minimum=0.0,
        maximum=100.0,
        group="Gradual pruning",
    )
    prune_start: int = option(
        1,
        "gradual pruning begins with this epoch",
        minimum=1,
        maximum=10000,
        group="Gradual pruning",
    )
    prune_end: int = option(
        0,
        "gradual pruning reaches --prune-to at the end of this epoch (0 = three quarters of "
        "--epochs); the masks stay fixed after it",
        minimum=0,
        maximum=10000,
        group="Gradual pruning",
    )
    prune_every: int = option(
        0,
        "raise the sparsity every N steps (0 = 20 increments over the pruning epochs)",
        minimum=0,
        maximum=1_000_000,
        group="Gradual pruning",
    )
    prune_method: str = option(
        "layerwise",
        "gradual pruning's L1 method: layerwise = every layer alike (Zhu & Gupta's), global = "
        "one threshold, structured = whole filters, coupled = whole residual channels",
        choices=METHODS,
        group="Gradual pruning",
    )

    def problems(self) -> list[ConfigError]:
        found = super().problems()
        bad = {p.field for p in found}
        if not bad & {"lr", "eta_min"} and self.eta_min > self.lr:
            found.append(
                ConfigError("eta_min", f"{self.eta_min:g} must not exceed lr ({self.lr:g})")
            )
        if not str(self.checkpoint_dir).strip():
            found.append(ConfigError("checkpoint_dir", "must not be empty"))
        found += _gradual_problems(self)
        return found

    def prune_epochs(self) -> tuple[int, int]:
        """(first, last) epoch of gradual pruning, with the automatic end filled in."""
        end = self.prune_end or max(self.prune_start, (3 * self.epochs) // 4)
        return self.prune_start, end


def _gradual_problems(config: TrainConfig) -> list[ConfigError]:
    values = (config.prune_to, config.prune_start, config.prune_end, config.epochs)
    if config.prune_to == 0 or not all(isinstance(v, (int, float)) for v in values):
        return []
    start, end = config.prune_epochs()
    if start > config.epochs:
        return [ConfigError("prune_start", f"{start} is after the last epoch ({config.epochs})")]
    if end < start:
        return [ConfigError("prune_end", f"{end} is before --prune-start ({start})")]
    if end > config.epochs:
        return [ConfigError("prune_end", f"{end} is after the last epoch ({config.epochs})")]
    return []


@dataclass
class SweepConfig(DataOptions):
    """An L1 pruning sweep over a trained checkpoint."""

    model: str = option(
        "auto", f"auto = the one the checkpoint holds, else {MODEL_HELP}", group="Model"
    )
    # A trained checkpoint is evaluated on the data it was trained on unless told otherwise.
    dataset: str = option(
        "auto",
        "dataset (auto = the one the checkpoint was trained on, else cifar10)",
        choices=("auto", *DATASETS),
        group="Data",
    )
    data_dir: str = option(
        "auto",
        "dataset directory (auto = the checkpoint's when the dataset is the checkpoint's, else "
        "data)",
        group="Data",
    )
    normalization: str = option(
        "auto",
        f"input normalisation (auto = the checkpoint's, else cifar): {NORMALIZATION_HELP}",
        choices=("auto", *NORMALIZATIONS),
        group="Data",
    )
    checkpoint: str = option("", "checkpoint to prune (any format prunelab loads)", group="Pruning")
    method: str = option(
        "layerwise",
        "layerwise = the seed's per-layer L1; global = one threshold; structured = whole filters; "
        "coupled = whole filters, a residual channel out of every conv that writes it; internal = "
        "whole channels inside blocks only (residual streams, stem and classifier whole)",
        choices=METHODS,
        group="Pruning",
    )
    score: str = option(
        "l1",
        "what ranks the weights: l1 = |w| (magnitude); random = uniform, drawn with --seed (the "
        "floor any score must beat); gradient = |w * dL/dw| on one --batch-size batch of the "
        "training split; group = a channel's filters, BatchNorm scale and every input column "
        "reading it (channel methods)",
        choices=SCORES,
        group="Pruning",
    )
    levels: tuple[float, ...] = option(
        parse_levels(SEED_LEVELS),
        "percent of weights removed: start:stop:step or a list",
        group="Pruning",
    )
    include_classifier: bool = option(
        False, "also prune the final Linear (the seed's code did)", group="Pruning"
    )
    tolerance: float = option(
        1.0,
        "accuracy points below the dense baseline still acceptable",
        minimum=0.0,
        maximum=100.0,
        group="Pruning",
    )
    refine: bool = option(
        False,
        "bisect between the last level within tolerance and the first outside",
        group="Pruning",
    )
    resolution: float = option(
        1.0, "refine down to this many percent", minimum=0.01, maximum=50.0, group="Pruning"
    )
    bn_recalibrate: int = option(
        0,
        "re-estimate BatchNorm statistics on K training batches after pruning (0 = off)",
        minimum=0,
        maximum=10000,
        group="Pruning",
    )
    early_stop: int = option(
        0,
        "stop after K consecutive levels at chance accuracy (0 = off)",
        minimum=0,
        maximum=1000,
        group="Pruning",
    )
    min_density: float = option(
        0.0,
        "global method: keep at least this fraction of every layer",
        minimum=0.0,
        maximum=1.0,
        group="Pruning",
    )
    latency_batch: int = option(
        0,
        "time every level at batch 1 and at this throughput batch (0 = off, or "
        f"{DEFAULT_LATENCY_BATCH} with --x latency or --target-speedup; parameters and MACs are "
        "always counted)",
        minimum=0,
        maximum=65536,
        group="Cost",
    )
    x: str = option(
        "level",
        "the chart's x-axis and the answer's units: level, latency (measured speedup), macs, params",
        choices=X_AXES,
        group="Cost",
    )
    target_speedup: float = option(
        0.0,
        "find: the most accurate level measured at least this many times faster (the low end "
        "of its range), timed at --latency-batch (0 = off)",
        minimum=0.0,
        maximum=1000.0,
        group="Cost",
    )

    finetune_epochs: int = option(
        0,
        "fine-tune every level for N epochs with its mask fixed (0 = one-shot only)",
        minimum=0,
        maximum=10000,
        group="Recovery",
    )
    cumulative: bool = option(
        False,
        "fine-tune each level from the previous level's fine-tuned weights (iterative "
        "magnitude pruning) instead of from the dense weights",
        group="Recovery",
    )
    control: bool = option(
        True,
        "also fine-tune the dense model with the same recipe: recovered levels are measured "
        "against it, since fine-tuning alone can raise accuracy",
        group="Recovery",
    )
    batch_size: int = same_as(TrainConfig, "batch_size", group="Recovery")
    lr: float = same_as(TrainConfig, "lr", group="Recovery")
    momentum: float = same_as(TrainConfig, "momentum", group="Recovery")
    weight_decay: float = same_as(TrainConfig, "weight_decay", group="Recovery")
    lr_rewind: bool = option(
        False,
        "replay the checkpoint's own lr schedule over its last epochs (Renda et al. 2020) "
        "instead of cosine from --lr to 0",
        group="Recovery",
    )

    def problems(self) -> list[ConfigError]:
        found = super().problems()
        if not str(self.checkpoint).strip():
            found.append(ConfigError("checkpoint", "a checkpoint file is required"))
        try:
            parse_levels(self.levels)
        except ValueError as exc:
            found.append(ConfigError("levels", str(exc)))
        if score_problem(self.method, self.score):
            found.append(ConfigError("score", score_problem(self.method, self.score)))
        if self.finetune_epochs and self.devices > 1:
            why = "recovery sweeps (--finetune-epochs) run on one device; set it to 1"
            found.append(ConfigError("devices", why))
        if self.cumulative and not self.finetune_epochs:
            found.append(ConfigError("cumulative", "needs --finetune-epochs N (N >= 1)"))
        elif self.cumulative and self.refine:
            found.append(
                ConfigError(
                    "cumulative",
                    "cannot be bisected (--refine, find): each level starts from the one "
                    "before; leave out one of them",
                )
            )
        return found


# The options of a recovery sweep (what sensitivity runs leave out).
RECOVERY_FIELDS = tuple(f.name for f in fields(SweepConfig) if f.metadata["group"] == "Recovery")

"""Run configuration: the only place a default or a limit lives.

Each field carries its help text and its allowed values in `metadata`; `problems()` checks every
field against them, the CLI builds its options' help from them and the TUI shows the same
messages next to its form fields. The defaults are the seed project's recommended values.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from engine.errors import ConfigError
from engine.methods import METHODS, SCORES, score_problem
from engine.models.inputs import (  # noqa: F401 - the config's vocabulary, re-exported
    MODEL_FAMILIES,
    MODEL_HELP,
    MODEL_NAMES,
    NORMALIZATION_HELP,
    NORMALIZATIONS,
)
from engine.options import (
    Options,
    field_default,
    option,
    parse_device,
    parse_levels,
    same_as,
)
from engine.runs.tensorboard import EXTRA_HINT as TENSORBOARD_HINT
from engine.runs.tensorboard import tensorboard_missing

DATASETS = ("cifar10", "imagefolder", "synthetic", "memory")  # memory: the Python API's data
PRECISIONS = ("auto", "fp32", "bf16")
CHANNELS_LAST = ("auto", "on", "off")
EXPORT_FORMATS = ("sparse", "dense", "slim", "onnx")  # the first is the default
X_AXES = ("level", "latency", "macs", "params")  # what a sweep's chart and answer are in
DEFAULT_LATENCY_BATCH = 64  # --x latency and find --target-speedup time this batch by default

MAX_IMAGES = 2**31 - 1  # a subset larger than this is a typo (and overflows index arithmetic)
SEED_LEVELS = "0:100:5"  # the seed's sweep: 0%, 5%, ..., 100% of weights removed
SENSITIVITY_LEVELS = "25,50,75,90"  # one layer at a time: a few levels keep it affordable
FIND_COARSE_STEP = 10.0  # `find` scans 0, 10, 20, ... until the first miss, then bisects
MAX_SEED = 2**32 - 1


@dataclass
class DataOptions(Options):
    """What to read, where to run, how exactly: shared by training and pruning runs."""

    model: str = option("resnet50", MODEL_HELP, group="Model")
    dataset: str = option(
        "cifar10", "dataset (memory = data given to the Python API)", choices=DATASETS, group="Data"
    )
    data_dir: str = option(
        "data", "dataset directory (cifar-10-batches-py/ or train/ and test/)", group="Data"
    )
    download: bool = option(False, "download CIFAR-10 into data_dir if missing", group="Data")
    skip_checksum: bool = option(
        False, "accept CIFAR-10 files whose MD5 differs from the official release", group="Data"
    )
    normalization: str = option(
        "cifar",
        f"input normalisation: {NORMALIZATION_HELP}",
        choices=tuple(NORMALIZATIONS),
        group="Data",
    )
    image_size: int = option(
        0,
        "image folders: images are made N x N (evaluation: resize + center crop; training: "
        "random resized crop + flip, or CIFAR's pad-and-crop when they already are N x N); "
        "0 = the checkpoint's, else 32",
        minimum=0,
        maximum=1024,
        group="Data",
    )
    train_subset: int = option(
        0,
        "use only N training images, balanced across classes and drawn with --seed (0 = all)",
        minimum=0,
        maximum=MAX_IMAGES,
        group="Data",
    )
    test_subset: int = option(
        0,
        "use only N test images, balanced across classes and drawn with --seed (0 = all)",
        minimum=0,
        maximum=MAX_IMAGES,
        group="Data",
    )
    subset_per_class: bool = option(
        False, "subsets take N images of every class instead of N in all", group="Data"
    )
    device: str = option("auto", "auto, cpu, cuda or cuda:N", group="Device")
    precision: str = option(
        "auto", "auto = bf16 autocast on CUDA, fp32 on CPU", choices=PRECISIONS, group="Device"
    )
    channels_last: str = option(
        "auto", "channels_last memory format (auto = on)", choices=CHANNELS_LAST, group="Device"
    )
    eval_batch_size: int = option(
        0,
        "batch size for evaluation (0 = auto: 1000 on CUDA, 64 on CPU, where big batches are slower)",
        minimum=0,
        maximum=65536,
        group="Device",
    )
    devices: int = option(
        1,
        "worker processes (one per GPU, or CPU workers) started through torch.distributed.run; "
        "under torchrun the launcher's world size is used instead",
        minimum=1,
        maximum=4096,
        group="Device",
    )
    seed: int = option(
        0, "random seed (also picks the subset images)", minimum=0, maximum=MAX_SEED, group="Run"
    )
    run_dir: str = option("runs", "folder that holds one sub-folder per run", group="Run")
    name: str = option(
        "",
        "a name for the run, shown in the runs list and report titles (its folder keeps its "
        "unique timestamp)",
        group="Run",
    )
    note: str = option("", "a note kept with the run and shown in its details", group="Run")
    tensorboard: str = option(
        "",
        "also log to TensorBoard in this folder, one sub-folder per run (the [tensorboard] "
        "extra): loss per step, accuracy and lr per epoch, a sweep's top-1 per level, the "
        "settings as hparams",
        group="Run",
    )
    allow_nonfinite: bool = option(
        False,
        "use a checkpoint even if some weights are NaN or infinite (refused otherwise)",
        group="Checkpoints",
    )

    def to_dict(self) -> dict[str, Any]:
        """The fields, and a factory file's SHA-256 (`model_sha256`): a checkpoint records
        which code its network came from, never the code itself."""
        from engine.models.spec import spec_record

        return {**super().to_dict(), **spec_record(self.model)}

    def problems(self) -> list[ConfigError]:
        found = super().problems()
        try:
            parse_device(self.device)
        except ValueError as exc:
            found.append(ConfigError("device", f"{self.device!r} is not allowed; {exc}"))
        from engine.models.spec import model_problems  # keeps `--help` free of the spec's imports

        found += model_problems(self.model, auto=field_default(type(self), "model") == "auto")
        for name in ("data_dir", "run_dir"):
            if not str(getattr(self, name)).strip():
                found.append(ConfigError(name, "must not be empty"))
        if self.tensorboard and tensorboard_missing():
            found.append(ConfigError("tensorboard", TENSORBOARD_HINT))
        return found


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

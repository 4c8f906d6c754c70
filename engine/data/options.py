"""The options every run shares: what to read, where to run it, how exactly, and where its
folder goes. Free of torch; the run configs (engine.config) build on `DataOptions`."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError
from engine.models.inputs import MODEL_HELP, NORMALIZATION_HELP, NORMALIZATIONS
from engine.options import Options, field_default, option, parse_device

DATASETS = ("cifar10", "imagefolder", "synthetic", "memory")  # memory: the Python API's data
PRECISIONS = ("auto", "fp32", "bf16")
CHANNELS_LAST = ("auto", "on", "off")
MAX_IMAGES = 2**31 - 1  # a subset larger than this is a typo (and overflows index arithmetic)
MAX_SEED = 2**32 - 1
TENSORBOARD_HINT = "needs the [tensorboard] extra: pip install 'prunelab[tensorboard]'"


def tensorboard_missing() -> bool:
    """Whether the `tensorboard` package (the extra) is not installed."""
    return importlib.util.find_spec("tensorboard") is None


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

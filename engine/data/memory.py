"""Data handed over in memory (the Python API, engine.api): a Dataset, a DataLoader or a pair of
tensors, read once into an ImageSet and registered under a key, so every engine function that
reads `dataset`/`data_dir` from a config (sweeps, fine-tuning, the gradient score, BatchNorm
recalibration) takes it exactly as it takes a folder: `dataset="memory"`, `data_dir=KEY`.

Images the caller gives as uint8 (N, 3, H, W) are normalised by the config's normalisation as
any other source; float images are taken as the model's input, unchanged (already normalised
by the caller's own transforms).
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

from engine.data.imageset import ImageSet
from engine.errors import DataError

MEMORY = "memory"  # the dataset name
_SPLITS: dict[str, dict[bool, ImageSet]] = {}
_keys = itertools.count(1)


def register(test: Any, train: Any | None = None, classes: Any = None) -> str:
    """Read the splits into memory and return the key a config names them by (`data_dir`)."""
    test_set = as_imageset(test, "test", classes)
    splits = {False: test_set}
    if train is not None:
        splits[True] = as_imageset(train, "train", classes or test_set.classes)
    key = f"{MEMORY}:{next(_keys)}"
    _SPLITS[key] = splits
    return key


def release(key: str) -> None:
    _SPLITS.pop(key, None)


def split(key: str, train: bool) -> ImageSet:
    """A registered split, as a fresh ImageSet (subsets never change the registered one)."""
    splits = _SPLITS.get(key)
    if splits is None:
        raise DataError(
            f"no in-memory data under {key!r}: it is given to the Python API (engine.api)"
        )
    if train not in splits:
        raise DataError("this needs training data: pass train_data= to the API call")
    data = splits[train]
    return ImageSet(data.images, data.labels, data.classes, data.source, selection=None)


def as_imageset(data: Any, name: str, classes: Any = None) -> ImageSet:
    """A Dataset of (image, label), a DataLoader of (images, labels) batches, a (images, labels)
    pair of tensors, or an ImageSet, held as one ImageSet."""
    if isinstance(data, ImageSet):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        images, labels = data
    else:
        images, labels = _stack(data, name)
    images, labels = images.detach().cpu(), torch.as_tensor(labels).detach().cpu().long()
    if images.dtype != torch.uint8:
        images = images.float().contiguous()
    if labels.numel() == 0:
        raise DataError(f"the {name} data holds no images")
    names = (
        classes
        or getattr(data, "classes", None)
        or getattr(getattr(data, "dataset", None), "classes", None)
    )
    count = int(labels.max()) + 1
    if names is None or len(names) < count:
        names = [str(i) for i in range(count)]
    source = f"in-memory {name} data, {len(labels)} images"
    return ImageSet(images, labels, tuple(str(c) for c in names), source)


def _stack(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (image, label) of a Dataset, or every batch of a DataLoader, stacked."""
    images: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    batched = isinstance(data, torch.utils.data.DataLoader)
    try:
        for item in data:
            x, y = item[0], item[1]
            x = torch.as_tensor(x)
            images.append(x if batched else x.unsqueeze(0))
            labels.append(torch.as_tensor(y).reshape(-1))
    except (TypeError, IndexError) as exc:
        raise DataError(
            f"the {name} data must yield (image, label) pairs or (images, labels) batches ({exc})"
        ) from None
    if not images:
        raise DataError(f"the {name} data holds no images")
    return torch.cat(images), torch.cat(labels)

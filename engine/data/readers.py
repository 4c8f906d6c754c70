"""On-disk formats: CIFAR-10's python pickles and image folders (train/<class>/*.png).

CIFAR-10 files are pickles. They are read with a restricted unpickler that only rebuilds dicts,
lists, strings, numbers and numpy arrays: a tampered batch file cannot run code.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.data.folders import cifar10_files, find_classes, list_image_folder
from engine.data.imageset import ImageSet
from engine.data.options import DataOptions
from engine.data.resize import read_images
from engine.data.subsets import Selection
from engine.errors import ConfigError, DataError

CIFAR_FOLDER = "cifar-10-batches-py"

# --------------------------------------------------------------------------------------------
# CIFAR-10 in the python pickle format


def _numpy_reconstruct_module() -> str:
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            importlib.import_module(name)
            return name
        except ImportError:
            continue
    raise ImportError("numpy multiarray module not found")  # pragma: no cover


_NUMPY_MULTIARRAY = _numpy_reconstruct_module()

# (module, name) a CIFAR batch file may reference -> (module, name) actually imported.
_ALLOWED_GLOBALS: dict[tuple[str, str], tuple[str, str]] = {
    ("numpy.core.multiarray", "_reconstruct"): (_NUMPY_MULTIARRAY, "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): (_NUMPY_MULTIARRAY, "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): (_NUMPY_MULTIARRAY, "scalar"),
    ("numpy._core.multiarray", "scalar"): (_NUMPY_MULTIARRAY, "scalar"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(str, 'latin1').
    ("_codecs", "encode"): ("_codecs", "encode"),
    ("builtins", "bytes"): ("builtins", "bytes"),
    ("builtins", "bytearray"): ("builtins", "bytearray"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds only plain containers and numpy arrays; any other global is refused."""

    def __init__(self, file: io.BufferedReader, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise DataError(
                f"{self._path}: refusing to unpickle {module}.{name}; a CIFAR-10 batch file holds "
                "only lists, strings and numpy arrays (the file is not a CIFAR-10 batch or has "
                "been tampered with)"
            )
        return getattr(importlib.import_module(target[0]), target[1])


def _unpickle(path: Path) -> dict[str, Any]:
    """Load one CIFAR pickle; keys normalised to str (files may hold bytes or str keys)."""
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as exc:  # truncated or foreign file: any unpickling failure
        raise DataError(
            f"{path}: not a readable CIFAR-10 batch file ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, found {type(obj).__name__}")
    return {_text(k): v for k, v in obj.items()}


def _text(value: Any) -> Any:
    return value.decode("latin1") if isinstance(value, (bytes, bytearray)) else value


_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def file_md5(path: Path) -> str:
    """MD5 of a file, cached in-process per (path, size, mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    digest = _MD5_CACHE.get(key)
    if digest is None:
        md5 = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                md5.update(chunk)
        digest = _MD5_CACHE[key] = md5.hexdigest()
    return digest


def _official_files(train: bool) -> list[tuple[str, str]]:
    """(file name, md5) of the split's batches and the meta file (torchvision's table)."""
    return cifar10_files(train)


def _cifar_folder(data_dir: str) -> Path:
    root = Path(data_dir)
    # Also accept --data-dir pointing at the cifar-10-batches-py folder itself.
    if root.name == CIFAR_FOLDER and (root / "batches.meta").exists():
        return root
    return root / CIFAR_FOLDER


def _missing_message(data_dir: str) -> str:
    return (
        f"CIFAR-10 not found in {os.path.join(data_dir, CIFAR_FOLDER)}; download it with "
        f"`prunelab train --download --data-dir {data_dir}` (or use --dataset synthetic for a demo)"
    )


def load_cifar10(options: DataOptions, train: bool) -> ImageSet:
    folder = _cifar_folder(options.data_dir)
    files = _official_files(train)
    missing = [name for name, _ in files if not (folder / name).is_file()]
    if missing and options.download:
        _download_cifar10(options.data_dir, train)
        folder = _cifar_folder(options.data_dir)
        missing = [name for name, _ in files if not (folder / name).is_file()]
    if missing:
        if not folder.is_dir():
            raise DataError(_missing_message(options.data_dir))
        raise DataError(
            f"CIFAR-10 in {folder} is incomplete ({', '.join(missing)} missing); delete the folder "
            f"and download it with `prunelab train --download --data-dir {options.data_dir}`"
        )
    if not options.skip_checksum:
        for name, expected in files:
            got = file_md5(folder / name)
            if got != expected:
                raise DataError(
                    f"{folder / name}: MD5 {got} differs from the official CIFAR-10 release "
                    f"({expected}). If the download was damaged, delete {folder} and run "
                    f"`prunelab train --download --data-dir {options.data_dir}`; if this is a "
                    "re-encoded or subset copy on purpose, pass --skip-checksum."
                )
    meta_name = files[-1][0]
    classes = _read_meta(folder / meta_name)
    chunks, labels = [], []
    for name, _ in files[:-1]:
        data, batch_labels = _read_batch(folder / name, len(classes))
        chunks.append(data)
        labels.extend(batch_labels)
    array = np.concatenate(chunks) if chunks else np.zeros((0, 3072), np.uint8)
    images = torch.from_numpy(array).view(-1, 3, 32, 32)
    split = "train" if train else "test"
    return ImageSet(
        images=images,
        labels=torch.tensor(labels, dtype=torch.int64),
        classes=classes,
        source=f"CIFAR-10 {split} split, {folder}, {len(labels)} images",
    )


def _read_meta(path: Path) -> tuple[str, ...]:
    meta = _unpickle(path)
    names = meta.get("label_names")
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{path}: no label_names list")
    return tuple(str(_text(n)) for n in names)


def _read_batch(path: Path, num_classes: int) -> tuple[np.ndarray, list[int]]:
    batch = _unpickle(path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"{path}: expected 'data' (numpy array) and 'labels' entries")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' must be uint8 N x 3072, got {data.dtype} {data.shape}")
    if not isinstance(labels, (list, tuple, np.ndarray)) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels
    ):
        raise DataError(f"{path}: 'labels' must be a list of integers (the file is damaged)")
    labels = [int(v) for v in labels]
    if len(labels) != data.shape[0]:
        raise DataError(f"{path}: {data.shape[0]} images but {len(labels)} labels")
    bad = [v for v in labels if not 0 <= v < num_classes]
    if bad:
        raise DataError(f"{path}: label {bad[0]} outside 0..{num_classes - 1}")
    return data, labels


def _download_cifar10(data_dir: str, train: bool) -> None:
    """The real torchvision download; only ever called when the user asked for --download."""
    from torchvision.datasets import CIFAR10

    try:
        CIFAR10(root=data_dir, train=train, download=True)
    except Exception as exc:
        raise DataError(
            f"downloading CIFAR-10 into {data_dir} failed ({type(exc).__name__}: {exc}); "
            f"copy {CIFAR_FOLDER}/ there by hand or use --dataset synthetic"
        ) from None


# --------------------------------------------------------------------------------------------
# Image folders: DATA_DIR/train/<class>/*.png and DATA_DIR/test/<class>/*.png


Pick = Callable[[np.ndarray, tuple[str, ...]], tuple[np.ndarray | None, Selection]]


def load_imagefolder(
    data_dir: str, train: bool, pick: Pick | None = None, size: int = 32
) -> ImageSet:
    """Labels come from the folder names; `pick` chooses from them which images to keep, and
    only those files are opened and decoded, each made `size` x `size` (engine.data.resize)."""
    split = "train" if train else "test"
    split_dir = Path(data_dir) / split
    if not train and not split_dir.is_dir() and (Path(data_dir) / "val").is_dir():
        split_dir = Path(data_dir) / "val"  # ImageNet-style folders call the test split val/
    layout = (
        f"--dataset imagefolder expects {Path(data_dir) / 'train'}/<class>/*.png and "
        f"{Path(data_dir) / 'test'}/<class>/*.png or val/<class>/ (one sub-folder per class; "
        "images of any size are made --image-size square)"
    )
    if not split_dir.is_dir():
        raise DataError(f"image folder {split_dir} not found; {layout}")
    try:
        folder_classes, folder_samples = list_image_folder(split_dir)  # torchvision's order
    except FileNotFoundError as exc:
        raise ConfigError(
            "data_dir", f"the {split} split {split_dir} holds 0 images ({exc}); {layout}"
        ) from None
    except OSError as exc:
        raise DataError(f"image folder {split_dir}: {exc}; {layout}") from None
    other_dir = Path(data_dir) / ("train" if not train else "test")
    if train and not other_dir.is_dir():
        other_dir = Path(data_dir) / "val"
    if other_dir.is_dir():
        try:
            other_classes = find_classes(other_dir)
        except (FileNotFoundError, OSError):
            other_classes = None
        if other_classes is not None and other_classes != folder_classes:
            raise DataError(
                f"{split_dir} and {other_dir} have different class folders "
                f"({', '.join(folder_classes)} vs {', '.join(other_classes)}); both splits need "
                "the same classes so labels mean the same thing"
            )
    all_labels = np.array([label for _, label in folder_samples], dtype=np.int64)
    classes = tuple(folder_classes)
    keep, selection = pick(all_labels, classes) if pick else (None, None)
    samples = folder_samples if keep is None else [folder_samples[i] for i in keep.tolist()]
    images, crop = read_images([path for path, _ in samples], size, train)
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    counted = selection.describe() if selection else f"{len(labels)} images"
    return ImageSet(
        images=images,
        labels=labels,
        classes=classes,
        source=f"{'JPEG ' * _is_jpeg(samples)}image folder {split} split, {split_dir}, {counted}",
        selection=selection,
        crop=crop,
    )


JPEG_SUFFIXES = (".jpg", ".jpeg")


def _is_jpeg(samples: list[tuple[str, int]]) -> bool:
    """Whether the chosen images are JPEG files: lossy copies whose accuracies are not those of
    CIFAR-10's own images, so every output labels them."""
    return bool(samples) and all(str(p).lower().endswith(JPEG_SUFFIXES) for p, _ in samples)

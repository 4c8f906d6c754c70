"""Tiny datasets on disk, in the exact formats prunelab reads, for offline tests.

`write_cifar10` writes `cifar-10-batches-py/` the way the official archive is laid out: pickled
dicts in protocol 2 whose strings are Python 2 `str` (so `pickle.load(f, encoding="latin1")`, as
torchvision does, gives str keys and `encoding="bytes"` gives b'data', b'labels', ... as on the
CIFAR website). Images are class-dependent (a mean colour per class plus noise), so a short
training run shows the loss falling. Their MD5s differ from the official ones: load them with
skip_checksum=True.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

from engine.data.imageset import CIFAR10_CLASSES

CLASSES = CIFAR10_CLASSES  # the official label order
FOLDER = "cifar-10-batches-py"

# Per-class mean colours, far enough apart for a tiny model to separate them quickly.
_COLOURS = np.array(
    [
        [200, 40, 40],
        [40, 200, 40],
        [40, 40, 200],
        [200, 200, 40],
        [200, 40, 200],
        [40, 200, 200],
        [120, 120, 120],
        [230, 140, 60],
        [60, 140, 230],
        [140, 60, 230],
    ],
    dtype=np.float32,
)


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` opcodes, as the original CIFAR-10 files hold them."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def dump_py2(obj: object, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def class_images(labels: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """uint8 (N, 3, size, size): each class's colour plus Gaussian noise."""
    mean = _COLOURS[labels % len(_COLOURS)][:, :, None, None]
    noise = rng.normal(0.0, 25.0, size=(len(labels), 3, size, size)).astype(np.float32)
    return np.clip(np.rint(mean + noise), 0, 255).astype(np.uint8)


def _batch(label: str, labels: np.ndarray, images: np.ndarray, first: int) -> dict[bytes, object]:
    return {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in labels],
        b"data": images.reshape(len(labels), -1),
        b"filenames": [f"fixture_{first + i:05d}.png".encode() for i in range(len(labels))],
    }


def write_cifar10(
    root: Path, per_class_train: int = 10, per_class_test: int = 4, seed: int = 0
) -> Path:
    """Write root/cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta); return root."""
    root = Path(root)
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    train_labels = rng.permutation(np.repeat(np.arange(10), per_class_train))
    train_images = class_images(train_labels, rng)
    parts = np.array_split(np.arange(len(train_labels)), 5)
    for k, index in enumerate(parts, start=1):
        batch = _batch(
            f"training batch {k} of 5",
            train_labels[index],
            train_images[index],
            int(index[0]) if len(index) else 0,
        )
        dump_py2(batch, folder / f"data_batch_{k}")

    test_labels = rng.permutation(np.repeat(np.arange(10), per_class_test))
    test_images = class_images(test_labels, rng)
    dump_py2(_batch("testing batch 1 of 1", test_labels, test_images, 0), folder / "test_batch")

    meta = {
        b"label_names": [name.encode() for name in CLASSES],
        b"num_cases_per_batch": len(parts[0]),
        b"num_vis": 3 * 32 * 32,
    }
    dump_py2(meta, folder / "batches.meta")
    return root


def write_imagefolder(
    root: Path,
    per_class: int = 3,
    size: int = 32,
    classes: tuple[str, ...] = ("bird", "cat", "dog"),
    seed: int = 0,
    suffix: str = ".png",
) -> Path:
    """Write root/train/<class>/*.png (or `suffix`, e.g. .jpg) and root/test/<class>/*; return
    root."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            images = class_images(np.full(per_class, c), rng, size=size)
            for i, image in enumerate(images):
                Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i:04d}{suffix}")
    return root

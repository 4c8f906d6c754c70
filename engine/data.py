"""Datasets and loaders: CIFAR-10 read from its on-disk format, image folders, a synthetic stand-in.

Every split is loaded whole into an `ImageSet` (uint8 images on the CPU). `BatchLoader` moves it
to the device once and does the seed's augmentation there, per batch and without Python loops:
RandomCrop(32, padding=4) with zero padding, RandomHorizontalFlip, then normalisation last, so it
matches torchvision's order (padding happens on the raw image, before ToTensor/Normalize).
`reference_dataset` is the plain torchvision way, kept for benchmarks and equivalence tests.

CIFAR-10 files are pickles. They are read with a restricted unpickler that only rebuilds dicts,
lists, strings, numbers and numpy arrays: a tampered batch file cannot run code.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import math
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.config import NORMALIZATIONS, DataOptions
from engine.errors import ConfigError, DataError

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR_FOLDER = "cifar-10-batches-py"
PADDING = 4  # RandomCrop(32, padding=4)


@dataclass
class ImageSet:
    """One split held in memory: uint8 (N, 3, H, W) images and int64 labels, on the CPU."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str  # one line for logs and the UI; starts with "SYNTHETIC" for synthetic data
    synthetic: bool = False

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise DataError(
                f"{self.source}: images must be uint8 (N, 3, H, W), got "
                f"{self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(
                f"{self.source}: {self.images.shape[0]} images but labels of shape "
                f"{tuple(self.labels.shape)}"
            )
        if self.labels.dtype != torch.int64:
            self.labels = self.labels.to(torch.int64)
        self.classes = tuple(self.classes)

    def __len__(self) -> int:
        return int(self.images.shape[0])


# --------------------------------------------------------------------------------------------
# Entry point


def load_split(options: DataOptions, train: bool) -> ImageSet:
    """The train or test split named by `options.dataset`, with the configured subset applied."""
    if options.dataset == "cifar10":
        data = _load_cifar10(options, train)
    elif options.dataset == "imagefolder":
        data = _load_imagefolder(options.data_dir, train)
    elif options.dataset == "synthetic":
        data = _synthetic(train)
    else:
        raise ConfigError(
            "dataset", f"{options.dataset!r} is not one of cifar10, imagefolder, synthetic"
        )
    count = options.train_subset if train else options.test_subset
    return take_subset(data, count, per_class=options.subset_per_class)


def take_subset(data: ImageSet, count: int, *, per_class: bool = False) -> ImageSet:
    """The first `count` images, or the first `count` of each class (file order kept).

    `count` 0 (or a subset at least as large as the split) keeps everything.
    """
    total = len(data)
    if count <= 0:
        return data
    if per_class:
        keep = torch.zeros(total, dtype=torch.bool)
        for c in torch.unique(data.labels).tolist():
            where = torch.nonzero(data.labels == c).flatten()
            keep[where[:count]] = True
        if bool(keep.all()):
            return data
        index = torch.nonzero(keep).flatten()
        how = f"{count} per class"
    else:
        if count >= total:
            return data
        index = torch.arange(count)
        how = f"first {count}"
    return ImageSet(
        images=data.images[index].contiguous(),
        labels=data.labels[index].clone(),
        classes=data.classes,
        source=_with_count(data.source, f"{len(index)} of {total} images ({how})"),
        synthetic=data.synthetic,
    )


def _with_count(source: str, text: str) -> str:
    head, sep, tail = source.rpartition(", ")
    if sep and tail.endswith(" images"):
        return f"{head}, {text}"
    return f"{source}, {text}"


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
    """(file name, md5) of the split's batches and the meta file, from torchvision."""
    from torchvision.datasets import CIFAR10

    batches = CIFAR10.train_list if train else CIFAR10.test_list
    return [(name, md5) for name, md5 in batches] + [
        (CIFAR10.meta["filename"], CIFAR10.meta["md5"])
    ]


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


def _load_cifar10(options: DataOptions, train: bool) -> ImageSet:
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


def _load_imagefolder(data_dir: str, train: bool) -> ImageSet:
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import find_classes

    split = "train" if train else "test"
    split_dir = Path(data_dir) / split
    layout = (
        f"--dataset imagefolder expects {Path(data_dir) / 'train'}/<class>/*.png and "
        f"{Path(data_dir) / 'test'}/<class>/*.png (one sub-folder per class, 32x32 images)"
    )
    if not split_dir.is_dir():
        raise DataError(f"image folder {split_dir} not found; {layout}")
    try:
        folder = ImageFolder(str(split_dir))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"image folder {split_dir}: {exc}; {layout}") from None
    other_dir = Path(data_dir) / ("test" if train else "train")
    if other_dir.is_dir():
        try:
            other_classes = find_classes(str(other_dir))[0]
        except (FileNotFoundError, OSError):
            other_classes = None
        if other_classes is not None and list(other_classes) != list(folder.classes):
            raise DataError(
                f"{split_dir} and {other_dir} have different class folders "
                f"({', '.join(folder.classes)} vs {', '.join(other_classes)}); both splits need "
                "the same classes so labels mean the same thing"
            )
    arrays = np.empty((len(folder.samples), 32, 32, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(folder.samples):
        try:
            with Image.open(path) as im:
                if im.size != (32, 32):
                    raise DataError(
                        f"{path}: image is {im.size[0]}x{im.size[1]}; prunelab's models take "
                        "32x32 images (resize the folder first)"
                    )
                arrays[i] = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{path}: cannot read image ({exc})") from None
    images = torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([label for _, label in folder.samples], dtype=torch.int64)
    return ImageSet(
        images=images,
        labels=labels,
        classes=tuple(folder.classes),
        source=f"image folder {split} split, {split_dir}, {len(labels)} images",
    )


# --------------------------------------------------------------------------------------------
# Synthetic stand-in: learnable, deterministic, clearly flagged

SYNTHETIC_TRAIN = 10_000
SYNTHETIC_TEST = 2_000
_SYNTHETIC_CACHE: dict[bool, ImageSet] = {}


def _synthetic_templates() -> torch.Tensor:
    """One float (3, 32, 32) template per class: a distinct colour plus a distinct stripe pattern."""
    g = torch.Generator().manual_seed(12345)
    colours = torch.rand(10, 3, 1, 1, generator=g) * 140 + 50
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    patterns = []
    for c in range(10):
        angle = math.pi * c / 10
        freq = 2 * math.pi * (2 + c % 3) / 32
        wave = torch.sin(freq * (x * math.cos(angle) + y * math.sin(angle)))
        patterns.append(wave)
    pattern = torch.stack(patterns).unsqueeze(1)  # (10, 1, 32, 32)
    tint = torch.rand(10, 3, 1, 1, generator=g) * 2 - 1
    return colours + 45 * pattern * tint.sign()


def _synthetic(train: bool) -> ImageSet:
    cached = _SYNTHETIC_CACHE.get(train)
    if cached is None:
        count = SYNTHETIC_TRAIN if train else SYNTHETIC_TEST
        templates = _synthetic_templates()
        g = torch.Generator().manual_seed(1 if train else 2)
        labels = torch.arange(count) % 10
        labels = labels[torch.randperm(count, generator=g)]
        images = torch.empty(count, 3, 32, 32, dtype=torch.uint8)
        for start in range(0, count, 2000):
            part = labels[start : start + 2000]
            noise = torch.randn(len(part), 3, 32, 32, generator=g) * 40
            images[start : start + 2000] = (
                (templates[part] + noise).round_().clamp_(0, 255).to(torch.uint8)
            )
        split = "train" if train else "test"
        cached = ImageSet(
            images=images,
            labels=labels,
            classes=CIFAR10_CLASSES,
            source=f"SYNTHETIC stand-in for CIFAR-10 (not real data), {split} split, {count} images",
            synthetic=True,
        )
        _SYNTHETIC_CACHE[train] = cached
    return ImageSet(
        images=cached.images.clone(),
        labels=cached.labels.clone(),
        classes=cached.classes,
        source=cached.source,
        synthetic=True,
    )


# --------------------------------------------------------------------------------------------
# Augmentation and batching on the device


def normalization_tensors(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) as float32 (3,) tensors for a name in config.NORMALIZATIONS."""
    if name not in NORMALIZATIONS:
        raise ConfigError("normalization", f"{name!r} is not one of {', '.join(NORMALIZATIONS)}")
    mean, std = NORMALIZATIONS[name]
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def augment_batch(
    images: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, flip: torch.Tensor
) -> torch.Tensor:
    """RandomCrop(padding=4) with zero padding at given offsets, then horizontal flip where asked.

    images: uint8 (B, 3, H, W); dx, dy: integer (B,) in [0, 8], the crop's left and top in the
    padded image (torchvision's j and i); flip: bool (B,). Returns uint8 (B, 3, H, W) on the same
    device. One pad and one gather for the whole batch: no per-image Python work.
    """
    b, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (PADDING, PADDING, PADDING, PADDING))
    dx = dx.to(device=device, dtype=torch.long)
    dy = dy.to(device=device, dtype=torch.long)
    flip = flip.to(device=device, dtype=torch.bool)
    cols = torch.arange(w, device=device)
    cols = torch.where(flip[:, None], dx[:, None] + (w - 1) - cols, dx[:, None] + cols)  # (B, W)
    rows = dy[:, None] + torch.arange(h, device=device)  # (B, H)
    batch = torch.arange(b, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def _epoch_seed(seed: int, epoch: int) -> int:
    """A generator seed for (seed, epoch). Torch's CPU generator keeps only 32 bits of a seed, so
    the pair is hashed down to 32 bits rather than packed into 64 (which would drop `seed`)."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(epoch)}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


class BatchLoader:
    """Batches of a dataset resident on `device` as uint8; crop/flip on the device, normalise last.

    Iterating yields (float32 normalised (B, 3, 32, 32) images, int64 labels), both on `device`.
    The shuffle order and the crops/flips of an epoch depend only on (seed, epoch): they are drawn
    with a CPU generator at the start of each pass and moved to the device once. Call
    `set_epoch` before each epoch (the epoch stays the same until then).
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        normalization: str = "cifar",
        augment: bool = False,
        shuffle: bool = False,
        seed: int = 0,
        channels_last: bool = False,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size", f"{batch_size} must be >= 1")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.augment = augment
        self.shuffle = shuffle
        self.seed = int(seed)
        self.channels_last = channels_last
        self.drop_last = drop_last
        self.classes = data.classes
        self.epoch = 0
        self._images = data.images.to(self.device)
        self._labels = data.labels.to(self.device)
        mean, std = normalization_tensors(normalization)
        self._mean = mean.view(1, 3, 1, 1).to(self.device)
        self._std = std.view(1, 3, 1, 1).to(self.device)

    @property
    def num_images(self) -> int:
        return int(self._images.shape[0])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_images // self.batch_size
        return math.ceil(self.num_images / self.batch_size)

    def _draw(self) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...] | None]:
        """This epoch's permutation and per-position (dx, dy, flip), drawn on the CPU."""
        if not (self.shuffle or self.augment):
            return None, None
        n = self.num_images
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        order = torch.randperm(n, generator=g) if self.shuffle else None
        crops = None
        if self.augment:
            dx = torch.randint(0, 2 * PADDING + 1, (n,), generator=g)
            dy = torch.randint(0, 2 * PADDING + 1, (n,), generator=g)
            flip = torch.randint(0, 2, (n,), generator=g).bool()
            crops = tuple(t.to(self.device) for t in (dx, dy, flip))
        if order is not None:
            order = order.to(self.device)
        return order, crops

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, crops = self._draw()
        for b in range(len(self)):
            start = b * self.batch_size
            stop = min(start + self.batch_size, self.num_images)
            if order is None:
                images, labels = self._images[start:stop], self._labels[start:stop]
            else:
                index = order[start:stop]
                images, labels = self._images[index], self._labels[index]
            if crops is not None:
                dx, dy, flip = (t[start:stop] for t in crops)
                images = augment_batch(images, dx, dy, flip)
            x = images.float().div_(255).sub_(self._mean).div_(self._std)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, labels


# --------------------------------------------------------------------------------------------
# The plain torchvision way, for benchmarks


class _ReferenceDataset(torch.utils.data.Dataset):
    def __init__(self, data: ImageSet, transform: Any) -> None:
        self._images = data.images.permute(0, 2, 3, 1).contiguous().numpy()  # (N, H, W, 3)
        self._labels = data.labels.tolist()
        self.transform = transform
        self.classes = data.classes

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self._images[index])), self._labels[index]


def reference_dataset(
    data: ImageSet, normalization: str, augment: bool
) -> torch.utils.data.Dataset:
    """A torchvision-style Dataset: (transform(PIL image), label) with the seed's transforms."""
    from torchvision import transforms

    normalization_tensors(normalization)  # validates the name
    mean, std = NORMALIZATIONS[normalization]
    steps: list[Any] = []
    if augment:
        steps += [transforms.RandomCrop(32, padding=PADDING), transforms.RandomHorizontalFlip()]
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return _ReferenceDataset(data, transforms.Compose(steps))

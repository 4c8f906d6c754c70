"""Images of any size made `--image-size` square, once, when a folder is read.

Evaluation images get torchvision's usual evaluation transform, Resize(round(N / 0.875)) then
CenterCrop(N) (PIL's bilinear resize, antialiased as torchvision's on PIL images), and are held
at N x N. Training images that already are N x N are held as they are and get CIFAR's
pad-and-crop + flip; any other training image is held at S x S (S = round(N / 0.875): resized,
center-cropped to a square) and every epoch takes a fresh random resized crop of it on the
device (engine.data.loader), so the augmentation needs no second read of the files.

Memory is bounded before any pixel is decoded: a split that would need more than half of the
memory available now (Linux's MemAvailable) is refused with the option to change.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from engine.errors import DataError

EVAL_CROP = 0.875  # torchvision's reference recipes: Resize(256) + CenterCrop(224)
MEMORY_SHARE = 0.5  # of the available memory a split may take


def stored_side(size: int) -> int:
    """The side a non-square-N training image is held at (the random crops' source)."""
    return max(size, round(size / EVAL_CROP))


def read_images(paths: list[str], size: int, train: bool) -> tuple[torch.Tensor, int]:
    """(uint8 (N, 3, side, side) images, crop): crop is `size` when training images are held
    larger for random resized crops, else 0. The first image decides how a training split is
    held: all at `size` (CIFAR-style folders) or all at the larger side."""
    from PIL import Image  # only image folders need PIL

    native = True
    if paths and train:
        with Image.open(paths[0]) as first:
            native = first.size == (size, size)
    side = size if (native or not train) else stored_side(size)
    check_memory(len(paths), side, "training" if train else "test")
    arrays = np.empty((len(paths), side, side, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        arrays[i] = _read_one(path, side, stored_side(size))
    images = torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous()
    return images, (0 if side == size else size)


def _read_one(path: str, side: int, short: int) -> np.ndarray:
    """One file as a side x side x 3 array: as it is when already that size, else resized so
    its shorter side is `short` and center-cropped. The size is read from the header first, so
    a decompression bomb is refused before decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below
            with Image.open(path) as im:
                if im.size == (side, side):
                    return np.asarray(im.convert("RGB"), dtype=np.uint8)
                return _resize_crop(im.convert("RGB"), short, side)
    except Image.DecompressionBombError:
        raise DataError(
            f"{path}: image is far larger than {side}x{side} images need (a decompression "
            "bomb?); refused"
        ) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None


def _resize_crop(im, short: int, side: int) -> np.ndarray:
    """torchvision's Resize(short) (shorter side to `short`, the other by the aspect ratio, as
    torchvision rounds it) then CenterCrop(side)."""
    from PIL import Image

    w, h = im.size
    new = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    im = im.resize(new, Image.BILINEAR)
    left = int(round((new[0] - side) / 2.0))
    top = int(round((new[1] - side) / 2.0))
    return np.asarray(im.crop((left, top, left + side, top + side)), dtype=np.uint8)


def check_memory(count: int, side: int, split: str) -> None:
    """Refuse a split that would not fit comfortably in memory, naming what to change."""
    need = count * 3 * side * side
    available = available_memory()
    if available is None or need <= MEMORY_SHARE * available:
        return
    raise DataError(
        f"{count} {split} images at {side}x{side} need {need / 1e9:.1f} GB in memory, more than "
        f"half of the {available / 1e9:.1f} GB available; use --train-subset/--test-subset or "
        "a smaller --image-size"
    )


def available_memory() -> int | None:
    """MemAvailable in bytes (Linux), else None (not checked)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None

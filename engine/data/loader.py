"""Batches on the device: the dataset moved there once, the seed's augmentation done per batch.

`BatchLoader` does RandomCrop(32, padding=4) with zero padding and RandomHorizontalFlip on the
device without Python loops, then normalisation last, so it matches torchvision's order (padding
happens on the raw image, before ToTensor/Normalize).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from engine.data.imageset import ImageSet
from engine.errors import ConfigError
from engine.models.inputs import NORMALIZATIONS

PADDING = 4  # RandomCrop(32, padding=4)

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


def random_resized_boxes(n: int, side: int, g: torch.Generator) -> torch.Tensor:
    """torchvision's RandomResizedCrop.get_params (scale 0.08-1, ratio 3/4-4/3, 10 tries, then
    the whole image) for `n` square images at once: (n, 4) boxes x1, y1, x2, y2 in pixels."""
    tries = 10
    area = side * side * torch.empty(n, tries).uniform_(0.08, 1.0, generator=g)
    log_ratio = torch.empty(n, tries).uniform_(math.log(3 / 4), math.log(4 / 3), generator=g)
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(area * ratio).round()
    h = torch.sqrt(area / ratio).round()
    fits = (w > 0) & (w <= side) & (h > 0) & (h <= side)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp(min=0)[:, None]
    w = torch.where(first >= 0, w.gather(1, pick)[:, 0], torch.full((n,), float(side)))
    h = torch.where(first >= 0, h.gather(1, pick)[:, 0], torch.full((n,), float(side)))
    x = (torch.rand(n, generator=g) * (side - w + 1)).floor()
    y = (torch.rand(n, generator=g) * (side - h + 1)).floor()
    return torch.stack([x, y, x + w, y + h], 1)


def resized_crops(
    images: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int
) -> torch.Tensor:
    """Each image's box resampled to size x size (bilinear, averaging when it shrinks: roi_align
    with adaptive sampling), flipped where asked; float in 0-255, on the images' device."""
    from torchvision.ops import roi_align  # torchvision only for folders of larger images

    index = torch.arange(len(images), device=images.device, dtype=boxes.dtype)[:, None]
    out = roi_align(
        images.float(), torch.cat([index, boxes], 1), (size, size), 1.0, -1, aligned=True
    )
    return torch.where(flip.view(-1, 1, 1, 1), out.flip(3), out)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The middle size x size of images held larger (torchvision's CenterCrop of the held
    square: within a pixel of the evaluation transform; used for training images read without
    augmentation, e.g. BatchNorm recalibration)."""
    top = int(round((images.shape[-2] - size) / 2.0))
    left = int(round((images.shape[-1] - size) / 2.0))
    return images[..., top : top + size, left : left + size]


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
    `set_epoch` before each epoch (the epoch stays the same until then). With
    `part=(rank, ranks)` a rank yields only its contiguous share of each global batch, so the ranks
    together see exactly the batches of a single-process run.
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
        part: tuple[int, int] = (0, 1),
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
        self.part = part  # (rank, ranks): yield only this rank's share of every batch
        self.classes = data.classes
        self.crop = data.crop  # > 0: random resized crops of this side (engine.data.resize)
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
        if self.augment and self.crop:
            boxes = random_resized_boxes(n, int(self._images.shape[-1]), g)
            flip = torch.randint(0, 2, (n,), generator=g).bool()
            crops = (boxes.to(self.device), flip.to(self.device))
        elif self.augment:
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
            if self.part[1] > 1:  # contiguous shares of the global batch, sizes within 1
                rank, ranks, n = *self.part, stop - start
                start, stop = start + n * rank // ranks, start + n * (rank + 1) // ranks
            if order is None:
                images, labels = self._images[start:stop], self._labels[start:stop]
            else:
                index = order[start:stop]
                images, labels = self._images[index], self._labels[index]
            if self.crop:  # held larger: a random resized crop to train, the center to test
                images = (
                    resized_crops(images, *(t[start:stop] for t in crops), self.crop)
                    if crops is not None
                    else center_crop(images, self.crop)
                )
            elif crops is not None:
                dx, dy, flip = (t[start:stop] for t in crops)
                images = augment_batch(images, dx, dy, flip)
            if images.dtype == torch.uint8 or self.crop:
                x = images.float().div_(255).sub_(self._mean).div_(self._std)
            else:  # model inputs already (engine.data.memory)
                x = images.clone()  # a slice would share the held images with the caller
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, labels

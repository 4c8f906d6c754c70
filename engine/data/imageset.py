"""One dataset split held in memory, as every data source returns it and every loader takes it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.data.subsets import Selection
from engine.errors import DataError

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


@dataclass
class ImageSet:
    """One split held in memory: uint8 (N, 3, H, W) images and int64 labels, on the CPU. Float
    (N, C, H, W) images are model inputs already (data given to the Python API): the loaders
    neither scale nor normalise them."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str  # one line for logs and the UI; starts with "SYNTHETIC" for synthetic data
    synthetic: bool = False
    selection: Selection | None = None  # which images of the split were kept, when a subset
    crop: int = 0  # > 0: images held larger; training takes random resized crops of this side

    def __post_init__(self) -> None:
        prepared = self.images.dtype == torch.float32 and self.images.dim() == 4
        if not prepared and (
            self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3
        ):
            raise DataError(
                f"{self.source}: images must be uint8 (N, 3, H, W) or float32 (N, C, H, W), got "
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

"""The plain torchvision way to feed CIFAR-10: a Dataset of PIL images through the seed's
transforms. The benchmarks compare engine.data.loader.BatchLoader against it, and the data tests check
that both produce the same images."""

from __future__ import annotations

from typing import Any

import torch

from engine.config import NORMALIZATIONS
from engine.data.imageset import ImageSet
from engine.data.loader import PADDING, normalization_tensors

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

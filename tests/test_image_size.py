"""Image folders of any size (engine.data.resize, engine.data.loader): evaluation images are
torchvision's Resize + CenterCrop, training images get random resized crops (or CIFAR's
pad-and-crop when they already are --image-size), val/ serves as the test split, memory is
checked before decoding, and a checkpoint's image size is what its sweeps use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from cifar_fixture import write_imagefolder
from PIL import Image

from engine.config import DataOptions
from engine.data import resize
from engine.data.folders import list_image_folder
from engine.data.loader import BatchLoader, normalization_tensors, random_resized_boxes
from engine.data.sources import load_split
from engine.errors import DataError


def odd_folder(root: Path, classes: int = 3, per_class: int = 3, test: str = "val") -> Path:
    """Photos of assorted non-square sizes, test split named `test`."""
    rng = np.random.default_rng(0)
    for split in ("train", test):
        for c in range(classes):
            folder = root / split / f"class{c:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                shape = (45 + 7 * i, 60 - 3 * (c % 5), 3)
                pixels = rng.integers(0, 255, shape, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return root


def options(root: Path, size: int = 32, **more) -> DataOptions:
    return DataOptions(dataset="imagefolder", data_dir=str(root), image_size=size, **more)


def torchvision_read(folder: Path, resize_to: int, crop: int) -> torch.Tensor:
    transform = T.Compose([T.Resize(resize_to), T.CenterCrop(crop), T.PILToTensor()])
    _, samples = list_image_folder(folder)
    return torch.stack([transform(Image.open(p).convert("RGB")) for p, _ in samples])


def test_evaluation_images_are_torchvisions_resize_and_center_crop(tmp_path: Path) -> None:
    root = odd_folder(tmp_path)
    test = load_split(options(root, 32), train=False)
    assert test.crop == 0 and "val" in test.source
    assert torch.equal(test.images, torchvision_read(root / "val", 37, 32))


def test_training_images_take_random_resized_crops(tmp_path: Path) -> None:
    root = odd_folder(tmp_path)
    train = load_split(options(root, 32), train=True)
    assert train.crop == 32 and train.images.shape[-2:] == (37, 37)
    assert torch.equal(train.images, torchvision_read(root / "train", 37, 37))
    augmented = BatchLoader(train, 4, augment=True, shuffle=True, seed=1)
    first = next(iter(augmented))[0]
    assert first.shape == (4, 3, 32, 32)
    assert torch.equal(
        first, next(iter(BatchLoader(train, 4, augment=True, shuffle=True, seed=1)))[0]
    )
    plain = next(iter(BatchLoader(train, 9)))[0]  # no augmentation: the evaluation transform
    expected = T.CenterCrop(32)(torchvision_read(root / "train", 37, 37)[:9]).float().div(255)
    mean, std = (t.view(1, 3, 1, 1) for t in normalization_tensors("cifar"))
    assert torch.allclose(plain, (expected - mean) / std, atol=1e-6)


def test_random_resized_boxes_stay_inside_and_follow_torchvisions_ranges() -> None:
    boxes = random_resized_boxes(2000, 40, torch.Generator().manual_seed(0))
    x1, y1, x2, y2 = boxes.unbind(1)
    assert bool((x1 >= 0).all() and (y1 >= 0).all() and (x2 <= 40).all() and (y2 <= 40).all())
    area = (x2 - x1) * (y2 - y1) / 1600
    assert area.min() > 0.05 and area.max() <= 1.0
    ratio = (x2 - x1) / (y2 - y1)
    assert ratio.min() > 0.6 and ratio.max() < 1.6


def test_images_already_at_the_size_keep_cifars_pad_and_crop(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "f", per_class=2, size=40)
    train = load_split(options(root, 40), train=True)
    assert train.crop == 0 and train.images.shape[-2:] == (40, 40)
    assert next(iter(BatchLoader(train, 2, augment=True)))[0].shape == (2, 3, 40, 40)
    thirty_two = load_split(options(root, 0), train=False)  # 0: the default 32
    assert thirty_two.images.shape[-2:] == (32, 32)


def test_memory_is_checked_before_decoding(tmp_path: Path, monkeypatch) -> None:
    root = odd_folder(tmp_path)
    monkeypatch.setattr(resize, "available_memory", lambda: 10_000)
    with pytest.raises(DataError, match="need .* GB in memory.*--train-subset"):
        load_split(options(root, 32), train=True)


def test_a_hundred_class_folder_takes_balanced_subsets(tmp_path: Path) -> None:
    root = odd_folder(tmp_path, classes=100, per_class=2, test="test")
    test = load_split(options(root, 16, test_subset=100), train=False)
    assert len(test.classes) == 100 and torch.bincount(test.labels).tolist() == [1] * 100


@pytest.mark.slow
def test_a_checkpoint_records_its_image_size_and_sweeps_use_it(tmp_path: Path) -> None:
    from tiny_runs import tiny_train_config

    from engine.checkpoints.source import resolve_source
    from engine.config import SweepConfig
    from engine.training.train import train

    root = odd_folder(tmp_path / "folder")
    net = f"{Path(__file__).parent / 'nets' / 'custom_block.py'}:build(width=4)"
    config = tiny_train_config(
        tmp_path, model=net, dataset="imagefolder", data_dir=str(root), image_size=24, epochs=1
    )
    config.train_subset = config.test_subset = 0
    result = train(config)
    assert result.checkpoint is not None
    sweep, _ = resolve_source(SweepConfig(checkpoint=result.checkpoint), lambda event: None)
    assert sweep.image_size == 24 and sweep.data_dir == str(root)

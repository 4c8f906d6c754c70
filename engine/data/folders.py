"""Where a dataset's files are, without importing torchvision.

`import torchvision` pulls in torch._dynamo (through torchvision.ops) and roughly doubles the
start-up of a command that only needs a list of files. The image-folder listing here is
torchvision's `ImageFolder` order exactly (class folders sorted by name, files sorted within each
folder walked in sorted order, the same extensions), and CIFAR-10's batch names and MD5 sums are
the official ones torchvision checks (tests/test_folders.py compares both with torchvision).
"""

from __future__ import annotations

import os
from pathlib import Path

# torchvision.datasets.folder.IMG_EXTENSIONS
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# torchvision.datasets.CIFAR10.train_list / test_list / meta: (file name, md5)
CIFAR10_TRAIN_FILES = (
    ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
    ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
    ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
    ("data_batch_4", "634d18415352ddfa80567beed471001a"),
    ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
)
CIFAR10_TEST_FILES = (("test_batch", "40351d587109b95175f43aff81a1287e"),)
CIFAR10_META_FILE = ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888")


def cifar10_files(train: bool) -> list[tuple[str, str]]:
    """(file name, md5) of the split's batches, then the meta file."""
    batches = CIFAR10_TRAIN_FILES if train else CIFAR10_TEST_FILES
    return [*batches, CIFAR10_META_FILE]


def find_classes(directory: str | Path) -> list[str]:
    """The class folder names, sorted; FileNotFoundError when there are none."""
    classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if not classes:
        raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
    return classes


def list_image_folder(directory: str | Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(classes, [(path, class index), ...]) in torchvision ImageFolder's order; a class folder
    without any image is a FileNotFoundError, as there."""
    directory = os.path.expanduser(str(directory))
    classes = find_classes(directory)
    samples: list[tuple[str, int]] = []
    empty = []
    for index, name in enumerate(classes):
        before = len(samples)
        for root, _, names in sorted(os.walk(os.path.join(directory, name), followlinks=True)):
            for file_name in sorted(names):
                if file_name.lower().endswith(IMAGE_EXTENSIONS):
                    samples.append((os.path.join(root, file_name), index))
        if len(samples) == before:
            empty.append(name)
    if empty:
        raise FileNotFoundError(
            f"Found no valid file for the classes {', '.join(sorted(empty))}. "
            f"Supported extensions are: {', '.join(IMAGE_EXTENSIONS)}"
        )
    return classes, samples

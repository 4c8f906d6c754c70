"""Our file listings equal torchvision's, so dropping the torchvision import changes nothing."""

from __future__ import annotations

import pytest
from torchvision.datasets import CIFAR10, ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from engine.data.folders import IMAGE_EXTENSIONS, cifar10_files, list_image_folder


def test_cifar10_files_are_torchvisions():
    for train in (True, False):
        expected = CIFAR10.train_list if train else CIFAR10.test_list
        assert cifar10_files(train) == [
            *(tuple(x) for x in expected),
            (CIFAR10.meta["filename"], CIFAR10.meta["md5"]),
        ]
    assert IMAGE_EXTENSIONS == IMG_EXTENSIONS


def test_image_folder_order_is_torchvisions(tmp_path):
    from PIL import Image

    image = Image.new("RGB", (4, 4))
    files = [
        "b/10.png",
        "b/2.PNG",
        "b/sub/1.jpg",
        "b/a/0.jpeg",
        "a/z.bmp",
        "a/notes.txt",
        "c/x.webp",
    ]
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            path.write_text("not an image")
        else:
            image.save(
                path,
                format={"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP", "webp": "WEBP"}[
                    path.suffix[1:].lower()
                ],
            )
    reference = ImageFolder(str(tmp_path))
    classes, samples = list_image_folder(tmp_path)
    assert classes == reference.classes
    assert samples == reference.samples


def test_empty_class_or_no_class_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        list_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(FileNotFoundError, match="no valid file"):
        list_image_folder(tmp_path)

"""Shared fixtures (CPU-only, offline)."""

from __future__ import annotations

import pytest
from cifar_fixture import write_cifar10


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny CIFAR-10 in torchvision's on-disk format (10 train / 4 test images per class)."""
    return str(write_cifar10(tmp_path_factory.mktemp("cifar")))

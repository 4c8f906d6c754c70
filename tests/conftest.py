"""Shared fixtures (CPU-only, offline)."""

from __future__ import annotations

import pytest
from cifar_fixture import write_cifar10


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny CIFAR-10 in torchvision's on-disk format (10 train / 4 test images per class)."""
    return str(write_cifar10(tmp_path_factory.mktemp("cifar")))


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A resnet20 trained for two short epochs on synthetic data: accuracy well above chance,
    so pruning curves have something to lose."""
    from tiny_runs import tiny_train_config

    from engine.training.train import train

    root = tmp_path_factory.mktemp("trained")
    config = tiny_train_config(root, train_subset=1024, test_subset=200, batch_size=64)
    result = train(config)
    assert result.checkpoint is not None
    return result.checkpoint

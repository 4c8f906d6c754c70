"""Shared fixtures (CPU-only, offline)."""

from __future__ import annotations

import pytest
from cifar_fixture import write_cifar10

# `pytest -m "not slow"` is the quick check (under 2 minutes on 2 cores): these modules train
# networks, drive the app, or start processes; a test elsewhere that needs a trained checkpoint
# is slow too.
SLOW_MODULES = {
    "test_any_model",
    "test_api",
    "test_cli",
    "test_cli_recovery",
    "test_distributed",
    "test_finetune",
    "test_gradual",
    "test_lifecycle",
    "test_real_inputs",
    "test_recovery",
    "test_train",
    "test_tui",
    "test_tui_charts",
    "test_tui_flow",
    "test_tui_recovery",
    "test_tui_runs",
    "test_tui_snapshots",
    "test_fault_app",
    "test_fault_clobber",
    "test_fault_kill",
    "test_fault_training",
}
SLOW_FIXTURES = {"trained_checkpoint", "tiny_checkpoint"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if item.path.stem in SLOW_MODULES or used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


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

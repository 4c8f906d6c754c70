"""Which checkpoint files a training run writes, and the rule that it never clobbers another's.

Files keep the seed's names (`cifar10_resnet50_ckpt_epoch10.pth`), so two runs of one model in
one folder would want the same names. A run may replace a file only if it is its own: the run
records the SHA-256 of every checkpoint it writes in its run.json, and a file whose hash is not
among them belongs to someone else. Such a file stops a new run before it trains (the caller
says: --overwrite or another --checkpoint-dir); if another process takes a name while we run,
the hard-link placement in `write_checkpoint` refuses and we write under the run's own name
instead, with a warning. The rolling file of `--checkpoint-minutes` is always the run's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.checkpoints.io import CheckpointExists, write_checkpoint
from engine.errors import ConfigError
from engine.runs.files import file_sha256
from engine.runs.record import RunRecord


def planned_epochs(config: Any, first_epoch: int) -> list[int]:
    """The epochs from `first_epoch` on after which a checkpoint is due."""
    return [
        e
        for e in range(max(first_epoch, 1), config.epochs + 1)
        if e % config.checkpoint_every == 0 or e == config.epochs
    ]


class RunCheckpoints:
    """A run's checkpoint files: ownership by recorded hash, no-clobber writes, rolling file."""

    def __init__(
        self,
        config: Any,
        name_of: Callable[[int | None], str],
        run_name: str,
        record: RunRecord | None,
    ) -> None:
        self.config = config  # TrainConfig or another config with its checkpoint fields
        self.name_of = name_of  # epoch (None: stopped) -> file name, e.g. the seed's naming
        self.folder = Path(config.checkpoint_dir)
        self.overwrite = bool(getattr(config, "overwrite", False))
        self.run_name = run_name
        self.record = record  # None until the run folder exists

    def path(self, epoch: int | None) -> Path:
        return self.folder / self.name_of(epoch)

    @property
    def rolling_path(self) -> Path:
        stem = Path(self.name_of(None)).stem.removesuffix("_stopped")
        return self.folder / f"{stem}_rolling-{self.run_name}.pth"

    def own_name(self, path: Path) -> Path:
        """Where a file goes when another process took its seed name while we ran."""
        return path.with_name(f"{path.stem}-{self.run_name}{path.suffix}")

    def owned(self, path: Path, hashes: dict[str, str] | None = None) -> bool:
        recorded = (hashes if hashes is not None else self._hashes()).get(str(path))
        if not recorded:
            return False
        try:
            return file_sha256(path) == recorded
        except OSError:
            return False

    def _hashes(self) -> dict[str, str]:
        return dict(self.record.checkpoints) if self.record is not None else {}

    def check_free(self, first_epoch: int, hashes: dict[str, str]) -> None:
        """Refuse (before any training) when a file this run will write belongs to another run."""
        if self.overwrite:
            return
        for epoch in planned_epochs(self.config, first_epoch):
            path = self.path(epoch)
            if path.exists() and not self.owned(path, hashes):
                raise ConfigError(
                    "checkpoint_dir",
                    f"{path} exists (another run's checkpoint); pass --overwrite or "
                    "another --checkpoint-dir",
                )

    def save(self, path: Path, payload: dict[str, Any], warn: Callable[[str], None]) -> Path:
        """Write `payload` at `path` (or the run's own variant of it) and record its hash."""
        replace = self.overwrite or not path.exists() or self.owned(path)
        try:
            digest = write_checkpoint(path, payload, replace=replace)
        except CheckpointExists:
            alternative = self.own_name(path)
            warn(f"{path} was written by another run meanwhile; this run's is {alternative}")
            digest = write_checkpoint(alternative, payload, replace=True)
            path = alternative
        self._remember(path, digest)
        return path

    def save_rolling(self, payload: dict[str, Any]) -> Path:
        path = self.rolling_path
        self._remember(path, write_checkpoint(path, payload, replace=True))
        return path

    def drop_rolling(self) -> None:
        """The rolling file is superseded by a newer regular checkpoint."""
        path = self.rolling_path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if self.record is not None:
            self.record.checkpoints.pop(str(path), None)

    def adopt(self, path: str | Path) -> None:
        """A file this run resumed from is its own (it names this run's folder)."""
        with contextlib.suppress(OSError):
            self._remember(Path(path), file_sha256(path))

    def _remember(self, path: Path, digest: str) -> None:
        if self.record is not None:
            self.record.checkpoints[str(path)] = digest

"""A small in-process fault injector: a full disk, torn writes, a kill at an exact point.

- `full_disk(folder, free=N)`: files under `folder` opened after entering accept N more bytes in
  all; the write that crosses the limit writes what fits (a torn write, as a real full disk
  does) and raises ENOSPC. Works for `open`, `os.fdopen` and torch.save on a file object.
- `Killed` / `kill_after(obj, name, calls=N)`: the N-th call of `obj.name` raises Killed, a
  BaseException nothing in the engine may swallow; files are left as a kill at that point would.
- `dead_pid()`: the PID of a process that has exited, for stale locks and temp files.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Killed(BaseException):
    """Stands for SIGKILL at an exact point."""


class _Budget:
    def __init__(self, free: int) -> None:
        self.free = free


class _FullFile:
    """A file object whose writes stop at the disk's remaining bytes."""

    def __init__(self, inner: Any, budget: _Budget) -> None:
        self._inner = inner
        self._budget = budget

    def write(self, data: Any) -> int:
        size = len(data)
        if size <= self._budget.free:
            self._budget.free -= size
            return self._inner.write(data)
        fits = self._budget.free
        if fits:
            self._inner.write(data[:fits])
            self._inner.flush()
        self._budget.free = 0
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._inner)


@contextlib.contextmanager
def full_disk(folder: str | Path, free: int = 0) -> Iterator[_Budget]:
    """Writes under `folder` fail with ENOSPC once `free` bytes are used (see module doc)."""
    folder = str(Path(folder).resolve())
    budget = _Budget(free)
    real_open, real_fdopen = builtins.open, os.fdopen

    def under(path: Any) -> bool:
        try:
            return str(Path(os.fsdecode(path)).resolve()).startswith(folder)
        except (TypeError, ValueError):
            return False

    def writing(mode: str) -> bool:
        return any(c in mode for c in "wax+")

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if not isinstance(file, int) and writing(mode) and under(file):
            return _FullFile(handle, budget)
        return handle

    def fake_fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_fdopen(fd, mode, *args, **kwargs)
        target = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else ""
        if writing(mode) and under(target):
            return _FullFile(handle, budget)
        return handle

    builtins.open, os.fdopen = fake_open, fake_fdopen
    try:
        yield budget
    finally:
        builtins.open, os.fdopen = real_open, real_fdopen


def kill_after(monkeypatch: Any, obj: Any, name: str, calls: int = 1) -> None:
    """The `calls`-th call of `obj.name` raises Killed instead of running."""
    real = getattr(obj, name)
    seen = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        seen["n"] += 1
        if seen["n"] >= calls:
            raise Killed(f"{name} call {seen['n']}")
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)


def dead_pid() -> int:
    """A PID that belonged to a process which has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid

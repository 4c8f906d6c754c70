"""One writer per run folder: the `.writer.lock` file, and whether a run's writer still lives.

A run that says `running` is running only while the process that wrote it lives: its PID alone
is not enough (PIDs are reused), so the lock and run.json also record when that process
started, and a live process that started at another time is somebody else's.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from engine.errors import PrunelabError
from engine.runs.files import (
    JSON_LIMIT,
    RunFileError,
    pid_alive,
    process_start,
    read_bounded,
    remove_stale_temp_files,
)

LOCK_FILE = ".writer.lock"


class RunBusyError(PrunelabError):
    """Another live process is writing this run folder."""


def _lock_owner(run_dir: Path) -> dict[str, Any]:
    try:
        raw, _ = read_bounded(run_dir / LOCK_FILE, JSON_LIMIT)  # a FIFO here never hangs us
        data = json.loads(raw.decode("utf-8") or "{}")
    except (OSError, ValueError, RecursionError, RunFileError):
        return {}
    return data if isinstance(data, dict) else {}


def writer_alive(run_dir: str | Path, pid: Any = 0, host: Any = "", started: Any = 0.0) -> bool:
    """Whether a live process on this machine is writing the run: the lock file's owner, else
    `pid` (run.json's). A PID reused by another process does not count: the process must have
    started when the writer did (`started`, recorded from /proc where there is one)."""
    run_dir = Path(run_dir)
    here = socket.gethostname()
    owner = _lock_owner(run_dir)
    candidates = [(owner.get("pid"), owner.get("host"), owner.get("started")), (pid, host, started)]
    for each_pid, each_host, each_started in candidates:
        if isinstance(each_pid, int) and not isinstance(each_pid, bool) and each_pid > 0:
            if each_host and each_host != here:
                return True  # another machine's process: we cannot tell, so assume it lives
            if pid_alive(each_pid) and _same_process(each_pid, each_started):
                return True
    return False


def _same_process(pid: int, started: Any) -> bool:
    """Whether live `pid` is the process that started at `started` (unknown: assume it is)."""
    if not isinstance(started, (int, float)) or isinstance(started, bool) or not started:
        return True
    now = process_start(pid)
    return now is None or abs(now - started) < 1.0


class WriterLock:
    """`with WriterLock(run_dir):` — this process is the folder's only writer until the block ends.

    The lock file `.writer.lock` holds the owner's PID and host. On POSIX it is an flock, which
    the kernel releases when the process dies (even by kill -9); elsewhere a lock whose PID is
    gone is taken over. A second writer gets RunBusyError naming the owner. Entering also removes
    temp files that dead writers left in the folder.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        path = self.run_dir / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunFileError(f"cannot lock {self.run_dir}: {exc.strerror or exc}") from None
        if not _try_flock(fd) or (not _HAS_FLOCK and self._held_by_other()):
            os.close(fd)
            owner = _lock_owner(self.run_dir)
            since = f" since {owner['since']}" if owner.get("since") else ""
            raise RunBusyError(
                f"{self.run_dir} is being written by PID {owner.get('pid', '?')}{since}; "
                "wait for it to finish or stop it (one writer per run folder)"
            )
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "started": process_start(os.getpid()) or 0.0,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        remove_stale_temp_files(self.run_dir)
        return self

    def _held_by_other(self) -> bool:
        owner = _lock_owner(self.run_dir)
        pid = owner.get("pid")
        return isinstance(pid, int) and pid != os.getpid() and pid_alive(pid)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # no owner: readers see the writer is gone
        with contextlib.suppress(OSError):
            os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


try:
    import fcntl

    _HAS_FLOCK = True
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    _HAS_FLOCK = False


def _try_flock(fd: int) -> bool:
    if not _HAS_FLOCK:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True

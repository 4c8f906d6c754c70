"""Reading and writing the files of a run folder so that nothing is lost or silently wrong.

- Whole files (run.json, config.json, summary.json, *.csv) are written to a temp file named
  `.NAME.PID.HEX.tmp` beside the target, fsynced and renamed: a reader never sees half a file,
  and a temp file left by a killed process names its PID so the next run can remove it.
- Line files (metrics.jsonl, sweep.jsonl, ...) are appended one flushed line at a time. A line
  torn by a kill or a full disk is never glued to the next record: an append first ends the
  torn tail with a newline, and readers skip (and report) every line that is not a JSON object.
- Every OSError becomes a `RunFileError` naming the file; a full disk says so.
- Reading is bounded: only regular files are opened (a FIFO or a link to /dev/zero would never
  end), run.json & co. up to a few MB, JSONL files up to their limit (the tail is read), JSON
  nesting up to `MAX_JSON_DEPTH`. A refusal names the limit and the variable that raises it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import PrunelabError


class RunFileError(PrunelabError):
    """A run file cannot be written (disk full, permissions, ...) or read."""


class NotRegularFile(RunFileError, OSError):
    """A FIFO, device, socket or folder where a file was expected (an OSError too, so code that
    skips unreadable files skips it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


MB = 1 << 20
JSON_LIMIT = ("PRUNELAB_MAX_JSON_MB", 8)  # run.json, config.json, summary.json: a few kB each
JSONL_LIMIT = ("PRUNELAB_MAX_JSONL_MB", 32)  # 10,000 epochs or 1,001 levels take a few MB
MAX_JSON_DEPTH = 64  # run.json nests 3 deep; {"kind": [[[[...]]]]} is not a record


def limit_bytes(limit: tuple[str, float]) -> int:
    """A size limit in bytes: the environment variable `limit[0]` (MB) if set, else the default."""
    name, default = limit
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        value = default
    return int(max(value, 0.001) * MB)


def limit_hint(limit: tuple[str, float]) -> str:
    """'limit 8 MB; raise it with PRUNELAB_MAX_JSON_MB=...' for a refusal message."""
    return f"limit {limit_bytes(limit) / MB:.3g} MB; raise it with {limit[0]}=<MB>"


_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def not_regular(mode: int) -> str:
    """'' for a regular file, else what it is ('a named pipe', ...)."""
    if stat.S_ISREG(mode):
        return ""
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str | Path, name: str | None = None) -> int:
    """A read-only descriptor of `path`, which must be a regular file: checked with os.stat
    before opening (a device is never opened) and again on the descriptor, opened non-blocking
    (a FIFO swapped in meanwhile cannot hang). Raises FileNotFoundError, or RunFileError."""
    label = name or str(path)
    what = not_regular(os.stat(path).st_mode)
    if not what:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
        what = not_regular(os.fstat(fd).st_mode)
        if not what:
            return fd
        os.close(fd)
    raise NotRegularFile(f"{label} is {what}, not a regular file; refusing to read it")


def read_bounded(
    path: str | Path, limit: tuple[str, float], *, tail: bool = False, name: str | None = None
) -> tuple[bytes, int]:
    """(the bytes, the file's size): the whole regular file when within `limit`; larger, its
    last `limit` bytes with `tail`, else RunFileError naming the limit."""
    label = name or Path(path).name
    fd = open_regular(path, label)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(fd).st_size
        most = limit_bytes(limit)
        if size > most:
            if not tail:
                raise RunFileError(
                    f"{label} is {size / MB:.3g} MB, more than such a file holds "
                    f"({limit_hint(limit)})"
                )
            handle.seek(size - most)
        return handle.read(most + 1)[:most], size


def json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` nests at most `limit` lists/objects deep (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > limit:
                return False
            stack.extend((child, depth + 1) for child in item)
    return True


def disk_full_message(path: str | Path, needed_bytes: int | None = None) -> str:
    """'disk full writing PATH (N MB needed, M MB free)': what and where, in one line."""
    parts = []
    if needed_bytes:
        parts.append(f"{max(needed_bytes / 1e6, 0.1):.1f} MB needed")
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(Path(path).parent).free
        parts.append(f"{free / 1e6:.1f} MB free")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"disk full writing {path}{detail}; free some space or choose another folder"


def os_error_message(path: str | Path, exc: OSError, needed_bytes: int | None = None) -> str:
    """One line for an OSError while writing `path`."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full_message(path, needed_bytes)
    return f"cannot write {path}: {exc.strerror or exc}"


def temp_path(path: Path) -> Path:
    """`.NAME.PID.HEX.tmp` beside `path`: unique, hidden, and traceable to its writer."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temp file in the same folder + fsync + rename: readers never see half a file."""
    path = Path(path)
    tmp = temp_path(path)
    data = text.encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise RunFileError(os_error_message(path, exc, len(data))) from exc
        raise


def append_line(path: str | Path, line: str) -> None:
    """Append one line, flushed to disk; after a torn tail it starts on a fresh line."""
    path = Path(path)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    try:
        with open(path, "ab+") as handle:
            end = handle.seek(0, os.SEEK_END)
            if end > 0:
                handle.seek(end - 1)
                if handle.read(1) != b"\n":
                    data = b"\n" + data  # the last line was torn: end it, never continue it
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise RunFileError(os_error_message(path, exc, len(data))) from exc


@dataclass
class JsonlRead:
    """The records of a JSONL file and the lines that were skipped, with why."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "line 3: torn (not valid JSON)", ...

    def damage(self, path: str | Path) -> str:
        """'' when whole, else one line naming the file and the skipped lines."""
        if not self.skipped:
            return ""
        shown = "; ".join(self.skipped[:3])
        more = f"; and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
        return f"{Path(path).name}: skipped {len(self.skipped)} damaged line(s) ({shown}{more})"


def read_jsonl_checked(path: str | Path) -> JsonlRead:
    """Every line that is a JSON object; every other non-empty line is reported, never fatal."""
    path = Path(path)
    result = JsonlRead()
    try:
        raw, size = read_bounded(path, JSONL_LIMIT, tail=True)
    except FileNotFoundError:
        return result
    except RunFileError as exc:
        result.skipped.append(f"unreadable: {exc}")
        return result
    except OSError as exc:
        result.skipped.append(f"unreadable: {exc.strerror or exc}")
        return result
    lines = raw.split(b"\n")
    if size > len(raw):  # only the tail was read: its first line is a fragment
        lines[0] = b""
        result.skipped.append(
            f"the first {(size - len(raw)) / MB:.3g} MB not read ({limit_hint(JSONL_LIMIT)})"
        )
    for number, chunk in enumerate(lines, start=1):
        chunk = chunk.strip()
        if not chunk:
            continue
        try:
            value = json.loads(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            result.skipped.append(f"line {number}: not UTF-8 text")
            continue
        except (ValueError, RecursionError):  # torn, not JSON, a 5,000-digit number, ...
            result.skipped.append(f"line {number}: torn or not JSON")
            continue
        if not json_depth_ok(value):
            result.skipped.append(f"line {number}: nested deeper than {MAX_JSON_DEPTH} levels")
            continue
        if not isinstance(value, dict):
            result.skipped.append(f"line {number}: a {type(value).__name__}, not a record")
            continue
        result.records.append(value)
    return result


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON file that must hold an object; RunFileError says exactly what is wrong."""
    path = Path(path)
    try:
        raw, _ = read_bounded(path, JSON_LIMIT)
    except FileNotFoundError:
        raise RunFileError(f"{path.name} is missing") from None
    except NotRegularFile:
        raise
    except OSError as exc:
        raise RunFileError(f"{path.name} cannot be read: {exc.strerror or exc}") from None
    if not raw.strip():
        raise RunFileError(f"{path.name} is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RunFileError(f"{path.name} is not UTF-8 text (damaged bytes)") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        what = "half-written" if text.lstrip().startswith("{") else "not JSON"
        raise RunFileError(f"{path.name} is {what} ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        value = None  # nested past the decoder's own stack: refused just below
    except ValueError as exc:  # e.g. an integer of 5,000 digits
        raise RunFileError(f"{path.name} is not usable JSON ({exc})") from None
    if value is None or not json_depth_ok(value):
        raise RunFileError(f"{path.name} nests deeper than {MAX_JSON_DEPTH} levels: damaged")
    if not isinstance(value, dict):
        raise RunFileError(f"{path.name} holds a {type(value).__name__}, not a JSON object")
    return value


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def process_start(pid: int) -> float | None:
    """When process `pid` started, in seconds since the epoch (from /proc); None where that
    cannot be known (no /proc, no such process)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


_TEMP_PID = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


def stale_temp_files(folder: str | Path) -> Iterator[Path]:
    """Temp files (`.NAME.PID.HEX.tmp`) in `folder` whose writing process is gone."""
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        match = _TEMP_PID.match(entry.name)
        if match and int(match[1]) != os.getpid() and not pid_alive(int(match[1])):
            yield entry


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete what a killed writer left behind in `folder`; returns what was removed."""
    removed = []
    for entry in stale_temp_files(folder):
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


def check_writable_dir(path: str | Path) -> str:
    """'' when `path` is (or can be created as) a folder we can write into, else why not.

    Checked before a run starts, so a bad folder is found now rather than at the first save.
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            return f"{path} is a file, not a folder"
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"{path} cannot be created: a part of it is a file"
    except OSError as exc:
        return f"{path} cannot be created: {exc.strerror or exc}"
    probe = temp_path(path / "write-test")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return disk_full_message(probe)
        return f"cannot write into {path}: {exc.strerror or exc}"
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return ""


def file_sha256(path: str | Path) -> str:
    """The file's SHA-256; a FIFO or device (never hashed: it may not end) is a RunFileError,
    an OSError too."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""A checkpoint file is untrusted: what it may make us read or allocate is bounded first.

- Regular files only: a FIFO, a device or a link to /dev/zero is refused from `os.stat`, before
  anything opens it (it would never end), and opened non-blocking.
- A torch zip file is checked from its directory before a byte is inflated: its pickle
  (`data.pkl`, about 100 bytes per tensor) may inflate to `PICKLE_LIMIT`; torch.save stores
  tensors uncompressed, so members that inflate past the file's own size are refused.
- The tensors a file holds are counted from their declared shapes (the file is memory-mapped,
  nothing is read yet) against what the architecture its keys name can legitimately hold: its
  own weights, plus up to `EXTRA_FACTOR` times them for optimizer state and `EXTRA_LIMIT` more.
  A file whose architecture is unknown may hold `TENSOR_LIMIT` in all.
- A pickle naming code (e.g. `posix.system`) is reported as code whatever its protocol.

Each refusal names its limit and the environment variable that raises it.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickletools
import stat
import zipfile
from collections.abc import Iterator
from typing import IO, Any

import torch

from engine.errors import CheckpointError
from engine.models.state_keys import strip_wrappers, unwrap
from engine.runs.files import (
    MB,
    NotRegularFile,
    limit_bytes,
    limit_hint,
    not_regular,
    open_regular,
)

PICKLE_LIMIT = ("PRUNELAB_MAX_PICKLE_MB", 64)
TENSOR_LIMIT = ("PRUNELAB_MAX_CHECKPOINT_MB", 1024)
EXTRA_LIMIT = ("PRUNELAB_MAX_EXTRA_MB", 16)
EXTRA_FACTOR = 3  # SGD's momentum is 1x the weights, Adam's two moments 2x
MAX_DEPTH = 100  # nesting of a payload's dicts and lists
# Modules a plain checkpoint's pickle may name; anything else (os.system, builtins.eval, ...) is code.
DATA_MODULES = ("torch", "collections", "numpy", "_codecs", "builtins.set", "builtins.frozenset")


def check_file(path: str) -> int:
    """The file's size; CheckpointError for a missing, special, folder or empty path."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint not found: {path} (train one with `prunelab train`, "
            "or pass the path of an existing .pth file)"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    what = not_regular(info.st_mode)
    if what:  # never opened: a FIFO or a device would never end
        raise CheckpointError(f"{path} is {what}, not a checkpoint file; refusing to read it")
    if info.st_size == 0:
        raise CheckpointError(
            f"{path} is truncated or not a PyTorch checkpoint (the file is empty)"
        )
    return info.st_size


@contextlib.contextmanager
def opened(path: str) -> Iterator[str]:
    """A path torch can open that names the regular file checked here (`/proc/self/fd/N`
    on Linux, so the file cannot be swapped for a FIFO between the check and the load)."""
    try:
        fd = open_regular(path)
    except NotRegularFile as exc:
        raise CheckpointError(f"{exc} (a checkpoint is a file)") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        proc = f"/proc/self/fd/{fd}"
        yield proc if os.path.exists(proc) else path
    finally:
        os.close(fd)


def check_zip(path: str, size: int) -> bool:
    """Whether `path` is a zip (torch's format); its members' inflated sizes are checked from
    the directory before any is read."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return True  # torch names the damage
    pickled = max((m.file_size for m in members if m.filename.endswith(".pkl")), default=0)
    if pickled > limit_bytes(PICKLE_LIMIT):
        raise CheckpointError(
            f"{path}: its pickle inflates to {pickled / MB:,.0f} MB, far more than a state "
            f"dict's (about 100 bytes a tensor); refused before reading it "
            f"({limit_hint(PICKLE_LIMIT)})"
        )
    inflated = sum(m.file_size for m in members)
    if inflated > size + limit_bytes(PICKLE_LIMIT):
        raise CheckpointError(
            f"{path}: its members inflate to {inflated / MB:,.0f} MB from {size / MB:,.1f} MB "
            "on disk, but torch.save stores tensors uncompressed; refused before reading them "
            f"({limit_hint(PICKLE_LIMIT)})"
        )
    return True


def _pickles(path: str) -> Iterator[IO[bytes]]:
    """The pickle streams of a checkpoint: a zip's data.pkl (sizes checked by `check_zip`), or
    the legacy file itself (several pickles in a row)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith("data.pkl"):
                    yield io.BytesIO(archive.read(name))
        return
    with open(path, "rb") as stream:
        yield stream


def scan_pickle(path: str, max_ops: int = 200_000) -> tuple[str | None, int]:
    """(the first non-data global the pickles name, e.g. 'posix.system', or None; the highest
    pickle protocol they declare). Reads opcodes only, never executes them."""
    found: tuple[str | None, int] = (None, 0)
    try:
        for stream in _pickles(path):
            for _ in range(5):  # a legacy file: magic, protocol, sys info, payload, storage keys
                found = _scan_one(stream, found[1], max_ops)
                if found[0]:
                    return found
    except Exception:  # a torn or foreign stream: what was found so far is the answer
        return None, found[1]
    return found


def _scan_one(stream: IO[bytes], protocol: int, max_ops: int) -> tuple[str | None, int]:
    """One pickle's first non-data global and protocol. The strings a STACK_GLOBAL takes may
    come back from the memo (protocol 4 memoizes 'torch' once), so the memo is followed."""
    strings: list[str] = []
    memo: dict[int, Any] = {}
    last: Any = None
    for count, (op, arg, _) in enumerate(pickletools.genops(stream)):
        if count > max_ops:
            break
        name = None
        if op.name == "PROTO":
            protocol = max(protocol, int(arg))
        elif op.name == "MEMOIZE":
            memo[len(memo)] = last
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = last
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            last = memo.get(int(arg))
            if isinstance(last, str):
                strings = (strings + [last])[-2:]
            continue
        elif op.name in ("GLOBAL", "INST") and isinstance(arg, str):
            name = arg.replace(" ", ".")
        elif op.name == "STACK_GLOBAL" and len(strings) == 2:
            name = ".".join(strings)
        if name and not name.startswith(DATA_MODULES):
            return name, protocol
        if isinstance(arg, str):
            strings = (strings + [arg])[-2:]
        if op.name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "FRAME"):
            last = arg if isinstance(arg, str) else None
    return None, protocol


def tensor_bytes(value: Any, depth: int = 0) -> int:
    """Bytes of every tensor in a loaded payload, from declared shapes (nothing is read)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v, depth + 1) for v in value)
    return 0


def model_shapes(state_dict: dict[str, Any]) -> tuple[str, dict[str, tuple[int, ...]]] | None:
    """(name, {key: shape}) of the registry architecture the keys name, built on the meta
    device (no memory); None when the keys name none."""
    from engine.models.resnets import build_model, infer_model_name

    name = infer_model_name(state_dict)
    head = unwrap(state_dict)[0].get("linear.weight")
    if name is None or not isinstance(head, torch.Tensor) or head.dim() != 2:
        return None
    classes = int(head.shape[0])
    if not 1 <= classes <= 1_000_000:
        return None
    with torch.device("meta"):
        own = build_model(name, classes).state_dict()
    return name, {k: tuple(v.shape) for k, v in own.items()}


def check_budget(path: str, state_dict: dict[str, Any], rest: dict[str, Any]) -> None:
    """Refuse a file whose tensors exceed what its architecture can legitimately hold (see the
    module doc), counted from declared shapes before any is read."""
    try:
        total = tensor_bytes(state_dict) + tensor_bytes(rest)
    except ValueError as exc:
        raise CheckpointError(f"{path} is damaged: {exc}") from None
    found = model_shapes(state_dict)
    if found is None:
        if total > limit_bytes(TENSOR_LIMIT):
            raise CheckpointError(
                f"{path} holds {total / MB:,.0f} MB of tensors and names no architecture this "
                f"version knows; refused before reading them ({limit_hint(TENSOR_LIMIT)})"
            )
        return
    name, own = found
    weights = sum(
        v.numel() * v.element_size()
        for k, v in state_dict.items()
        if isinstance(v, torch.Tensor) and own.get(strip_wrappers(k)) == tuple(v.shape)
    )
    allowed = EXTRA_FACTOR * weights + limit_bytes(EXTRA_LIMIT)
    if total - weights > allowed:
        raise CheckpointError(
            f"{path} holds {(total - weights) / MB:,.0f} MB of tensors besides the "
            f"{weights / MB:,.1f} MB of {name} weights, more than optimizer state takes "
            f"({EXTRA_FACTOR}x the weights); refused before reading them "
            f"({limit_hint(EXTRA_LIMIT)} beyond {EXTRA_FACTOR}x)"
        )


def materialize(value: Any) -> Any:
    """Every tensor of a memory-mapped payload copied into memory (after `check_budget`), so
    a file replaced in place later cannot pull the pages from under a running sweep."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        for key in list(value):
            value[key] = materialize(value[key])
        return value
    if isinstance(value, list):
        value[:] = [materialize(v) for v in value]
        return value
    if isinstance(value, tuple):
        return (
            type(value)(*map(materialize, value))
            if hasattr(value, "_fields")
            else tuple(map(materialize, value))
        )
    return value


def check_sparse(path: str, payload: dict[str, Any]) -> None:
    """A compact pruned file's declared shapes, checked before anything is decoded: against the
    architecture its keys name (every tensor the model's own shape), else against
    TENSOR_LIMIT (decoding takes about 4x the decoded bytes while it runs)."""
    from engine.checkpoints import sparse_format

    sparse, dense = payload.get("sparse"), payload.get("dense")
    if not isinstance(sparse, dict) or not isinstance(dense, dict):
        raise CheckpointError(f"{path} is a damaged compact pruned file (malformed tables)")
    meta: dict[str, Any] = {k: v for k, v in dense.items() if isinstance(v, torch.Tensor)}
    try:
        for name, entry in sparse.items():
            shape = entry["shape"]
            sparse_format.declared_numel(shape)  # malformed or beyond MAX_ELEMENTS: refused here
            dtype = sparse_format.dtype_from_name(entry["dtype"])
            meta[name] = torch.empty(list(shape), dtype=dtype, device="meta")
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is a damaged compact pruned file ({exc})") from None
    found = model_shapes(meta)
    if found is None:
        declared = 4 * sum(meta[n].numel() * meta[n].element_size() for n in sparse)
        if declared > limit_bytes(TENSOR_LIMIT):
            raise CheckpointError(
                f"{path} declares {declared / 4 / MB:,.0f} MB of pruned weights and names no "
                f"architecture this version knows; refused before decoding "
                f"({limit_hint(TENSOR_LIMIT)}; decoding takes 4x)"
            )
        return
    name, own = found
    for key in sparse:
        shape, want = tuple(meta[key].shape), own.get(strip_wrappers(key))
        if want != shape:
            model = "not in the model" if want is None else f"model {want}"
            raise CheckpointError(
                f"{path} does not fit {name}: {key} declares {shape}, {model}; refused before "
                "decoding"
            )

"""Checkpoint I/O in one place: read any format we know, load strictly, write atomically.

Formats read:
- ours and the seed's: `{'net': state_dict, 'epoch': E, ...}` (ours add optimizer, scheduler,
  config, acc, history, ...), so the seed's code reads our files and we read theirs;
- `{'state_dict': ..., 'best_prec1': ...}` as in the pretrained CIFAR ResNet-20..1202 files
  (saved by PyTorch < 0.4.1: `module.` keys, BatchNorm without `num_batches_tracked`);
- kuangliu/pytorch-cifar's `{'net', 'acc', 'epoch'}`; PyTorch Lightning's `{'state_dict':
  {'model.…'}, 'epoch', 'global_step', ...}`; a bare state dict, also torch.compile's
  (`_orig_mod.` keys); the key spellings are mapped in `engine.models.state_keys`;
- our compact pruned format (`engine.checkpoints.sparse_format`), decoded back to plain weights;
- our slim format (`engine.pruning.slim`: channels physically removed), expanded back to the dense
  shapes with the removed channels zero, which computes exactly what the slim network does.

A whole pickled model (`torch.save(model)`) is refused with the one command that converts it:
loading it would mean running code from the file.

Loading always uses `weights_only=True`: a checkpoint is data, never code. Every failure is a
one-line `CheckpointError` naming the file, so front ends can show it without a traceback.
"""

from __future__ import annotations

import lzma
import os
import re
import secrets
import warnings
import zipfile
import zlib
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from engine.checkpoints import guard, sparse_format
from engine.errors import CheckpointError, ModelMismatch, PrunelabError
from engine.models.resnets import infer_model_name
from engine.models.spec import build_model, is_shipped, recorded_spec
from engine.models.state_keys import fill_bn_counters, strip_wrappers, unwrap
from engine.pruning import graph_files, slim
from engine.runs.files import disk_full_message, file_sha256, os_error_message

# Keys under which known formats keep the state dict, tried in this order.
STATE_DICT_KEYS = ("net", "state_dict", "model_state_dict", "model")

# Fragments of torch's weights_only refusals (as opposed to a merely corrupt pickle).
_REFUSED = ("GLOBAL ", "unrecognized function", "Can only create new object", "Can only build")

_MAX_LISTED = 5
# torch's stream writer reports a full disk as a RuntimeError with one of these.
_WRITE_FAILED = ("enforce fail", "unexpected pos", "file write failed", "PytorchStreamWriter")


class CheckpointExists(CheckpointError):
    """The target holds another run's checkpoint and overwriting was not asked for."""


@dataclass
class Checkpoint:
    path: str
    state_dict: dict[str, torch.Tensor]  # 'module.' / '_orig_mod.' / Lightning prefixes stripped
    epoch: int | None = None
    model: str | None = None  # recorded architecture name, else inferred from the keys
    normalization: str | None = None  # recorded input normalisation, if any
    extra: dict[str, Any] = field(default_factory=dict)  # every other top-level key
    # the file's own key names (wrapper prefixes only stripped), for networks of any other spec
    raw: dict[str, torch.Tensor] = field(default_factory=dict)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint in any supported format; raise CheckpointError on any problem."""
    path = str(path)
    payload = _load_payload(path)
    raw, rest = _state_dict_from_payload(payload, path)
    guard.check_budget(path, raw, rest)
    raw, rest = guard.materialize(raw), guard.materialize(rest)
    raw = {strip_wrappers(k): v for k, v in raw.items()}

    config = rest.get("config") if isinstance(rest.get("config"), dict) else {}
    recorded = _pick_str(config, rest, "model")
    # a name another tool wrote ("ResNet20", "resnet9999") says nothing we can build: the keys do
    spec = recorded_spec(recorded)
    # our key spellings for the shipped ResNets; a network of another spec keeps its own names
    state_dict = raw if spec and not is_shipped(spec) else unwrap(raw)[0]
    model = spec or infer_model_name(state_dict)
    normalization = _pick_str(config, rest, "normalization")
    epoch = rest.pop("epoch", None)
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        epoch = None
    return Checkpoint(path, state_dict, epoch, model, normalization, rest, raw)


def _load_payload(path: str) -> Any:
    """torch.load with weights_only=True, bounded first (engine.checkpoints.guard): a regular
    file, a zip directory that inflates to what it says, tensors the file's architecture can
    hold. Every failure is one CheckpointError."""
    size = guard.check_file(path)
    is_zip = guard.check_zip(path, size)
    with guard.opened(path) as target:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. torch's note on pickle protocols
                # a zip is memory-mapped: sizes are checked before a tensor is read
                payload = torch.load(target, map_location="cpu", weights_only=True, mmap=is_zip)
        except Exception as exc:
            raise CheckpointError(_load_failure(path, exc)) from exc
    return payload


def _load_failure(path: str, exc: Exception) -> str:
    """Why torch.load refused: code in the pickle, a pickle protocol the weights-only loader
    cannot read, or a damaged file."""
    message = str(exc)
    code, protocol = guard.scan_pickle(path)
    if code or any(fragment in message for fragment in _REFUSED):
        return _refusal(path, message, code)
    if protocol > 2 and "Unsupported operand" in message:
        return (
            f"{path} was pickled with protocol {protocol}, which torch's weights-only loader "
            "cannot read; save it again with torch.save's default protocol"
        )
    return f"{path} is truncated or not a PyTorch checkpoint ({type(exc).__name__})"


def _refusal(path: str, message: str, code: str | None = None) -> str:
    """Why a file was refused, and the one command that turns it into a state dict."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    what = f"; it names {found[1]}" if found else ""
    if code and not _pickles_modules(path):
        return (
            f"{path} contains code objects ({code}); refused: a checkpoint is loaded as data "
            "only (weights_only)"
        )
    if _pickles_modules(path):
        return (
            f"{path} is a whole pickled model (torch.save(model)), not a state dict; loading it "
            'would run code from the file. If you trust it, convert it once: python -c "import '
            f"torch; torch.save(torch.load('{path}', weights_only=False).state_dict(), "
            f"'{path}.state_dict.pth')\""
        )
    return (
        f"{path} contains objects other than tensors and plain data; refusing to load it "
        f"(only weights_only checkpoints are accepted{what}). If you trust it, keep only the weights: "
        f"python -c \"import torch; c = torch.load('{path}', weights_only=False); "
        f"torch.save(c['state_dict'], '{path}.state_dict.pth')\" (use the key that holds them)"
    )


_PICKLE_PEEK = 64 << 20  # bytes of a legacy-format file scanned for module class names


def _pickles_modules(path: str) -> bool:
    """Whether the file's pickle names torch.nn module classes, read as bytes (never unpickled)."""
    marker = b"torch.nn.modules"
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                return any(marker in archive.read(n) for n in names)
        with open(path, "rb") as f:
            return marker in f.read(_PICKLE_PEEK)
    except (OSError, zipfile.BadZipFile):
        return False


def _state_dict_from_payload(
    payload: Any, path: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a loaded payload into (state dict, the other top-level keys)."""
    if _is_state_dict(payload):
        return dict(payload), {}
    if isinstance(payload, dict) and payload.get("format") == graph_files.GRAPH_SLIM_FORMAT:
        try:
            name, kept, state = graph_files.payload_parts(payload)
            dense = graph_files.dense_for(build_model, name, state)
            state_dict = graph_files.dense_equivalent(dense, kept, state)
        except (KeyError, ValueError, TypeError, RuntimeError, PrunelabError) as exc:
            raise CheckpointError(f"{path} is a damaged slim file ({exc})") from None
        rest = {k: v for k, v in payload.items() if k not in ("format", "net")}
        return state_dict, rest
    if slim.is_slim_payload(payload):
        try:
            name, spec, state, classes = slim.slim_payload_parts(payload)
            state_dict = slim.dense_state_dict(name, spec, state, classes)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{path} is a damaged slim file ({exc})") from None
        rest = {k: v for k, v in payload.items() if k not in ("format", "net")}
        return state_dict, rest
    if isinstance(payload, dict) and payload.get("format") == sparse_format.FORMAT:
        guard.check_sparse(path, payload)  # declared shapes against the model's, first
        try:
            state_dict = sparse_format.decode_state_dict(payload)
        except (
            KeyError,
            IndexError,
            AttributeError,
            ValueError,
            TypeError,
            RuntimeError,
            lzma.LZMAError,
            zlib.error,
        ) as exc:
            raise CheckpointError(f"{path} is a damaged compact pruned file ({exc})") from None
        rest = {k: v for k, v in payload.items() if k not in ("format", "sparse", "dense")}
        return state_dict, rest
    if isinstance(payload, dict):
        for key in STATE_DICT_KEYS:
            if _is_state_dict(payload.get(key)):
                rest = {k: v for k, v in payload.items() if k != key}
                return dict(payload[key]), rest
        found = ", ".join(map(str, list(payload)[:8])) or "none"
        raise CheckpointError(
            f"{path} holds no recognisable state dict (top-level keys: {found}; expected 'net', "
            "'state_dict' or a bare state dict)"
        )
    raise CheckpointError(
        f"{path} holds no recognisable state dict (it contains a {type(payload).__name__})"
    )


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _pick_str(config: dict[str, Any], rest: dict[str, Any], key: str) -> str | None:
    """config[key], else a top-level string (removed from `rest`, it becomes a field)."""
    if isinstance(config.get(key), str):
        return config[key]
    if isinstance(rest.get(key), str):
        return rest.pop(key)
    return None


def load_state(
    model: nn.Module, state_dict: dict[str, torch.Tensor] | Checkpoint, source: str
) -> list[str]:
    """Strict load after mapping wrapper prefixes and filling legacy BatchNorm counters.

    Given a Checkpoint, a shipped ResNet loads its keys mapped to our spellings, any other
    network the file's own names (torchvision's `fc.` stays `fc.`).

    Returns the keys that were left out because they belong to no part of the model (e.g. a loss
    module's buffer in a Lightning file), for the caller to name. Any key the model lacks under
    its own module names, any missing key and any shape mismatch is a CheckpointError that
    lists the keys and suggests a --model."""
    own = model.state_dict()
    shipped = infer_model_name(own)
    if isinstance(state_dict, Checkpoint):
        state_dict = state_dict.state_dict if shipped or not state_dict.raw else state_dict.raw
    roots = {k.split(".", 1)[0] for k in own}
    state_dict, _ = unwrap(state_dict, lambda name: name in roots, rename=shipped is not None)
    state_dict, _ = fill_bn_counters(state_dict, own)
    missing = [k for k in own if k not in state_dict]
    extra = [k for k in state_dict if k not in own]
    unexpected = [k for k in extra if k.split(".", 1)[0] in roots]
    ignored = [k for k in extra if k.split(".", 1)[0] not in roots]
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    retyped = [
        f"{k}: file {str(v.dtype).removeprefix('torch.')} vs model "
        f"{str(own[k].dtype).removeprefix('torch.')}"
        for k, v in state_dict.items()
        if k in own and isinstance(v, torch.Tensor) and _kind(v) != _kind(own[k])
    ]
    problems = []
    if retyped:  # an integer, bool or complex weight would be cast to float without a word
        problems.append(f"{len(retyped)} tensors of another type ({_listed(retyped, '; ')})")
    if missing:
        problems.append(f"{len(missing)} missing keys ({_listed(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_listed(unexpected)})")
    if len(mismatched) == 1:
        problems.append(f"shape mismatch for {mismatched[0]}")
    elif mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({_listed(mismatched, '; ')})")
    if not problems:
        try:
            model.load_state_dict({k: state_dict[k] for k in own}, strict=True)
            return ignored
        except (RuntimeError, TypeError, ValueError) as exc:
            problems.append(str(exc).strip().splitlines()[0])
    model_name = shipped or type(model).__name__
    message = f"{source} does not fit {model_name}: " + ", ".join(problems)
    file_name = infer_model_name(state_dict)
    if file_name and file_name != model_name:
        message += f" (the file looks like a {file_name} checkpoint: pass --model {file_name})"
        raise ModelMismatch(message, file_name)
    if shipped is None:  # a network of the user's spec: the spec is what to fix (or the file)
        raise ModelMismatch(message + " (is --model the network these weights belong to?)", "")
    raise CheckpointError(message)


def _kind(tensor: torch.Tensor) -> str:
    """float, complex, bool or int: a load may change a tensor's precision, never its kind."""
    if tensor.is_floating_point():
        return "float"
    if tensor.is_complex():
        return "complex"
    return "bool" if tensor.dtype == torch.bool else "int"


def ignored_keys_notice(source: str, ignored: list[str]) -> str:
    """One line naming the keys a load left out."""
    return f"{source}: ignored {len(ignored)} key(s) that belong to no part of the model ({_listed(ignored)})"


def _listed(items: list[str], sep: str = ", ") -> str:
    shown = sep.join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return f"{shown}{sep}and {more} more" if more > 0 else shown


def write_checkpoint(path: str | Path, payload: dict[str, Any], *, replace: bool = True) -> str:
    """torch.save that a crash at any moment cannot half-write: temp file, fsync, rename.
    Returns the SHA-256 of what was written, for the run to record.

    The temp file (`.NAME.PID.HEX.tmp`, so a dead writer's leftovers can be found) lives in the
    target's folder so the rename is atomic; the folder is fsynced so the rename survives a power
    cut. With `replace=False` an existing file is never replaced (CheckpointExists), even by a
    concurrent writer: the file is put in place by a hard link, which fails if the name is taken.
    A full disk or any OSError becomes a CheckpointError naming the path.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # os.open with mode 0o666 so the file gets the usual umask-based permissions.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        digest = file_sha256(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            _place_new(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, CheckpointError):
            raise
        if isinstance(exc, OSError):
            message = os_error_message(path, exc, payload_bytes(payload))
            raise CheckpointError(f"cannot write checkpoint: {message}") from exc
        if isinstance(exc, RuntimeError) and any(m in str(exc) for m in _WRITE_FAILED):
            message = disk_full_message(path, payload_bytes(payload))
            raise CheckpointError(f"cannot write checkpoint: {message}") from exc
        raise
    _fsync_dir(path.parent)
    return digest


def _place_new(tmp: Path, path: Path) -> None:
    """Move `tmp` to `path` only if `path` does not exist (atomically where links work)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise CheckpointExists(
            f"{path} exists; pass --overwrite or another --checkpoint-dir"
        ) from None
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise CheckpointExists(
                f"{path} exists; pass --overwrite or another --checkpoint-dir"
            ) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def payload_bytes(payload: Any) -> int:
    """Bytes of the tensors in a payload: about what torch.save needs on disk."""
    if isinstance(payload, torch.Tensor):
        return payload.numel() * payload.element_size()
    if isinstance(payload, dict):
        return sum(payload_bytes(v) for v in payload.values())
    if isinstance(payload, (list, tuple)):
        return sum(payload_bytes(v) for v in payload)
    return 0


def check_finite(state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity: every accuracy measured on them would mislead."""
    bad = []
    for name, tensor in state_dict.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(
            torch.isfinite(tensor).all()
        ):
            nan = int(torch.isnan(tensor).sum())
            inf = int(torch.isinf(tensor).sum())
            bad.append(f"{name} ({nan} NaN, {inf} infinite)")
    if bad:
        raise CheckpointError(
            f"{source} holds non-finite weights: {_listed(bad)}; it is probably damaged or "
            "diverged (pass --allow-nonfinite to use it anyway)"
        )


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_slim(path: str | Path) -> nn.Module:
    """The slim network a `--format slim` export holds, rebuilt from its channel spec."""
    path = str(path)
    payload = _load_payload(path)
    if isinstance(payload, dict) and payload.get("format") == graph_files.GRAPH_SLIM_FORMAT:
        try:
            name, kept, state = graph_files.payload_parts(payload)
            dense = graph_files.dense_for(build_model, name, state)
            return graph_files.rebuild_slim(dense, kept, state)
        except (KeyError, ValueError, TypeError, RuntimeError, PrunelabError) as exc:
            raise CheckpointError(f"{path} is a damaged slim file ({exc})") from None
    if not slim.is_slim_payload(payload):
        raise CheckpointError(f"{path} is not a slim file (write one with export --format slim)")
    try:
        return slim.load_slim(*slim.slim_payload_parts(payload))
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is a damaged slim file ({exc})") from None

"""The compact file format for pruned weights: `prunelab-sparse-v1`.

Per pruned tensor we store a keep-bitmask (one bit per weight, packed, then LZMA-compressed: at
90% sparsity it shrinks to about half a bit per weight) and the kept values (exact, their bytes
split into planes so the sign/exponent bytes compress, then DEFLATE-compressed). Everything
else (BatchNorm statistics, dense tensors) is stored as is. The payload is a plain dict of
tensors, ints and strings, so it loads with `torch.load(weights_only=True)` like any checkpoint,
and decoding gives back bit-identical weights.
"""

from __future__ import annotations

import lzma
import zlib
from typing import Any

import numpy as np
import torch

FORMAT = "prunelab-sparse-v1"
MIN_ZERO_FRACTION = 0.1  # below this a tensor stays dense: the bitmask would not pay for itself
MIN_NUMEL = 256
# Decoding never trusts the file: shapes are checked against this cap (10x ResNet-50's 25M
# weights) and every stream is decompressed only up to the size its shape declares, so a small
# hostile file cannot make us allocate gigabytes.
MAX_ELEMENTS = 256 * 2**20
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def dtype_from_name(name: Any) -> torch.dtype:
    if name not in FLOAT_DTYPES:
        raise ValueError(f"unknown dtype {str(name)[:20]!r}")
    return getattr(torch, name)


def declared_numel(shape: Any) -> int:
    """Elements a declared shape holds, refusing anything malformed or beyond MAX_ELEMENTS."""
    if not isinstance(shape, (list, tuple)) or len(shape) > 8:
        raise ValueError("a tensor shape is malformed")
    numel = 1
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"a tensor shape holds {str(size)[:20]}")
        numel *= size
        if numel > MAX_ELEMENTS:
            raise ValueError(
                f"a tensor declares more than {MAX_ELEMENTS:,} weights (shape {list(shape)[:8]})"
            )
    return numel


def _inflate(decompressor: Any, data: torch.Tensor, expected: int, what: str) -> bytes:
    """Decompress exactly `expected` bytes; stop (and refuse) as soon as there would be more."""
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8:
        raise ValueError(f"the {what} stream is not bytes")
    out = decompressor.decompress(data.numpy().tobytes(), expected + 1)
    if len(out) != expected:
        raise ValueError(f"the {what} stream holds more or less than its shape declares")
    return out


def encode_tensor(tensor: torch.Tensor) -> dict[str, Any]:
    flat = tensor.detach().cpu().contiguous().view(-1)
    keep = flat != 0
    values = flat[keep].contiguous()
    itemsize = values.element_size()
    planes = values.view(torch.uint8).view(-1, itemsize).t().contiguous().numpy().tobytes()
    mask_bits = np.packbits(keep.numpy()).tobytes()
    return {
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype).removeprefix("torch."),
        "nonzero": int(values.numel()),
        "mask": _bytes_tensor(lzma.compress(mask_bits, preset=6)),
        "values": _bytes_tensor(zlib.compress(planes, 6)),
    }


def decode_tensor(entry: dict[str, Any]) -> torch.Tensor:
    shape = list(entry["shape"])
    numel = declared_numel(shape)
    dtype = dtype_from_name(entry["dtype"])
    nonzero = entry["nonzero"]
    if isinstance(nonzero, bool) or not isinstance(nonzero, int) or not 0 <= nonzero <= numel:
        raise ValueError("the count of kept weights is out of range")
    itemsize = torch.empty((), dtype=dtype).element_size()
    mask = _inflate(lzma.LZMADecompressor(), entry["mask"], (numel + 7) // 8, "mask")
    bits = np.frombuffer(mask, dtype=np.uint8)
    keep = torch.from_numpy(np.unpackbits(bits, count=numel).astype(bool))
    if int(keep.sum()) != nonzero:
        raise ValueError("mask and values disagree")
    values = _inflate(zlib.decompressobj(), entry["values"], nonzero * itemsize, "values")
    planes = np.frombuffer(values, dtype=np.uint8)
    out = torch.zeros(numel, dtype=dtype)
    if nonzero:
        interleaved = np.ascontiguousarray(planes.reshape(itemsize, nonzero).T)
        out[keep] = torch.from_numpy(interleaved).view(dtype).view(-1)
    return out.view(shape)


def should_encode(tensor: torch.Tensor) -> bool:
    if not tensor.is_floating_point() or tensor.numel() < MIN_NUMEL:
        return False
    zeros = tensor.numel() - int(torch.count_nonzero(tensor))
    return zeros >= MIN_ZERO_FRACTION * tensor.numel()


def encode_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """{'sparse': {name: entry}, 'dense': {name: tensor}} for a pruned state dict."""
    sparse, dense = {}, {}
    for name, tensor in state_dict.items():
        if should_encode(tensor):
            sparse[name] = encode_tensor(tensor)
        else:
            dense[name] = tensor.detach().cpu().contiguous()
    return {"format": FORMAT, "sparse": sparse, "dense": dense}


def decode_state_dict(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    sparse, dense = payload["sparse"], payload["dense"]
    if not isinstance(sparse, dict) or not isinstance(dense, dict):
        raise ValueError("the file's tensor tables are malformed")
    total = sum(declared_numel(entry["shape"]) for entry in sparse.values())
    if total > MAX_ELEMENTS:
        raise ValueError(f"the file declares {total:,} weights, more than {MAX_ELEMENTS:,}")
    decoded = {name: decode_tensor(entry) for name, entry in sparse.items()}
    decoded.update(dense)
    return decoded


def encoded_bytes(entry_or_tensor: dict[str, Any] | torch.Tensor) -> int:
    """Bytes a tensor takes in the file (compressed mask + values, or raw)."""
    if isinstance(entry_or_tensor, torch.Tensor):
        return entry_or_tensor.numel() * entry_or_tensor.element_size()
    return int(entry_or_tensor["mask"].numel() + entry_or_tensor["values"].numel())


def bitmask_bytes(numel: int, nonzero: int, itemsize: int = 4) -> int:
    """Size of the uncompressed encoding (packed bitmask + kept values): a quick upper bound
    reported per sweep level without compressing anything."""
    return (numel + 7) // 8 + nonzero * itemsize

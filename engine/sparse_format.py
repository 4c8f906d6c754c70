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


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _dtype_from_name(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype


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
    shape = [int(s) for s in entry["shape"]]
    dtype = _dtype_from_name(entry["dtype"])
    numel = int(np.prod(shape)) if shape else 1
    bits = np.frombuffer(lzma.decompress(entry["mask"].numpy().tobytes()), dtype=np.uint8)
    keep = torch.from_numpy(np.unpackbits(bits, count=numel).astype(bool))
    itemsize = torch.empty((), dtype=dtype).element_size()
    planes = np.frombuffer(zlib.decompress(entry["values"].numpy().tobytes()), dtype=np.uint8)
    nonzero = int(entry["nonzero"])
    if planes.size != nonzero * itemsize or int(keep.sum()) != nonzero:
        raise ValueError("mask and values disagree")
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
    decoded = {name: decode_tensor(entry) for name, entry in payload["sparse"].items()}
    decoded.update(payload["dense"])
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

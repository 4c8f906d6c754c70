"""ONNX out (the optional `[onnx]` extra: onnx, onnxscript, onnxruntime).

`export --format onnx` writes the network a level really runs as an ONNX graph: the slim network
(channels taken out) when channels are dead, the dense one with its zeros otherwise. The graph is
traced by torch's own exporter (`torch.onnx.export(..., dynamo=True)`) with a free batch
dimension, in eval mode (BatchNorm as inference), then loaded back into onnxruntime and run on a
few random images: the largest difference from PyTorch's logits is reported, and a file that
differs by more than ONNX_TOLERANCE is removed and the export fails.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

ONNX_TOLERANCE = 1e-4  # max abs logit difference, fp32, ONNX Runtime against PyTorch
CHECK_IMAGES = 4  # random images the written file is checked on (another batch size than traced)


@torch.no_grad()
def write_onnx(
    model: nn.Module, path: str | Path, input_size: tuple[int, ...] = (3, 32, 32)
) -> float:
    """Write `model` (eval mode, fp32, contiguous) to `path` as ONNX with inputs `images`
    (batch, *input_size) and outputs `logits`; return the largest absolute difference between
    ONNX Runtime's and PyTorch's logits on CHECK_IMAGES random images. ValueError (and no file)
    when it exceeds ONNX_TOLERANCE."""
    import onnxruntime

    path = Path(path)
    model = model.eval().float().to("cpu", memory_format=torch.contiguous_format)
    traced = torch.randn(2, *input_size, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing chatter
        torch.onnx.export(
            model,
            (traced,),
            str(path),
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    images = torch.randn(CHECK_IMAGES, *input_size, generator=torch.Generator().manual_seed(1))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"images": images.numpy()})
    diff = (torch.from_numpy(logits) - model(images)).abs().max().item()
    if not diff <= ONNX_TOLERANCE:
        path.unlink(missing_ok=True)
        raise ValueError(
            f"the ONNX graph's logits differ from PyTorch's by {diff:.2e} "
            f"(over {ONNX_TOLERANCE:g}): nothing written"
        )
    return diff

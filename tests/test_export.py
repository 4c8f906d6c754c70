"""Exports are permanent, load into the plain architecture, and the sizes are the real ones."""

import os

import pytest
import torch

from engine.checkpoints.io import read_checkpoint, write_checkpoint
from engine.checkpoints.sparse_format import decode_tensor, encode_tensor
from engine.errors import ConfigError
from engine.export.config import ExportConfig
from engine.export.writer import export_pruned as run_export
from engine.models.resnets import build_model
from engine.pruning.pruner import Pruner


def export_pruned(checkpoint, level, *, output, fmt="sparse", run_dir=None, **kw):
    """One export (recorded as a run beside the output file unless `run_dir` says where)."""
    run_dir = run_dir or os.path.join(os.path.dirname(str(output)), "runs")
    config = ExportConfig(
        checkpoint=str(checkpoint),
        level=level,
        format=fmt,
        output=str(output),
        run_dir=str(run_dir),
        **kw,
    )
    return run_export(config)


def pruned_reference(checkpoint: str, level: float, method: str) -> dict[str, torch.Tensor]:
    model = build_model("resnet20")
    model.load_state_dict(read_checkpoint(checkpoint).state_dict)
    Pruner(model, method).set_level(level)
    return model.state_dict()


@pytest.mark.parametrize("method", ["layerwise", "global", "structured"])
def test_compact_export_reloads_to_identical_weights(trained_checkpoint, tmp_path, method):
    out = tmp_path / f"{method}.sparse.pth"
    result = export_pruned(trained_checkpoint, 70, method=method, output=out)
    assert result.path == str(out) and result.file_bytes == os.path.getsize(out)
    loaded = read_checkpoint(out)
    expected = pruned_reference(trained_checkpoint, 70, method)
    assert loaded.model == "resnet20"
    assert set(loaded.state_dict) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded.state_dict[key], value), key
    # a compact file is itself a checkpoint: it loads into the plain model
    plain = build_model("resnet20")
    plain.load_state_dict(loaded.state_dict)


def test_dense_export_is_plain_and_seed_readable(trained_checkpoint, tmp_path):
    out = tmp_path / "dense.pth"
    result = export_pruned(trained_checkpoint, 50, method="global", fmt="dense", output=out)
    payload = torch.load(out, map_location="cpu", weights_only=True)
    assert {"net", "epoch"} <= set(payload)
    assert not any(k.endswith(("_orig", "_mask")) for k in payload["net"])
    build_model("resnet20").load_state_dict(payload["net"])  # the seed's loading code
    assert result.file_bytes == result.dense_file_bytes == os.path.getsize(out)
    assert result.sparsity_percent == pytest.approx(50.0, abs=0.01)


def test_sizes_are_consistent(trained_checkpoint, tmp_path):
    r = export_pruned(trained_checkpoint, 90, method="global", output=tmp_path / "c.pth")
    assert r.nonzero_bytes < r.sparse_encoded_bytes < r.dense_parameter_bytes
    assert r.file_bytes < r.dense_file_bytes
    assert r.ratio == r.file_bytes / r.dense_file_bytes


def test_resnet50_at_90_percent_global_is_at_most_12_percent_of_dense(tmp_path):
    torch.manual_seed(0)
    source = tmp_path / "r50.pth"
    write_checkpoint(source, {"net": build_model("resnet50").state_dict(), "epoch": 60})
    r = export_pruned(source, 90, method="global", output=tmp_path / "r50.sparse.pth")
    assert r.file_bytes / os.path.getsize(source) <= 0.12
    assert r.ratio <= 0.12


def test_codec_round_trips_edge_cases():
    for tensor in (
        torch.zeros(300),
        torch.randn(17, 19),
        torch.tensor([0.0, -0.0, 1e-38, float("inf")] * 100),
        torch.randn(8, 4, 3, 3, dtype=torch.float64) * (torch.rand(8, 4, 3, 3) > 0.5),
    ):
        decoded = decode_tensor(encode_tensor(tensor))
        assert decoded.dtype == tensor.dtype and decoded.shape == tensor.shape
        assert torch.equal(decoded, tensor)


def test_bad_values_name_the_option(trained_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="level"):
        export_pruned(trained_checkpoint, 120, output=tmp_path / "x.pth")
    with pytest.raises(ConfigError, match="format"):
        export_pruned(trained_checkpoint, 50, fmt="zip", output=tmp_path / "x.pth")
    assert not (tmp_path / "runs").exists()  # nothing recorded for a config that is wrong


def test_export_is_recorded_as_a_run(trained_checkpoint, tmp_path):
    from engine.runs.record import list_runs

    result = export_pruned(
        trained_checkpoint, 60, output=tmp_path / "e.pth", run_dir=tmp_path / "runs"
    )
    (listing,) = list_runs(tmp_path / "runs")
    assert listing.record.kind == "export" and listing.record.status == "completed"
    assert listing.record.config["checkpoint"] == trained_checkpoint
    assert listing.record.summary["file_bytes"] == result.file_bytes


@pytest.mark.parametrize("method", ["structured", "coupled"])
def test_slim_export_rebuilds_the_smaller_network(trained_checkpoint, tmp_path, method):
    from engine.checkpoints.io import read_slim

    out = tmp_path / "slim.pth"
    result = export_pruned(trained_checkpoint, 50, method=method, fmt="slim", output=out)
    assert result.parameters < 0.4 * result.dense_parameters
    assert result.file_bytes < 0.5 * result.dense_file_bytes
    payload = torch.load(out, map_location="cpu", weights_only=True)
    assert payload["model"] == "resnet20" and payload["channels"]["layer1.0.conv1"]
    slim = read_slim(out)
    assert sum(p.numel() for p in slim.parameters()) == result.parameters
    # every command reads it like any checkpoint: dense shapes, removed channels zero
    dense = build_model("resnet20").eval()
    dense.load_state_dict(read_checkpoint(out).state_dict)
    masked = build_model("resnet20").eval()
    masked.load_state_dict(pruned_reference(trained_checkpoint, 50, method))
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = masked(images)
        assert (slim(images) - reference).abs().max().item() <= 1e-4
        assert (dense(images) - reference).abs().max().item() <= 1e-4


def test_slim_export_needs_structured(trained_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="--method structured"):
        export_pruned(trained_checkpoint, 50, method="layerwise", fmt="slim", output=tmp_path / "x")


def test_onnx_export_is_the_network_the_level_runs_checked_against_pytorch(
    trained_checkpoint, tmp_path
):
    """`--format onnx` (the [onnx] extra): the slim network for structured levels, the dense
    one with its zeros otherwise; ONNX Runtime's logits equal PyTorch's on another batch size."""
    for package in ("onnx", "onnxscript"):
        pytest.importorskip(package)
    onnxruntime = pytest.importorskip("onnxruntime")
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    for method, level in (("structured", 50), ("layerwise", 60)):
        out = tmp_path / f"{method}.onnx"
        result = export_pruned(trained_checkpoint, level, method=method, fmt="onnx", output=out)
        assert result.path == str(out) and result.onnx_max_abs_diff <= 1e-4
        masked = build_model("resnet20").eval()
        masked.load_state_dict(pruned_reference(trained_checkpoint, level, method))
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        (logits,) = session.run(["logits"], {"images": images.numpy()})
        with torch.no_grad():
            assert (torch.from_numpy(logits) - masked(images)).abs().max().item() <= 1e-4
        dense = sum(p.numel() for p in masked.parameters())
        if method == "structured":
            assert result.parameters < 0.4 * dense  # channels taken out
        else:
            assert result.parameters == dense  # zeros on dense kernels


def test_onnx_export_without_the_extra_names_the_option(monkeypatch):
    from engine.export import config as export_config

    monkeypatch.setattr(export_config, "ONNX_PACKAGES", ("onnx", "prunelab_no_such_package"))
    config = ExportConfig(checkpoint="c.pth", level=50, format="onnx")
    (problem,) = config.problems()
    assert problem.field == "format" and "pip install 'prunelab[onnx]'" in str(problem)
    assert "prunelab_no_such_package" in str(problem)

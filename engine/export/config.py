"""What one export writes: the pruned model's checkpoint, level, method and file format. Kept
apart from `engine.config` (the run configs) and free of torch, so the CLI's options and the
app's export dialog come from it at start-up cost."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from engine.config import EXPORT_FORMATS, DataOptions, SweepConfig
from engine.errors import ConfigError
from engine.methods import CHANNEL_METHODS, score_problem
from engine.options import Options, option, parse_levels, same_as


@dataclass
class ExportConfig(Options):
    """One pruned model written to a file: which checkpoint, how much and how to prune, which
    format, where. The CLI's `export` options and the app's export dialog come from it."""

    checkpoint: str = same_as(SweepConfig, "checkpoint")
    level: float = option(
        0.0,
        "percent of the prunable weights to remove",
        minimum=0.0,
        maximum=100.0,
        group="Pruning",
    )
    method: str = same_as(SweepConfig, "method")
    score: str = same_as(SweepConfig, "score")
    seed: int = same_as(DataOptions, "seed", group="Pruning")
    include_classifier: bool = same_as(SweepConfig, "include_classifier")
    min_density: float = same_as(SweepConfig, "min_density")
    model: str = same_as(SweepConfig, "model")
    format: str = option(
        EXPORT_FORMATS[0],
        "sparse = compact file (bitmask + values, compressed), dense = plain state dict the "
        "seed's code loads, slim = a channel method (structured, coupled, internal): the removed "
        "channels taken out (fewer parameters and MACs, and faster: the format that speeds up), onnx = the network the level "
        "runs (slim when channels are removed) as an ONNX graph checked against PyTorch's "
        "outputs (needs the [onnx] extra)",
        choices=EXPORT_FORMATS,
        group="Export",
    )
    output: str = option(
        "",
        "where to write (default: beside the checkpoint, <name>_<method><level>.<format>.pth; "
        "<name>_<method><level>.onnx for onnx; <method>-<score> for a score other than l1)",
        group="Export",
    )
    run_dir: str = same_as(DataOptions, "run_dir")
    allow_nonfinite: bool = same_as(DataOptions, "allow_nonfinite")

    def problems(self) -> list[ConfigError]:
        found = super().problems()
        if not any(p.field == "level" for p in found):
            try:
                parse_levels([self.level])  # the one rule for what a level may be
            except ValueError as exc:
                found.append(ConfigError("level", str(exc)))
        if not str(self.checkpoint).strip():
            found.append(ConfigError("checkpoint", "a checkpoint file is required"))
        if not str(self.run_dir).strip():
            found.append(ConfigError("run_dir", "must not be empty"))
        missing = missing_onnx_packages() if self.format == "onnx" else []
        if missing:
            found.append(
                ConfigError(
                    "format",
                    f"onnx needs the [onnx] extra (missing {', '.join(missing)}): "
                    "pip install 'prunelab[onnx]'",
                )
            )
        if self.format == "slim" and self.method not in CHANNEL_METHODS:
            found.append(
                ConfigError(
                    "format",
                    "slim removes whole channels: it needs --method "
                    f"{', '.join(CHANNEL_METHODS[:-1])} or {CHANNEL_METHODS[-1]}",
                )
            )
        if score_problem(self.method, self.score):
            found.append(ConfigError("score", score_problem(self.method, self.score)))
        return found


ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the [onnx] extra (pyproject.toml)


def missing_onnx_packages() -> list[str]:
    """The `[onnx]` extra's packages that are not installed (none when the extra is)."""
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]

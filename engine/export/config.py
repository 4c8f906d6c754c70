"""What one export writes: the pruned model's checkpoint, level, method and file format. Kept
apart from `engine.config` (the run configs) and free of torch, so the CLI's options and the
app's export dialog come from it at start-up cost."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

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
    name: str = same_as(DataOptions, "name")
    note: str = same_as(DataOptions, "note")

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


def default_output(
    checkpoint: str | Path, level_percent: float, method: str, fmt: str, score: str = "l1"
) -> Path:
    """Beside the input: `<stem>_<method><level>.<fmt>.pth` (`.onnx` for onnx;
    `<method>-<score>` for a score other than l1)."""
    path = Path(checkpoint)
    stem = path.name.removesuffix(".pth").removesuffix(".pt")
    how = method if score == "l1" else f"{method}-{score}"
    suffix = ".onnx" if fmt == "onnx" else f".{fmt}.pth"
    return path.with_name(f"{stem}_{how}{level_percent:g}{suffix}")


def _beside(config: ExportConfig) -> Path:
    return default_output(
        config.checkpoint, config.level, config.method, config.format, config.score
    )


def output_path(config: ExportConfig, fallback: Path | None = None) -> Path:
    """`config.output`, or beside the checkpoint (`default_output`); when the checkpoint's
    folder is read-only (a shared or downloaded file), in `fallback` (the export's run folder)."""
    if config.output:
        return Path(config.output)
    path = _beside(config)
    if fallback is not None and not os.access(path.parent, os.W_OK):
        return Path(fallback) / path.name
    return path


def read_only_note(config: ExportConfig) -> str:
    """'' or why the default output leaves the checkpoint's (read-only) folder."""
    if config.output:
        return ""
    folder = _beside(config).parent
    if os.access(folder, os.W_OK):
        return ""
    return (
        f"{folder} is read-only: the file goes into the export's run folder under "
        f"{config.run_dir} (or choose the output)"
    )

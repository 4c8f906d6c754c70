"""A terminal chart written as a PNG image with matplotlib (the `png` extra): the same data
and markings (baseline, tolerance band, best point) at print resolution, to share or paste."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PNG_HINT = "saving a chart needs matplotlib: pip install 'prunelab[png]'"


@dataclass
class ChartSpec:
    """What a chart shows, independent of how it is drawn."""

    title: str
    xlabel: str
    ylabel: str
    series: list[tuple[str, list[float], list[float]]] = field(default_factory=list)
    lines: list[tuple[str, float]] = field(default_factory=list)  # labelled horizontal lines
    band: tuple[float, float] | None = None  # a shaded y range (the tolerance band)
    points: list[tuple[str, float, float]] = field(default_factory=list)  # marked points
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None


def png_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_chart_png(path: str | Path, specs: list[ChartSpec]) -> Path:
    """Draw `specs` side by side into `path` (folders are created); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as mpl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = mpl.subplots(1, len(specs), figsize=(6.5 * len(specs), 4.2), dpi=150)
    axes = list(axes) if len(specs) > 1 else [axes]
    try:
        for ax, spec in zip(axes, specs, strict=True):
            if spec.band is not None:
                ax.axhspan(*spec.band, color="tab:green", alpha=0.15, label="tolerance band")
            for label, y in spec.lines:
                ax.axhline(y, linestyle="--", color="gray", linewidth=1, label=label)
            for label, xs, ys in spec.series:
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
            for label, x, y in spec.points:
                ax.plot(
                    [x], [y], marker="X", markersize=9, color="tab:red", linestyle="", label=label
                )
            ax.set_title(spec.title)
            ax.set_xlabel(spec.xlabel)
            ax.set_ylabel(spec.ylabel)
            if spec.xlim:
                ax.set_xlim(*spec.xlim)
            if spec.ylim:
                ax.set_ylim(*spec.ylim)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        mpl.close(fig)
    return path

"""ctrl+s on a screen: its chart as a PNG, written in a worker thread (matplotlib is slow to
import), and a notification that says where it went."""

from __future__ import annotations

import time
from pathlib import Path

from textual.screen import Screen

from tui.widgets.chart_png import PNG_HINT, ChartSpec, png_available, write_chart_png
from tui.widgets.text import toast_path


def chart_path(run_dir: str, name: str) -> Path:
    """Inside the run's folder when there is one (kept with the run), else under charts/."""
    if run_dir:
        return Path(run_dir) / f"{name}.png"
    return Path("charts") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.png"


def save_chart(screen: Screen, specs: list[ChartSpec], path: Path) -> None:
    if not any(series for spec in specs for _, series, _ in spec.series):
        screen.notify("nothing to save yet: the chart is empty", severity="warning")
        return
    if not png_available():
        screen.notify(PNG_HINT, severity="warning", markup=False)  # `[png]` is not a style
        return

    app = screen.app  # the worker thread has no active app of its own

    def write() -> None:
        try:
            written = write_chart_png(path, specs)
        except OSError as exc:
            app.call_from_thread(
                screen.notify,
                f"cannot write {toast_path(path)}: {exc.strerror or exc}",
                severity="error",
            )
            return
        app.call_from_thread(screen.notify, f"chart saved to {toast_path(written)}", timeout=8)

    screen.notify(f"saving the chart to {toast_path(path)}…", timeout=2)
    screen.run_worker(write, thread=True, group="png", exit_on_error=False)

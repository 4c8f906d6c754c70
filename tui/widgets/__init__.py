"""Widgets of the Textual app: a form built from a config dataclass, charts, a progress panel."""

from tui.widgets.charts import AccuracyChart, CurvePoint, LossChart, OverlayChart, SweepChart
from tui.widgets.config_form import ConfigForm
from tui.widgets.progress import ProgressPanel

__all__ = [
    "AccuracyChart",
    "ConfigForm",
    "CurvePoint",
    "LossChart",
    "OverlayChart",
    "ProgressPanel",
    "SweepChart",
]

"""Screens of the Textual app: Train, Sweep, Runs, Help and the modal dialogs."""

from tui.screens.dialogs import ConfirmDialog, ErrorDialog, MessageDialog, PickDialog
from tui.screens.export_dialog import ExportDialog
from tui.screens.help import HelpScreen
from tui.screens.runs import RunsScreen
from tui.screens.sweep import SweepScreen
from tui.screens.train import TrainScreen

__all__ = [
    "ConfirmDialog",
    "ErrorDialog",
    "ExportDialog",
    "HelpScreen",
    "MessageDialog",
    "PickDialog",
    "RunsScreen",
    "SweepScreen",
    "TrainScreen",
]

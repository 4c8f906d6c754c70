"""The export dialog (`e` on the Runs screen): level, format, output path, name and note.

Everything it checks is the engine's: the run's own export settings come from
engine.operations.export_config_from_run, and the values typed here are judged by
`ExportConfig.problems()`, so an invalid choice shows the reason the CLI prints, under the field
it is about (in the dialog's words: `method`, not `--method`).
"""

from __future__ import annotations

import dataclasses
import math

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from engine.export.config import ExportConfig, output_path, read_only_note
from engine.options import describe_allowed, field_meta
from tui.widgets.config_form import form_help, label_for
from tui.widgets.text import elide_middle

FIELDS = ("level", "format", "output", "name", "note")


class ExportDialog(ModalScreen[ExportConfig | None]):
    """Export a run's pruned model. `base` is the run's export (engine.operations); the dialog
    changes only FIELDS, and dismisses with the checked ExportConfig or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_name: str, base: ExportConfig, *, level_fixed: bool = False) -> None:
        super().__init__(classes="dialog-screen -export")
        self.run_name = run_name
        self.base = base
        self.level_fixed = level_fixed  # a fine-tuned model exports at its own level only
        self.formats = tuple(field_meta(ExportConfig, "format")["choices"])

    def compose(self) -> ComposeResult:
        base = self.base
        with Vertical(classes="dialog", id="export-dialog"):
            yield Label(f"Export a pruned model from {self.run_name}", classes="dialog-title")
            level = Input(f"{base.level:g}", id="export-level", compact=True)
            level.disabled = self.level_fixed
            yield from self._row("level", "level %", level)
            yield from self._row(
                "format",
                "format",
                Select(
                    [(f, f) for f in self.formats],
                    value=base.format,
                    allow_blank=False,
                    id="export-format",
                    compact=True,
                ),
            )
            yield from self._row(
                "output",
                "output",
                Input(base.output, placeholder="", id="export-output", compact=True),
            )
            yield from self._row("name", "name", Input(base.name, id="export-name", compact=True))
            yield from self._row("note", "note", Input(base.note, id="export-note", compact=True))
            yield Static("", classes="field-error", id="export-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export", id="export", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def _row(self, field: str, label: str, control) -> ComposeResult:
        with Vertical(classes="field", id=f"export-row-{field}"):
            with Horizontal(classes="field-line"):
                yield Label(label, classes="field-label")
                yield control
            yield Static("", classes="field-error", id=f"export-error-{field}")

    def on_mount(self) -> None:
        self._show_default_output()
        # Enter in an input exports; in the format dropdown it would open the list
        target = "#export-output" if self.level_fixed else "#export-level"
        self.query_one(target).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("export-level", "export-output"):
            self._show_default_output()

    def on_select_changed(self, event: Select.Changed) -> None:
        self._show_default_output()

    def _show_default_output(self) -> None:
        """The output field's placeholder: where the file goes when it is left empty."""
        config = self._config()
        field = self.query_one("#export-output", Input)
        where = str(output_path(config)) if math.isfinite(config.level) else ""
        note = read_only_note(config)
        if note:
            where = f"read-only folder: into the export's run folder under {config.run_dir}"
        width = (field.size.width or 40) - 1
        field.placeholder = elide_middle(where, width) if where else ""

    def _config(self) -> ExportConfig:
        text = self.query_one("#export-level", Input).value.strip()
        try:
            level = float(text)
        except ValueError:
            level = math.nan
        return dataclasses.replace(
            self.base,
            level=level,
            format=str(self.query_one("#export-format", Select).value),
            output=self.query_one("#export-output", Input).value.strip(),
            name=self.query_one("#export-name", Input).value.strip(),
            note=self.query_one("#export-note", Input).value.strip(),
        )

    def problems(self) -> dict[str, str]:
        """Each field's problem in the dialog's words (engine rule, `--flag` -> `flag`)."""
        config = self._config()
        labels = {label_for(f.name) for f in dataclasses.fields(ExportConfig)}
        found: dict[str, str] = {}
        for problem in config.problems():
            message = form_help(problem.message, labels)
            if problem.field == "level" and not math.isfinite(config.level):
                allowed = describe_allowed(field_meta(ExportConfig, "level"))
                text = self.query_one("#export-level", Input).value.strip()
                message = f"{text!r} is not a level; give a percent {allowed}"
            key = problem.field if problem.field in FIELDS else "general"
            found.setdefault(key, message)
        return found

    def _submit(self) -> None:
        found = self.problems()
        for field in FIELDS:
            row = self.query_one(f"#export-row-{field}")
            row.set_class(field in found, "-invalid")
            self.query_one(f"#export-error-{field}", Static).update(found.get(field, ""))
        general = found.get("general", "")
        self.query_one("#export-error", Static).update(general)
        self.query_one("#export-error", Static).set_class(bool(general), "-invalid")
        if found:
            self.app.bell()
            return
        self.dismiss(self._config())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "export":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

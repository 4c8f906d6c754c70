"""A form built from a config dataclass: one row per field, validated by the engine.

The fields, their order, defaults, help texts, choices and limits all come from the dataclass
(`engine.config`); this widget only chooses a control per field (choices -> Select, bool ->
Checkbox, anything else -> Input), collects the values, builds the config and shows each
`ConfigError.message` from `problems()` under its field. Nothing here knows a limit itself.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import fields
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Blur, Focus
from textual.geometry import Size
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static
from textual.widgets.select import InvalidSelectValueError

from engine.errors import ConfigError
from engine.models.spec import model_suggestions
from engine.options import describe_allowed, format_levels, parse_levels
from tui.widgets.text import elide_middle

PATH_FIELDS = ("checkpoint", "init")
PATH_PLACEHOLDER = "type the file's path"


def label_for(name: str) -> str:
    """The label of a field: its CLI option name (`batch_size` -> `batch-size`)."""
    return name.replace("_", "-")


_CLI_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")


def form_help(text: str, field_names: set[str]) -> str:
    """A help text in the form's words: `drawn with --seed` -> `drawn with seed`, for the
    fields of this form (a flag the form does not have keeps its CLI spelling)."""
    return _CLI_FLAG.sub(lambda m: m.group(1) if m.group(1) in field_names else m.group(0), text)


def _parse(text: str, type_name: str) -> Any:
    """Text from an Input to the field's type; left as text when it does not parse, so the
    engine's `problems()` reports it with its own message."""
    if type_name not in ("int", "float"):
        return text.strip()
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    if type_name == "int" and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return format_levels(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _show_end(control: Input) -> None:
    """Scroll a long value to its end (a path's file name); the cursor moves there too."""
    control.cursor_position = 0  # a change of position is what scrolls the view
    control.action_end()
    if isinstance(control, PathInput) and not control.has_focus:
        control.scroll_to(x=0, animate=False)  # it shows its elided text from column 0


class PathInput(Input):
    """A path field that, while another field has the focus, shows a path too long for it with
    its middle elided (`checkpoints/…resnet20_ckpt_epoch2.pth`): the start and the file name,
    never a name cut mid-word at the front. With the focus it is a plain input."""

    @property
    def _value(self) -> Text:
        width = self.scrollable_content_region.width
        if self.has_focus or not width or len(self.value) < width:
            return super()._value
        return Text(elide_middle(self.value, width - 1), no_wrap=True, end="")

    def _on_blur(self, event: Blur) -> None:
        super()._on_blur(event)
        self.call_after_refresh(self._fit)

    def _on_focus(self, event: Focus) -> None:
        super()._on_focus(event)
        self.call_after_refresh(self._fit)  # `has_focus` is set once the event is handled

    def _fit(self) -> None:
        """The width of what is shown now: the whole path (its end in view) or the elided one."""
        self.virtual_size = Size(self.content_width, 1)
        _show_end(self)


class Flag(Checkbox):
    """A compact checkbox that reads without colour: `[X] on` / `[ ] off`."""

    def __init__(self, value: bool, *, id: str | None = None) -> None:
        super().__init__("on" if value else "off", value=value, compact=True, id=id)
        self.BUTTON_INNER = "X" if value else " "

    def watch_value(self) -> None:
        self.BUTTON_INNER = "X" if self.value else " "
        self.label = "on" if self.value else "off"
        super().watch_value()


class FieldRow(Vertical):
    """Label + control on one line, the field's problem (if any) below."""

    def __init__(self, name: str, control: Widget, help_text: str) -> None:
        # a path gets the whole width under its label: its end is what tells files apart
        path = name in PATH_FIELDS or name.endswith("_dir")
        super().__init__(id=f"row-{name}", classes="field -path" if path else "field")
        self.field_name = name
        self.control = control
        self.help_text = help_text

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-line"):
            yield Label(label_for(self.field_name), classes="field-label")
            yield self.control
        yield Static("", classes="field-error", id=f"error-{self.field_name}")

    def set_problem(self, message: str) -> None:
        error = self.query_one(".field-error", Static)
        error.update(message)
        self.set_class(bool(message), "-invalid")


class ConfigForm(Vertical):
    """Rows for the fields of `config_cls`, grouped by each field's metadata `group`."""

    class Changed(Message):
        """A control changed; `config` is None while `problems` is not empty."""

        def __init__(self, form: ConfigForm, config: Any, problems: list[ConfigError]) -> None:
            super().__init__()
            self.form = form
            self.config = config
            self.problems = problems

        @property
        def control(self) -> ConfigForm:
            return self.form

    def __init__(
        self,
        config_cls: type,
        values: dict[str, Any] | None = None,
        *,
        groups: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        choices: dict[str, list[str]] | None = None,
        suggestions: dict[str, list[str]] | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.config_cls = config_cls
        self._fields = {f.name: f for f in fields(config_cls) if f.name not in exclude}
        self._initial = {name: f.default for name, f in self._fields.items()}
        self._initial.update(values or {})
        self._choices = choices or {}
        self._suggestions = suggestions or {}
        present = []
        for f in self._fields.values():
            group = f.metadata.get("group", "") or "Other"
            if group not in present:
                present.append(group)
        self._groups = [g for g in groups if g in present] + [g for g in present if g not in groups]
        self.config: Any = None
        self.problems: list[ConfigError] = []
        self._ready = False

    # -- building -----------------------------------------------------------------------------

    def _help(self, name: str) -> str:
        labels = {label_for(n) for n in self._fields}
        return form_help(self._fields[name].metadata.get("help", ""), labels)

    def _control(self, name: str) -> Widget:
        f = self._fields[name]
        meta = f.metadata
        value = self._initial[name]
        help_text = self._help(name)
        allowed = describe_allowed(meta)
        tooltip = f"{help_text} ({allowed})" if allowed else help_text
        choices = self._choices.get(name) or meta.get("choices")
        control: Widget
        if choices:
            options = list(choices)
            if value not in options:
                options.append(value)
            control = Select(
                [(str(c), c) for c in options],
                value=value,
                allow_blank=False,
                compact=True,
                id=f"f-{name}",
            )
        elif f.type == "bool" or isinstance(value, bool):
            control = Flag(bool(value), id=f"f-{name}")
        else:
            suggester = None
            if name in self._suggestions:
                suggester = SuggestFromList(self._suggestions[name], case_sensitive=True)
            elif name == "model":  # the shipped names and tv:NAME of every torchvision model
                suggester = SuggestFromList(model_suggestions(), case_sensitive=True)
            kind = PathInput if name in PATH_FIELDS or name.endswith("_dir") else Input
            control = kind(
                _show(value),
                # an empty path field is otherwise a blank line: say what goes there
                placeholder=PATH_PLACEHOLDER if name in PATH_FIELDS else "",
                compact=True,
                id=f"f-{name}",
                suggester=suggester,
                select_on_focus=False,
            )
        control.tooltip = tooltip
        return control

    def compose(self) -> ComposeResult:
        yield Static("", id="form-general", classes="field-error")
        for group in self._groups:
            yield Label(group, classes="form-group")
            for name, f in self._fields.items():
                if (f.metadata.get("group", "") or "Other") == group:
                    yield FieldRow(name, self._control(name), self._help(name))

    def on_mount(self) -> None:
        self._ready = True
        self.revalidate()
        self.call_after_refresh(self._show_ends)

    def _show_ends(self) -> None:
        for control in self.query(Input):
            _show_end(control)

    # -- values --------------------------------------------------------------------------------

    def raw_values(self) -> dict[str, Any]:
        """The current value of every field, typed where the text parses."""
        values: dict[str, Any] = {}
        for name, f in self._fields.items():
            control = self.query_one(f"#f-{name}")
            if isinstance(control, Select):
                value = control.value
                values[name] = "" if value is Select.NULL else value
            elif isinstance(control, Checkbox):
                values[name] = control.value
            elif isinstance(control, Input):
                values[name] = _parse(control.value, f.type)
        return values

    def build(self) -> tuple[Any, list[ConfigError]]:
        """The config from the form and its problems, exactly as the engine judges them."""
        values = self.raw_values()
        try:
            config = self.config_cls(**values)
            problems = list(config.problems())
        except (TypeError, ValueError) as exc:  # a value the dataclass itself refuses
            return None, [ConfigError("", str(exc))]
        if problems:
            return None, problems
        if "levels" in self._fields and isinstance(config.levels, str):
            config.levels = parse_levels(config.levels)
        return config, []

    def set_values(self, values: dict[str, Any]) -> None:
        """Put values into the controls (e.g. a checkpoint's config); unknown names are ignored."""
        for name, value in values.items():
            if name not in self._fields:
                continue
            control = self.query_one(f"#f-{name}")
            if isinstance(control, Select):
                with contextlib.suppress(InvalidSelectValueError):  # e.g. a GPU not seen here
                    control.value = value
            elif isinstance(control, Checkbox):
                control.value = bool(value)
            elif isinstance(control, Input):
                control.value = _show(tuple(value) if isinstance(value, list) else value)
                _show_end(control)
        self.revalidate()

    def set_suggestions(self, name: str, suggestions: list[str]) -> None:
        control = self.query_one(f"#f-{name}", Input)
        control.suggester = SuggestFromList(suggestions, case_sensitive=True)

    def help_for(self, widget: Widget | None, *, full: bool = False) -> str:
        """The help of the field whose control is `widget` ("" for anything else); `full`
        adds the default and the CLI spelling, for F1."""
        for row in self.query(FieldRow):
            if row.control is widget:
                f = self._fields[row.field_name]
                allowed = describe_allowed(f.metadata)
                text = f"{label_for(row.field_name)}: {row.help_text}"
                text = f"{text} ({allowed})" if allowed else text
                if full:
                    default = _show(f.default) if f.default != "" else "empty"
                    text += (
                        f"\n\ndefault: {default}\n"
                        f"command line: prunelab … --{label_for(row.field_name)}"
                    )
                    if row.control.has_class("-invalid") or row.has_class("-invalid"):
                        problem = str(row.query_one(".field-error", Static).render())
                        text += f"\n\nnow: {problem}"
                return text
        return ""

    def field_kinds(self) -> dict[str, bool]:
        """Each field's label (its CLI spelling) and whether it is an on/off flag."""
        return {
            label_for(name): f.type == "bool" or isinstance(self._initial[name], bool)
            for name, f in self._fields.items()
        }

    def first_problem(self) -> str:
        """The first problem as one line naming its field (what F5 on a bad form says)."""
        if not self.problems:
            return ""
        problem = self.problems[0]
        more = len(self.problems) - 1
        message = form_help(problem.message, set(self.field_kinds()))
        text = f"{label_for(problem.field)}: {message}" if problem.field else message
        return text + (f" (and {more} more marked in red)" if more else "")

    def focus_first_problem(self) -> None:
        for problem in self.problems:
            if problem.field in self._fields:
                self.query_one(f"#f-{problem.field}").focus()
                return

    # -- validation ----------------------------------------------------------------------------

    def revalidate(self) -> None:
        if not self._ready:
            return
        self.config, self.problems = self.build()
        by_field: dict[str, list[str]] = {}
        labels = set(self.field_kinds())
        for problem in self.problems:
            # the engine's rule in the form's words: `--prune-start` -> `prune-start`
            by_field.setdefault(problem.field, []).append(form_help(problem.message, labels))
        for row in self.query(FieldRow):
            row.set_problem("; ".join(by_field.pop(row.field_name, [])))
        leftover = [
            f"{label_for(k)}: {'; '.join(v)}" if k else "; ".join(v) for k, v in by_field.items()
        ]
        general = self.query_one("#form-general", Static)
        general.update("\n".join(leftover))
        general.set_class(bool(leftover), "-invalid")
        self.post_message(self.Changed(self, self.config, self.problems))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.revalidate()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.revalidate()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self.revalidate()

"""What the Train and Sweep screens share: a config form beside a live panel, Start/Stop and a
picker button, and the state a job shows (status, headline, progress) fed by engine events.

A subclass names its job and picker, builds its form and live panel, starts its job, and handles
the events only it knows; run started / notice / run finished are handled here.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import DescendantFocus
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Header, Input, Select, Static, TextArea

from engine.events import Event, Notice, RunFinished, RunStarted
from tui.formatting import is_jpeg
from tui.screens.common import WIDE
from tui.widgets.config_form import ConfigForm
from tui.widgets.progress import ProgressPanel


def is_typing(widget: Widget | None) -> bool:
    """`widget` takes letters as text: an input, a text area or (part of) a dropdown."""
    if widget is None:
        return False
    return isinstance(widget, (Input, TextArea, Select)) or any(
        isinstance(node, Select) for node in widget.ancestors
    )


def job_bindings(pick: Binding) -> list[Binding]:
    """F5 start, F6 stop, the screen's picker, ^f form: in this order in the footer."""
    return [
        Binding("f5", "start", "Start"),
        Binding("f6", "stop", "Stop"),
        pick,
        Binding("ctrl+f", "toggle_form", "Form", show=False),  # 80 columns: F7 goes first
    ]


class JobScreen(Screen):
    """A screen that runs one kind of job (`JOB`, as the app's `job` names it)."""

    JOB = ""
    JOBS: tuple[str, ...] = ()  # the app's jobs this screen shows (JOB and any others)
    TITLE_TEXT = ""  # the screen's sub-title
    PICK_ACTION = ""  # the picker's action (without `action_`) ...
    PICK_BUTTON = ""  # ... its button's id ...
    PICK_LABEL = ""  # ... and label
    STOPPING_TEXT = ""
    IDLE_HEADLINE = ""
    HINT = "Tab: next field · F5: start · F1: help on a field · ^f: hide the form"
    LETTER_ACTIONS: frozenset[str] = frozenset()  # bound to letters: off while typing

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.JOB and cls.JOB not in cls.JOBS:
            cls.JOBS = (cls.JOB, *cls.JOBS)

    def __init__(
        self,
        values: dict[str, Any],
        *,
        devices: list[str],
        checkpoint_dir: str,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name, id=f"{self.JOB}-screen")
        self.initial_values = values
        self.devices = devices
        self.checkpoint_dir = checkpoint_dir
        self.valid = False
        self.form_hidden = False
        self.ready = False  # True once composed and mounted: widgets can be updated
        # what the screen shows; kept here so it can be redrawn at any time
        self.config: Any = None
        self.status = "idle"
        self.headline = self.IDLE_HEADLINE
        self.progress_text = ""
        self.fraction: float | None = None
        self.run_dir = ""

    # -- layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="body"):
            with Vertical(classes="side", id=f"{self.JOB}-side"):
                with Horizontal(classes="buttons"):
                    yield Button("Start F5", id="start", variant="success", compact=True)
                    yield Button("Stop F6", id="stop", variant="error", compact=True)
                    yield Button(self.PICK_LABEL, id=self.PICK_BUTTON, compact=True)
                yield from self.compose_above_form()
                with VerticalScroll(classes="form-scroll"):
                    yield self.make_form()
                yield Static(self.HINT, classes="hint", id=f"{self.JOB}-hint")
            with Vertical(classes="live", id=f"{self.JOB}-live"):
                yield from self.compose_live()
        yield Footer(compact=True)

    def compose_above_form(self) -> ComposeResult:
        """Widgets between the buttons and the form (none by default)."""
        yield from ()

    def make_form(self) -> ConfigForm:
        raise NotImplementedError

    def compose_live(self) -> ComposeResult:
        raise NotImplementedError

    def on_mount(self) -> None:
        self.ready = True
        self.sub_title = self.TITLE_TEXT
        self._redraw_all()
        self._update_buttons()

    def on_screen_resume(self) -> None:
        self._update_buttons()
        self.app.refresh_bindings()

    @property
    def form(self) -> ConfigForm:
        return self.query_one(f"#{self.JOB}-form", ConfigForm)

    # -- actions ---------------------------------------------------------------------------------

    def typing(self) -> bool:
        """Whether the focus is in a text field or a dropdown: its letters are text, not keys."""
        return is_typing(self.focused)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.LETTER_ACTIONS and self.typing():
            return False
        return self.offers(action)

    def offers(self, action: str) -> bool | None:
        """Whether `action` makes sense now, wherever the focus is (the palette asks this)."""
        job = getattr(self.app, "job", None)
        if action == "start":
            # offered whenever this screen is not running: F5 on a bad form says what to fix
            return job not in self.JOBS
        if action == "stop":
            return job in self.JOBS
        if action == self.PICK_ACTION:
            return None if job in self.JOBS else True
        return True

    def action_start(self) -> None:
        job = getattr(self.app, "job", None)
        if job is not None:
            self.app.bell()
            what = "this" if job in self.JOBS else f"the {job}"
            self.notify(f"{what} job is running: wait for it or stop it (F6)", severity="warning")
            return
        config = self.form.config
        if config is None or not self.valid:
            self.app.bell()
            self.notify(self.form.first_problem(), title="Cannot start", severity="warning")
            self.form.focus_first_problem()
            return
        self.start(config)

    def start(self, config: Any) -> None:
        """Ask the app to run the job with `config`."""
        raise NotImplementedError

    def action_stop(self) -> None:
        self.app.action_stop_job()

    def action_toggle_chart(self) -> None:
        """The charts on the whole screen (form, tables and sentence hidden), and back."""
        self.set_class(not self.has_class("-chart-full"), "-chart-full")

    def action_toggle_form(self) -> None:
        self.form_hidden = not self.form_hidden
        self.set_class(self.form_hidden, "-form-hidden")

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#stop")
    def _stop_pressed(self) -> None:
        self.action_stop()

    @on(ConfigForm.Changed)
    def _form_changed(self, event: ConfigForm.Changed) -> None:
        self.valid = not event.problems
        self._update_buttons()
        self.app.refresh_bindings()
        self._values_changed()

    def _values_changed(self) -> None:
        """A form value changed (a subclass reacts to the fields it cares about)."""

    def field_help(self) -> str:
        """The focused field's full help (F1), or "" when no field has the focus."""
        return self.form.help_for(self.app.focused, full=True) if self.ready else ""

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        text = self.form.help_for(event.widget) if self.ready else ""
        if text:
            self.query_one(f"#{self.JOB}-hint", Static).update(text)

    def _update_buttons(self) -> None:
        if not self.ready:
            return
        job = getattr(self.app, "job", None)
        self.query_one("#start", Button).disabled = not (self.valid and job is None)
        self.query_one("#stop", Button).disabled = job not in self.JOBS
        self.query_one(f"#{self.PICK_BUTTON}", Button).disabled = job in self.JOBS
        # the form is what the running job was started with: locked until it ends
        self.form.disabled = job in self.JOBS
        self.query_one(f"#{self.JOB}-hint", Static).update(
            "the form is locked while this job runs (F6 stops it)"
            if job in self.JOBS
            else self.HINT
        )

    # -- engine events -----------------------------------------------------------------------------

    def _begin(self, config: Any, headline: str, progress: str) -> None:
        """A job is about to start (the subclass has cleared its own state): show it."""
        self.config = config
        self.status = "starting"
        self.headline = headline
        self.progress_text = progress
        self.fraction = None
        self.run_dir = ""
        if self.ready:
            if self.app.size.width < WIDE and not self.form_hidden:
                self.action_toggle_form()
            self._redraw_all()
            self._update_buttons()

    def apply(self, event: Event) -> None:
        """Record one engine event and show it."""
        if isinstance(event, RunStarted):
            self.status = "running"
            self.run_dir = event.run_dir
            synthetic = " · SYNTHETIC data" if event.synthetic else ""
            synthetic = synthetic or (" · JPEG" if is_jpeg(event.data) else "")
            self.headline = (
                f"{event.model} · {event.parameters:,} params · {event.device}{synthetic}"
            )
            self._run_started(event)
            self._show_progress()
        elif isinstance(event, Notice):
            self.notify(
                event.text, severity="warning" if event.level == "warning" else "information"
            )
        elif isinstance(event, RunFinished):
            self.status = event.status
            if event.reason:
                self.headline = event.reason
            self._show_progress()
        else:
            self._apply(event)

    def _run_started(self, event: RunStarted) -> None:
        """Anything more a subclass does when the run has started."""

    def _apply(self, event: Event) -> None:
        """The events only this screen's job sends."""

    def finish(self, result: Any = None, error: str | None = None) -> None:
        """The worker returned or failed."""
        if error is not None:
            self.status = "failed"
            self.headline = error
            self.progress_text = "nothing running: change the field the message names, then F5"
            self.fraction = None
        elif result is not None:
            self.status = result.status
            self._take_result(result)
        if self.ready:
            self._show_finished()
            self._update_buttons()

    def _take_result(self, result: Any) -> None:
        """Record what the job returned."""

    def _show_finished(self) -> None:
        self._show_progress()

    def set_stopping(self) -> None:
        self.status = "stopping"
        self.progress_text = self.STOPPING_TEXT
        self._show_progress()

    # -- drawing -------------------------------------------------------------------------------

    def _detail(self) -> list[str]:
        """The parts of the progress panel's detail line."""
        return [f"run {self.run_dir}"] if self.run_dir else []

    def _show_progress(self) -> None:
        if not self.ready:
            return
        self.query_one(ProgressPanel).set(
            status=self.status,
            headline=self.headline,
            fraction=self.fraction,
            progress=self.progress_text,
            detail=" · ".join(self._detail()),
        )

    def _redraw_all(self) -> None:
        raise NotImplementedError

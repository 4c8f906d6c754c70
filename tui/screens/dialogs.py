"""Modal dialogs: an error or info message, a yes/no question, a checkpoint picker, export."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui.safe import markup


class MessageDialog(ModalScreen[None]):
    """A titled message; Enter or Esc closes it. `kind` is "error" or "info"."""

    BINDINGS = [
        Binding("escape,enter", "close", "Close"),
        Binding("f1", "app.field_help", "Help", show=False),
    ]

    def __init__(self, title: str, message: str, *, kind: str = "error") -> None:
        super().__init__(classes=f"dialog-screen -{kind}")
        self.title_text = title
        self.message = message
        self.kind = kind

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="message-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            body = markup(self.message, one_line=False)  # a reason or a path: text, not markup
            yield Static(body, classes="dialog-body", id="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", id="ok", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class ErrorDialog(MessageDialog):
    """A failure: the one-line reason and its fix."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(title, message, kind="error")


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question: y or Enter on the first button says yes, n or Esc says no."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, question: str, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__(classes="dialog-screen -confirm")
        self.title_text = title
        self.question = question
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.question, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="warning", compact=True)
                yield Button(f"{self.no} (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PickDialog(ModalScreen[str | None]):
    """Choose one of `choices` (value, description), e.g. a checkpoint; Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]], *, empty: str = "") -> None:
        super().__init__(classes="dialog-screen -pick")
        self.title_text = title
        self.choices = choices
        self.empty = empty

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="pick-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.choices:
                yield OptionList(
                    *[Option(description, id=value) for value, description in self.choices],
                    id="pick-list",
                )
            else:
                yield Static(self.empty, classes="dialog-body")
            yield Static("Enter picks · Esc cancels", classes="dialog-hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)

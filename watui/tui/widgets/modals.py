"""Small modal dialogs: a yes/no confirmation and a one-line prompt with validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from watui.rules import rate_problem
from watui.tui.widgets.text_input import TextInput

T = TypeVar("T")

MODAL_CSS = """
ConfirmModal, PromptModal { align: center middle; }
ConfirmModal > Vertical, PromptModal > Vertical {
    width: 60; max-width: 95%; height: auto; padding: 1 2;
    border: thick $primary; background: $surface;
}
.modal-title { text-style: bold; margin-bottom: 1; }
.modal-buttons { height: auto; margin-top: 1; align-horizontal: right; }
.modal-buttons Button { margin-left: 2; }
PromptModal .field-error { color: $error; height: auto; }
"""


class ConfirmModal(ModalScreen[bool]):
    """Ask before something that cannot be undone; y/enter confirms, n/escape declines."""

    DEFAULT_CSS = MODAL_CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, message: str, confirm_label: str = "Yes") -> None:
        super().__init__()
        self._title = title
        self._message = message
        self._confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, classes="modal-title")
            yield Static(self._message)
            with Horizontal(classes="modal-buttons"):
                yield Button("No", id="no")
                yield Button(self._confirm_label, id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class FormModal(ModalScreen[T | None], Generic[T]):
    """A modal form: enter or OK submits (``_submit`` dismisses with the value, or shows what
    to fix), escape or Cancel answers None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def on_input_submitted(self) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _submit(self) -> None:
        raise NotImplementedError


class PromptModal(FormModal[T]):
    """Ask for one value; ``parse`` turns the text into a value or raises ValueError(reason)."""

    DEFAULT_CSS = MODAL_CSS

    def __init__(
        self, title: str, label: str, value: str, parse: Callable[[str], T], ok_label: str = "OK"
    ) -> None:
        super().__init__()
        self._title = title
        self._label = label
        self._value = value
        self._parse = parse
        self._ok_label = ok_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, classes="modal-title")
            yield Label(self._label)
            yield TextInput(self._value, id="prompt-input", select_on_focus=True)
            yield Static("", id="prompt-error", classes="field-error")
            with Horizontal(classes="modal-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self._ok_label, id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def reset(self, value: str) -> None:
        """Show ``value`` again with no error, for a prompt that is kept and reopened."""
        self._value = value
        if self.is_mounted:
            field = self.query_one(Input)
            field.value = value
            field.select_all()
            self.query_one("#prompt-error", Static).update("")

    def _submit(self) -> None:
        try:
            value = self._parse(self.query_one(Input).value.strip())
        except ValueError as error:
            self.query_one("#prompt-error", Static).update(str(error))
            return
        self.dismiss(value)


def parse_rate(text: str) -> float:
    """A send rate in msg/s, in the range every front end accepts (``rules.rate_problem``)."""
    try:
        rate = float(text)
    except ValueError:
        raise ValueError("enter a number of messages per second, e.g. 80") from None
    problem = rate_problem(rate)
    if problem is not None:
        raise ValueError(problem.message)
    return rate


def parse_export_path(text: str) -> Path:
    """A file to export to, in a folder that exists (the retry queue's and the report's)."""
    if not text:
        raise ValueError("enter a file name, e.g. retry-queue.csv")
    path = Path(text).expanduser()
    if not path.parent.is_dir():
        raise ValueError(f"no folder {path.parent}")
    return path

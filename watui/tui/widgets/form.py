"""A labelled form field that shows its own error beside the input, never as a crash."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label, Static


class FormField(Horizontal):
    """``Label | widget`` with an error line (red) and a hint line (muted) under the widget."""

    DEFAULT_CSS = """
    FormField { height: auto; margin-top: 1; }
    FormField.-dense { margin-top: 0; }
    FormField > .field-label { width: 18; color: $text; }
    FormField > .field-body { height: auto; width: 1fr; }
    FormField .field-error { color: $error; height: auto; }
    FormField .field-hint { color: $text-muted; height: auto; }
    """

    def __init__(self, label: str, *widgets: Widget, hint: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self._label = label
        self._widgets = widgets
        self._hint = hint

    def compose(self) -> ComposeResult:
        yield Label(self._label, classes="field-label")
        with Vertical(classes="field-body"):
            if len(self._widgets) == 1:
                yield self._widgets[0]
            else:
                with Horizontal(classes="field-row"):
                    yield from self._widgets
            error = Static("", classes="field-error", markup=False)
            error.display = False
            yield error
            hint = Static(self._hint, classes="field-hint", markup=False)
            hint.display = bool(self._hint)
            yield hint

    def set_error(self, message: str | None) -> None:
        error = self.query_one(".field-error", Static)
        error.update(f"✖ {message}" if message else "")
        error.display = bool(message)
        self.set_class(bool(message), "-invalid")

    def set_hint(self, hint: str) -> None:
        hint_widget = self.query_one(".field-hint", Static)
        hint_widget.update(hint)
        hint_widget.display = bool(hint)

    @property
    def error(self) -> str:
        return str(self.query_one(".field-error", Static).content)

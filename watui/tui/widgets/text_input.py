"""A text field whose editing keys take effect in the order they were typed."""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class TextInput(Input):
    """Textual's Input, but backspace, arrows, enter and its other bound keys run at once.

    Input inserts printable characters in its own key handler but leaves its bound keys to
    bubble up to the app, which runs them one message later. In a fast burst (typing over a
    laggy SSH link, a paste without bracketed paste, a key macro) the characters after a
    backspace then land before it: Backspace, 5, 1 turned "80" into "5" instead of "51"
    (textual#6605). Running the field's own bindings inline keeps the order.
    """

    async def _on_key(self, event: events.Key) -> None:
        if not event.is_printable and await self._run_own_binding(event.key):
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)

    async def _run_own_binding(self, key: str) -> bool:
        for binding in self._bindings.key_to_bindings.get(key, ()):
            if not binding.priority and await self.app.run_action(binding.action, self):
                return True
        return False

"""A one-line key bar in place of Textual's Footer, drawn as one line of text.

Textual's Footer mounts one widget per key and recomposes them all whenever the screen's
bindings signal fires (every screen change, every focus change): about a tenth of the CPU of
opening a screen. This bar shows the same keys, coloured the same way, as a single ``Text``
that is rebuilt only when the visible keys really change. Clicking a key presses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.screen import Screen

#: (key, shown key, description, enabled) for each key on the bar, in order.
KeyEntry = tuple[str, str, str, bool]


class KeyBar(Widget):
    """The active screen's shown bindings on the bottom line; the palette key on the right."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"keybar--key", "keybar--description", "keybar--palette"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
    }
    KeyBar > .keybar--key {
        color: $footer-key-foreground;
        background: $footer-key-background;
        text-style: bold;
    }
    KeyBar > .keybar--description {
        color: $footer-description-foreground;
        background: $footer-description-background;
    }
    KeyBar > .keybar--palette { color: $foreground 20%; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._keys: tuple[KeyEntry, ...] = ()
        self._palette: KeyEntry | None = None
        #: (first column, last column + 1, key) of each key drawn, for clicks.
        self._spans: list[tuple[int, int, str]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if screen is not self.screen:
            return
        keys, palette = self._read_keys()
        if (keys, palette) != (self._keys, self._palette):
            self._keys, self._palette = keys, palette
            self.refresh()

    def _read_keys(self) -> tuple[tuple[KeyEntry, ...], KeyEntry | None]:
        """The shown bindings, one per action (the first key bound to it), like the Footer."""
        active = self.screen.active_bindings
        palette_key = self.app.COMMAND_PALETTE_BINDING
        seen: set[str] = set()
        keys: list[KeyEntry] = []
        for key, (_node, binding, enabled, _tooltip) in active.items():
            if not binding.show or binding.action in seen or key == palette_key:
                continue
            seen.add(binding.action)
            keys.append((binding.key, self.app.get_key_display(binding), binding.description,
                         enabled))
        palette: KeyEntry | None = None
        if self.app.ENABLE_COMMAND_PALETTE and palette_key in active:
            _node, binding, enabled, _tooltip = active[palette_key]
            palette = (binding.key, self.app.get_key_display(binding), binding.description,
                       enabled)
        return tuple(keys), palette

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key")
        description_style = self.get_component_rich_style("keybar--description")
        line = Text(no_wrap=True, overflow="crop", end="")
        self._spans = []
        for key, shown, description, enabled in self._keys:
            start = line.cell_len
            line.append(f" {shown} ", key_style)
            line.append(f"{description} ", description_style)
            if not enabled:
                line.stylize("dim", start)
            self._spans.append((start, line.cell_len, key))
        if self._palette is not None:
            key, shown, description, _enabled = self._palette
            right = Text.assemble(
                ("▏", self.get_component_rich_style("keybar--palette")),
                (shown, key_style),
                (f" {description} ", description_style),
            )
            # Like the Footer, the palette key always shows: the keys on the left are cut.
            room = max(self.size.width - right.cell_len, 0)
            line.truncate(room, pad=True)
            self._spans = [span for span in self._spans if span[1] <= room]
            self._spans.append((room, room + right.cell_len, key))
            line.append_text(right)
        return line

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key.split(",")[0].strip())
                return

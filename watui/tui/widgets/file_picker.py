"""A modal file picker over Textual's DirectoryTree, showing folders and contact files only."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Label, Static

CONTACT_SUFFIXES = {".csv", ".txt", ".tsv"}


class ContactsTree(DirectoryTree):
    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            path
            for path in paths
            if not path.name.startswith(".")
            and (path.is_dir() or path.suffix.lower() in CONTACT_SUFFIXES)
        ]


class FilePickerModal(ModalScreen[Path | None]):
    """Enter picks a file; backspace goes up a folder; escape cancels."""

    DEFAULT_CSS = """
    FilePickerModal { align: center middle; }
    FilePickerModal > Vertical {
        width: 90%; max-width: 100; height: 90%; border: thick $primary; background: $surface;
        padding: 0 1;
    }
    FilePickerModal #picker-title { text-style: bold; }
    FilePickerModal #picker-root { color: $text-muted; }
    FilePickerModal ContactsTree { height: 1fr; }
    FilePickerModal Horizontal { height: auto; width: 100%; align-horizontal: right; }
    FilePickerModal Button { margin-left: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("backspace", "parent", "Up a folder"),
    ]

    def __init__(self, start: Path) -> None:
        super().__init__()
        self._start = start.resolve()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Choose the contacts file (CSV with a header row)", id="picker-title")
            yield Static(_shown(self._start), id="picker-root", markup=False)
            yield ContactsTree(self._start)
            with Horizontal():
                yield Button("Up a folder", id="parent")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(ContactsTree).focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(event.path)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "parent":
            self.action_parent()
        else:
            self.dismiss(None)

    def action_parent(self) -> None:
        tree = self.query_one(ContactsTree)
        parent = Path(tree.path).parent
        tree.path = parent
        self.query_one("#picker-root", Static).update(_shown(parent))

    def action_cancel(self) -> None:
        self.dismiss(None)


def _shown(path: Path) -> str:
    """The folder relative to the working directory when inside it (shorter, and stable)."""
    try:
        return f"./{path.relative_to(Path.cwd())}"
    except ValueError:
        return str(path)

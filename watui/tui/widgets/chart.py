"""A hand-drawn throughput chart: sent/s as a braille line against the target rate, small series
(failed/s, delivered/s, retried/s, throttled/s) as one-row bars on their own scale so they do not flatten.

Drawing costs a few milliseconds (no plotting library), and the widget's only interface is
``show(...)``, so it can be swapped for another chart without touching the screens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Span, Text
from textual.widget import Widget

_BRAILLE_BASE = 0x2800
# Bit of each dot in a braille cell, indexed [column][row from the top].
_DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
_SPARK = " ▁▂▃▄▅▆▇█"
_LABEL_WIDTH = 8


@dataclass(frozen=True, slots=True)
class SmallSeries:
    label: str
    values: Sequence[float]
    component: str  # the component class that colours it


class ThroughputChart(Widget):
    """Rolling per-second throughput, newest on the right; the series fills the width
    (two samples per column when there are enough, stretched when there are fewer)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "chart--sent",
        "chart--target",
        "chart--failed",
        "chart--retried",
        "chart--throttled",
        "chart--delivered",
        "chart--axis",
    }

    DEFAULT_CSS = """
    ThroughputChart { height: 12; }
    ThroughputChart > .chart--sent { color: $success; }
    ThroughputChart > .chart--target { color: $warning; }
    ThroughputChart > .chart--failed { color: $error; }
    ThroughputChart > .chart--retried { color: $accent; }
    ThroughputChart > .chart--throttled { color: $secondary; }
    ThroughputChart > .chart--delivered { color: $success 70%; }
    ThroughputChart > .chart--axis { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._sent: Sequence[float] = ()
        self._target: float | None = None
        self._small: tuple[SmallSeries, ...] = ()

    def show(
        self,
        sent: Sequence[float],
        target: float | None,
        failed: Sequence[float] = (),
        retried: Sequence[float] = (),
        throttled: Sequence[float] = (),
        delivered: Sequence[float] = (),
    ) -> None:
        """Replace the data and redraw (call it from the screen's refresh tick); the same data
        again (ticks are faster than the per-second series) costs no redraw."""
        if (sent, target) == (self._sent, self._target) and self._small and (
            (failed, delivered, retried, throttled)
            == tuple(series.values for series in self._small)
        ):
            return
        self._sent = sent
        self._target = target
        self._small = (
            SmallSeries("failed", failed, "chart--failed"),
            SmallSeries("deliv", delivered, "chart--delivered"),
            SmallSeries("retried", retried, "chart--retried"),
            SmallSeries("throttl", throttled, "chart--throttled"),
        )
        self.refresh()

    def render(self) -> Text:
        width, height = self.size
        plot_width = max(width - _LABEL_WIDTH, 1)
        # Fewer small series on a short chart, the least telling (throttled) first to go.
        small = self._small[: 4 if height >= 12 else 3 if height >= 9 else 2]
        plot_rows = max(height - len(small), 1)
        lines = self._render_main(plot_width, plot_rows)
        axis = self.get_component_rich_style("chart--axis")
        for series in small:
            lines.append(self._render_small(series, plot_width, axis))
        return Text("\n").join(lines[:height])

    def _render_main(self, plot_width: int, rows: int) -> list[Text]:
        axis = self.get_component_rich_style("chart--axis")
        sent_style = self.get_component_rich_style("chart--sent")
        target_style = self.get_component_rich_style("chart--target")
        samples = _last(self._sent, plot_width * 2)
        top = max([*samples, (self._target or 0) * 1.1, 1.0])
        dots_high = rows * 4
        sent_cells = _braille_line(samples, top, plot_width, rows)
        target_cells = _braille_level(self._target, top, plot_width, rows) if self._target else {}
        lines: list[Text] = []
        for row in range(rows):
            label = _axis_label(row, rows, top, dots_high)
            prefix = label.rjust(_LABEL_WIDTH - 1) + ("┤" if label else "│")
            cells: list[tuple[str, Style | None]] = []
            for column in range(plot_width):
                bits = sent_cells.get((row, column), 0)
                if bits:
                    cells.append((chr(_BRAILLE_BASE | bits), sent_style))
                elif target_bits := target_cells.get((row, column), 0):
                    cells.append((chr(_BRAILLE_BASE | target_bits), target_style))
                else:
                    cells.append((" ", None))
            lines.append(_cells_text(prefix, cells, axis))
        return lines

    def _render_small(self, series: SmallSeries, plot_width: int, axis: Style) -> Text:
        pairs = _last(series.values, plot_width * 2)
        columns = [max(pairs[i : i + 2], default=0.0) for i in range(0, len(pairs), 2)]
        peak = max(columns, default=0.0)
        line = Text(series.label[: _LABEL_WIDTH - 1].rjust(_LABEL_WIDTH - 1) + "│", style=axis)
        style = self.get_component_rich_style(series.component)
        bars = "".join(_spark(value, peak) for value in columns).rjust(plot_width)
        line.append(bars, style)
        return line


def _cells_text(prefix: str, cells: list[tuple[str, Style | None]], style: Style) -> Text:
    """``prefix`` then one character per cell, each styled cell its own span (as
    ``Text.append`` per cell made it, so the drawn segments stay the same), built at once: an
    append per cell was 1,800 calls and most of a redraw's 10-20 ms."""
    spans = [Span(offset, offset + 1, cell_style)
             for offset, (_char, cell_style) in enumerate(cells, len(prefix)) if cell_style]
    return Text(prefix + "".join(char for char, _style in cells), style=style, spans=spans)


def _last(values: Sequence[float], count: int) -> list[float]:
    """Exactly ``count`` samples: the newest ones, or all of them stretched to fill the width."""
    if len(values) >= count:
        return list(values[len(values) - count :])
    if not values:
        return []
    return [values[index * len(values) // count] for index in range(count)]


def _spark(value: float, peak: float) -> str:
    if value <= 0 or peak <= 0:
        return " "
    return _SPARK[max(1, round(value / peak * 8))]


def _dot_row(value: float, top: float, dots_high: int) -> int:
    """Dot row from the top (0) for a value on a 0..top scale."""
    level = round(min(max(value, 0.0), top) / top * (dots_high - 1))
    return dots_high - 1 - level


def _braille_line(
    samples: Sequence[float], top: float, plot_width: int, rows: int
) -> dict[tuple[int, int], int]:
    """Braille bits per (row, column) for a line through the samples, right-aligned."""
    dots_high = rows * 4
    cells: dict[tuple[int, int], int] = {}
    start = plot_width * 2 - len(samples)
    previous: int | None = None
    for index, value in enumerate(samples):
        x = start + index
        y = _dot_row(value, top, dots_high)
        low, high = (y, y) if previous is None else (min(y, previous), max(y, previous))
        for dot_y in range(low, high + 1):
            key = (dot_y // 4, x // 2)
            cells[key] = cells.get(key, 0) | _DOT_BITS[x % 2][dot_y % 4]
        previous = y
    return cells


def _braille_level(
    level: float, top: float, plot_width: int, rows: int
) -> dict[tuple[int, int], int]:
    """A dashed horizontal line at ``level``."""
    y = _dot_row(level, top, rows * 4)
    return {(y // 4, column): _DOT_BITS[0][y % 4] for column in range(plot_width)}


def _axis_label(row: int, rows: int, top: float, dots_high: int) -> str:
    """Value labels on the top, middle and bottom rows."""
    if row == 0:
        value = top
    elif row == rows - 1:
        value = 0.0
    elif rows >= 5 and row == rows // 2:
        value = top * (1 - (row * 4 + 1.5) / (dots_high - 1))
    else:
        return ""
    return f"{value:,.0f}"

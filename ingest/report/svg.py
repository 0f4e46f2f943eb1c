"""The report's plots, written as SVG by hand: bars, lines, histograms, on time or category axes.

matplotlib drew them before; importing and laying it out took 1.5 s of the 2 s a report of a
small store took (python -X importtime, cProfile: constrained layout, tick layout and the SVG
backend), and 7 to 12 s on a busy machine. These few chart types need none of that: each plot
is a list of shapes computed here, in a few milliseconds, with the same look as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from html import escape

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
WIDTH, HEIGHT = 560, 260
FONT = 11
CHAR = 6.2  # average width of a character at FONT px, for margins and legends

_TIME_STEPS = (
    [timedelta(minutes=m) for m in (1, 5, 10, 15, 30)]
    + [timedelta(hours=h) for h in (1, 2, 3, 6, 12)]
    + [timedelta(days=d) for d in (1, 2, 7, 14, 30, 91, 365)]
)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 times a power of ten) up to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _tick_label(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"


class Plot:
    """One chart: an x scale (time, categories or numbers), a y scale from 0, shapes, a legend."""

    def __init__(self, y_max: float, left_labels: Sequence[str] = (), y_label: str = ""):
        self.y_ticks = _nice_ticks(y_max)
        self.y_top = self.y_ticks[-1]
        widest = max([len(_tick_label(t)) for t in self.y_ticks] + [len(s) for s in left_labels])
        self.left = 14 + widest * CHAR + (14 if y_label else 0)
        self.right, self.top, self.bottom = WIDTH - 12, 12, HEIGHT - 34
        self.y_label = y_label
        self.parts: list[str] = []
        self.legend: list[tuple[str, str]] = []

    # scales
    def y(self, value: float) -> float:
        return self.bottom - (value / self.y_top) * (self.bottom - self.top) if self.y_top else self.bottom

    def axes(self, x_ticks: list[tuple[float, str]], grid: bool = True) -> None:
        out = []
        for value in self.y_ticks:
            y = self.y(value)
            if grid:
                out.append(f'<line x1="{self.left:.1f}" x2="{self.right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                           'stroke="#e6e6e6"/>')  # fmt: skip
            out.append(f'<text x="{self.left - 5:.1f}" y="{y + 4:.1f}" text-anchor="end">'
                       f"{_tick_label(value)}</text>")  # fmt: skip
        for x, label in x_ticks:
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.bottom}" y2="{self.bottom + 4}" stroke="#444"/>'
            )
            for i, part in enumerate(label.split("\n")):
                out.append(f'<text x="{x:.1f}" y="{self.bottom + 15 + 12 * i}" text-anchor="middle">'
                           f"{escape(part)}</text>")  # fmt: skip
        out.append(f'<line x1="{self.left:.1f}" x2="{self.right:.1f}" y1="{self.bottom}" y2="{self.bottom}" '
                   'stroke="#444"/>')  # fmt: skip
        out.append(f'<line x1="{self.left:.1f}" x2="{self.left:.1f}" y1="{self.top}" y2="{self.bottom}" '
                   'stroke="#444"/>')  # fmt: skip
        if self.y_label:
            mid = (self.top + self.bottom) / 2
            out.append(f'<text transform="translate(12 {mid:.1f}) rotate(-90)" text-anchor="middle">'
                       f"{escape(self.y_label)}</text>")  # fmt: skip
        self.parts[:0] = out

    def rect(self, x: float, width: float, low: float, high: float, color: str, title: str = "") -> None:
        y0, y1 = self.y(low), self.y(high)
        tip = f"<title>{escape(title)}</title>" if title else ""
        self.parts.append(f'<rect x="{x:.1f}" y="{min(y0, y1):.1f}" width="{max(width, 0.5):.1f}" '
                          f'height="{abs(y0 - y1):.1f}" fill="{color}">{tip}</rect>')  # fmt: skip

    def line(self, points: Sequence[tuple[float, float | None]], color: str, name: str) -> None:
        """A line through the points, broken where a value is None, with a marker at each point."""
        pieces: list[list[tuple[float, float]]] = [[]]
        for x, value in points:
            if value is None:
                if pieces[-1]:
                    pieces.append([])
                continue
            pieces[-1].append((x, self.y(value)))
        css = escape(name.replace(" ", "-"), quote=True)
        for piece in pieces:
            if not piece:
                continue
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in piece)
            self.parts.append(f'<polyline class="line {css}" points="{coords}" fill="none" stroke="{color}" '
                              'stroke-width="1.5"/>')  # fmt: skip
            self.parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{color}"/>' for x, y in piece)
        self.legend.append((name, color))

    def vline(self, x: float) -> None:
        self.parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.top}" y2="{self.bottom}" stroke="#444" '
                          'stroke-dasharray="4 3"/>')  # fmt: skip

    def svg(self) -> str:
        legend = []
        x = self.right
        for name, color in reversed(self.legend):
            x -= len(name) * CHAR + 30
            legend.append(f'<rect x="{x:.1f}" y="{self.top}" width="10" height="10" fill="{color}"/>'
                          f'<text x="{x + 14:.1f}" y="{self.top + 9}">{escape(name)}</text>')  # fmt: skip
        background = f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>'
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" font-family="system-ui, sans-serif" font-size="{FONT}" fill="#333">'
            f"{background}{''.join(self.parts)}{''.join(legend)}</svg>"
        )


def no_data() -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" font-family="system-ui, sans-serif" font-size="13">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/><text x="{WIDTH / 2}" y="{HEIGHT / 2}" '
        'text-anchor="middle" fill="#888">no data</text></svg>'
    )


# -- time axes ---------------------------------------------------------------------------------
class TimeAxis:
    """Bucket start times on x, each bucket ``step`` wide, from the first to the last bucket."""

    def __init__(self, times: Sequence[datetime], step: timedelta, plot: Plot):
        self.start, self.end = min(times), max(times) + step
        self.step, self.plot = step, plot
        span = (self.end - self.start).total_seconds()
        self.scale = (plot.right - plot.left - 8) / span if span else 1.0

    def x(self, t: datetime) -> float:
        return self.plot.left + 4 + (t - self.start).total_seconds() * self.scale

    def width(self) -> float:
        return self.step.total_seconds() * self.scale * 0.8

    def ticks(self) -> list[tuple[float, str]]:
        span = self.end - self.start
        step = next((s for s in _TIME_STEPS if span / s <= 6), _TIME_STEPS[-1])
        first = _ceil_time(self.start, step)
        out, t, last_day = [], first, None
        while t <= self.end:
            if step >= timedelta(days=1):
                label = f"{t:%b %d}"
            else:
                label = f"{t:%H:%M}" + (f"\n{t:%b %d}" if t.date() != last_day else "")
                last_day = t.date()
            out.append((self.x(t), label))
            t += step
        return out


def _ceil_time(t: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=t.tzinfo or UTC)
    seconds = step.total_seconds()
    offset = (t - epoch).total_seconds()
    return epoch + timedelta(seconds=math.ceil(offset / seconds) * seconds)


def bars_over_time(times: list[datetime], values: list[float], step: timedelta) -> str:
    if not times:
        return no_data()
    plot = Plot(max(values))
    axis = TimeAxis(times, step, plot)
    for t, v in zip(times, values, strict=True):
        plot.rect(axis.x(t), axis.width(), 0, v, PALETTE[0], f"{t:%Y-%m-%d %H:%M}: {_num(v)}")
    plot.axes(axis.ticks())
    return plot.svg()


def stacked_over_time(times: list[datetime], series: dict[str, list[float]], step: timedelta) -> str:
    if not times:
        return no_data()
    totals = [sum(values) for values in zip(*series.values(), strict=True)]
    plot = Plot(max(totals))
    axis = TimeAxis(times, step, plot)
    bottom = [0.0] * len(times)
    for i, (name, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        for j, (t, v) in enumerate(zip(times, values, strict=True)):
            if v:
                plot.rect(
                    axis.x(t), axis.width(), bottom[j], bottom[j] + v, color, f"{name} {t:%H:%M}: {_num(v)}"
                )
            bottom[j] += v
        plot.legend.append((name, color))
    plot.axes(axis.ticks())
    return plot.svg()


def lines_over_time(
    times: list[datetime], series: dict[str, list[float | None]], step: timedelta, y_label: str = "",
    y_min_top: float = 0.0,
) -> str:  # fmt: skip
    """One line per series; a None value, or a missing bucket between two, breaks the line."""
    present = [v for values in series.values() for v in values if v is not None]
    if not times or not present:
        return no_data()
    plot = Plot(max([*present, y_min_top]), y_label=y_label)
    axis = TimeAxis(times, step, plot)
    for i, (name, values) in enumerate(series.items()):
        color = PALETTE[(0, 1, 3)[i] if len(series) == 3 and i < 3 else i % len(PALETTE)]
        points: list[tuple[float, float | None]] = []
        previous = None
        for t, v in sorted(zip(times, values, strict=True), key=lambda p: p[0]):
            if previous is not None and t - previous > step:
                points.append((axis.x(previous + step), None))  # a gap in the buckets
            points.append((axis.x(t) + axis.width() / 2, v))
            previous = t
        plot.line(points, color, name)
    plot.axes(axis.ticks())
    return plot.svg()


# -- category and number axes ------------------------------------------------------------------
def histogram(edges: list[float], counts: list[int], mark: float | None = None) -> str:
    if not counts or not sum(counts):
        return no_data()
    plot = Plot(max(counts))
    lo, hi = edges[0], edges[-1]
    scale = (plot.right - plot.left - 8) / ((hi - lo) or 1)

    def x(value: float) -> float:
        return plot.left + 4 + (value - lo) * scale

    for a, b, n in zip(edges[:-1], edges[1:], counts, strict=True):
        color = PALETTE[3] if mark is not None and a < mark else PALETTE[0]
        plot.rect(x(a) + 0.5, x(b) - x(a) - 1, 0, n, color, f"{_num(a)} to {_num(b)}: {n}")
    if mark is not None:
        plot.vline(x(mark))
    ticks = _nice_ticks(hi - lo, 5)
    plot.axes([(x(lo + t), _tick_label(lo + t)) for t in ticks if lo + t <= hi + 1e-9])
    return plot.svg()


def bars(labels: list[str], values: list[float]) -> str:
    return grouped_bars(labels, {"": values})


def grouped_bars(
    labels: list[str], series: dict[str, list[float]], y_label: str = "", highlight: str | None = None
) -> str:
    """Bars side by side per label; the ``highlight`` series in red (a drifted window)."""
    if not labels:
        return no_data()
    plot = Plot(max(max(values) for values in series.values()), y_label=y_label)
    slot = (plot.right - plot.left - 8) / len(labels)
    width = slot * 0.8 / len(series)
    colors = {name: PALETTE[(7, 0)[i] if len(series) == 2 else 0] for i, name in enumerate(series)}
    if highlight is not None:
        colors[highlight] = PALETTE[3]
    for i, (name, values) in enumerate(series.items()):
        for j, v in enumerate(values):
            x = plot.left + 4 + j * slot + slot * 0.1 + i * width
            plot.rect(x, width, 0, v, colors[name], f"{labels[j]} {name}: {_num(v)}".strip())
        if name:
            plot.legend.append((name, colors[name]))
    plot.axes([(plot.left + 4 + (j + 0.5) * slot, label[:14]) for j, label in enumerate(labels)])
    return plot.svg()


def barh(labels: list[str], values: list[float]) -> str:
    """Horizontal bars, the first label at the top."""
    if not labels:
        return no_data()
    shown = [label[:28] for label in labels]
    plot = Plot(0, left_labels=shown)
    ticks = _nice_ticks(max(values))
    top = ticks[-1]
    slot = (plot.bottom - plot.top) / len(labels)
    scale = (plot.right - plot.left - 8) / top

    out = []
    for t in ticks:
        x = plot.left + t * scale
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{plot.top}" y2="{plot.bottom}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{x:.1f}" y="{plot.bottom + 15}" text-anchor="middle">{_tick_label(t)}</text>')
    for j, (label, v) in enumerate(zip(shown, values, strict=True)):
        y = plot.top + j * slot + slot * 0.15
        tip = f"<title>{escape(labels[j])}: {_num(v)}</title>"
        out.append(f'<rect x="{plot.left:.1f}" y="{y:.1f}" width="{max(v * scale, 0.5):.1f}" '
                   f'height="{slot * 0.7:.1f}" fill="{PALETTE[0]}">{tip}</rect>')  # fmt: skip
        out.append(f'<text x="{plot.left - 5:.1f}" y="{y + slot * 0.35 + 4:.1f}" text-anchor="end">'
                   f"{escape(label)}</text>")  # fmt: skip
    out.append(
        f'<line x1="{plot.left:.1f}" x2="{plot.left:.1f}" y1="{plot.top}" y2="{plot.bottom}" stroke="#444"/>'
    )
    plot.parts = out
    return plot.svg()

"""Charts as inline SVG, drawn by hand: line, scatter, bars, histogram, heatmap and the timeline.

Why no plotting library: bench/README.md ("Run report: drawing the charts") has the figures.
Every chart is a ``<figure class="chart" data-chart="ID">`` whose ``<svg>`` holds its drawn marks
in ``<g class="marks">`` and its axis titles as ``<text class="axis-label" data-axis="x|y">``:
what the browser test (tests/report) checks for each chart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 520, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 48
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
FAILED, RETRIED, OK = "#d62728", "#ff7f0e", "#2ca02c"


@dataclass
class Series:
    """One line or set of points; ``mark`` is ``line`` or ``points``."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    mark: str = "line"
    highlight: int | None = None  # the index of a point to ring (the best tuning job)


@dataclass
class Frame:
    """The plot area and the scales of one chart."""

    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT

    def x(self, value: float) -> float:
        span = (self.x_hi - self.x_lo) or 1.0
        return self.left + (value - self.x_lo) / span * (self.width - self.left - RIGHT)

    def y(self, value: float) -> float:
        span = (self.y_hi - self.y_lo) or 1.0
        return self.height - BOTTOM - (value - self.y_lo) / span * (self.height - TOP - BOTTOM)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _number(value: float) -> str:
    return f"{value:.4g}"


def _bounds(values: Sequence[float], pad: float = 0.0) -> tuple[float, float]:
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if lo == hi:
        return lo - 1, hi + 1
    margin = (hi - lo) * pad
    return lo - margin, hi + margin


def figure(
    chart_id: str, title: str, body: str, *, width: int = WIDTH, height: int = HEIGHT
) -> str:
    """A chart's figure: its title as the caption, the SVG inline."""
    return (
        f'<figure class="chart" data-chart="{escape(chart_id)}"><figcaption>{escape(title)}'
        f'</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">{body}</svg>'
        "</figure>"
    )


def _axes(frame: Frame, x_label: str, y_label: str, *, y_ticks: bool = True) -> str:
    parts = []
    bottom, top = frame.height - BOTTOM, TOP
    right = frame.width - RIGHT
    parts.append(
        f'<path class="axis" d="M{frame.left},{top}V{bottom}H{right}" stroke="#444" fill="none"/>'
    )
    for tick in nice_ticks(frame.x_lo, frame.x_hi):
        x = frame.x(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#444"/>'
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" font-size="11">'
            f"{_number(tick)}</text>"
        )
    for tick in nice_ticks(frame.y_lo, frame.y_hi) if y_ticks else []:
        y = frame.y(tick)
        parts.append(
            f'<line x1="{frame.left - 4}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{_number(tick)}</text>"
        )
    parts.append(_axis_labels(frame, x_label, y_label))
    return "".join(parts)


def _axis_labels(frame: Frame, x_label: str, y_label: str) -> str:
    middle_x = (frame.left + frame.width - RIGHT) / 2
    middle_y = (TOP + frame.height - BOTTOM) / 2
    return (
        f'<text class="axis-label" data-axis="x" x="{middle_x:.1f}" y="{frame.height - 10}" '
        f'text-anchor="middle" font-size="12">{escape(x_label)}</text>'
        f'<text class="axis-label" data-axis="y" transform="translate(14,{middle_y:.1f}) '
        f'rotate(-90)" text-anchor="middle" font-size="12">{escape(y_label)}</text>'
    )


def _legend(names: Sequence[str], frame: Frame) -> str:
    if len(names) < 2:
        return ""
    items = []
    for i, name in enumerate(names):
        y = TOP + 6 + i * 15
        colour = PALETTE[i % len(PALETTE)]
        items.append(
            f'<rect x="{frame.width - RIGHT - 150}" y="{y - 8}" width="10" height="10" '
            f'fill="{colour}"/><text x="{frame.width - RIGHT - 136}" y="{y + 1}" '
            f'font-size="11">{escape(name[:24])}</text>'
        )
    return '<g class="legend">' + "".join(items) + "</g>"


def xy_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
) -> str:
    """Lines or points on linear axes; ``diagonal`` draws y = x (a chance line, a perfect fit)."""
    xs = [v for s in series for v in s.x]
    ys = [v for s in series for v in s.y]
    frame = Frame(*(x_range or _bounds(xs, 0.02)), *(y_range or _bounds(ys, 0.05)))
    marks = []
    if diagonal:
        lo, hi = max(frame.x_lo, frame.y_lo), min(frame.x_hi, frame.y_hi)
        marks.append(
            f'<line class="reference" x1="{frame.x(lo):.1f}" y1="{frame.y(lo):.1f}" '
            f'x2="{frame.x(hi):.1f}" y2="{frame.y(hi):.1f}" stroke="#999" stroke-dasharray="4 3"/>'
        )
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        points = [
            (frame.x(a), frame.y(b))
            for a, b in zip(s.x, s.y, strict=True)
            if isinstance(a, int | float) and isinstance(b, int | float)
            if math.isfinite(a) and math.isfinite(b)
        ]
        if s.mark == "line" and len(points) > 1:
            path = "M" + "L".join(f"{a:.1f},{b:.1f}" for a, b in points)
            marks.append(
                f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2">'
                f"<title>{escape(s.name)}</title></path>"
            )
        else:
            marks.extend(
                f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{colour}" fill-opacity="0.6"/>'
                for a, b in points
            )
        if s.highlight is not None and 0 <= s.highlight < len(points):
            a, b = points[s.highlight]
            marks.append(
                f'<circle class="best" cx="{a:.1f}" cy="{b:.1f}" r="7" fill="none" '
                f'stroke="{FAILED}" stroke-width="2"><title>best</title></circle>'
            )
    body = (
        _axes(frame, x_label, y_label)
        + '<g class="marks">'
        + "".join(marks)
        + "</g>"
        + _legend([s.name for s in series], frame)
    )
    return figure(chart_id, title, body)


def bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    groups: Mapping[str, Sequence[float]],
    *,
    x_label: str,
    y_label: str,
) -> str:
    """Horizontal bars, one row a label, one bar a group (precision and recall side by side)."""
    rows = max(1, len(labels))
    band = max(14, 22 * len(groups))
    legend_room = 18 if len(groups) > 1 else 0  # a legend row under the axis title
    height = TOP + BOTTOM + rows * band + legend_room
    values = [v for vs in groups.values() for v in vs]
    lo, hi = min(0.0, *values) if values else 0.0, max(1e-12, *values) if values else 1.0
    frame = Frame(lo, hi, 0, rows, height=height - legend_room, left=170)
    marks = []
    ticks = []
    for row, label in enumerate(labels):
        top = TOP + row * band
        ticks.append(
            f'<text x="{frame.left - 6}" y="{top + band / 2 + 4:.1f}" text-anchor="end" '
            f'font-size="11">{escape(label[:28])}</text>'
        )
        for g, (name, vs) in enumerate(groups.items()):
            value = vs[row]
            x0, x1 = frame.x(min(0.0, value)), frame.x(max(0.0, value))
            height_bar = (band - 4) / len(groups)
            marks.append(
                f'<rect x="{x0:.1f}" y="{top + 2 + g * height_bar:.1f}" '
                f'width="{max(x1 - x0, 1):.1f}" '
                f'height="{height_bar - 1:.1f}" fill="{PALETTE[g % len(PALETTE)]}">'
                f"<title>{escape(label)} {escape(name)}: {_number(value)}</title></rect>"
            )
    x_axis = "".join(
        f'<text x="{frame.x(t):.1f}" y="{frame.height - BOTTOM + 16}" text-anchor="middle" '
        f'font-size="11">{_number(t)}</text>'
        for t in nice_ticks(lo, hi)
    )
    body = (
        f'<path class="axis" d="M{frame.left},{TOP}V{frame.height - BOTTOM}H{WIDTH - RIGHT}" '
        'stroke="#444" fill="none"/>'
        + "".join(ticks)
        + x_axis
        + _axis_labels(frame, x_label, y_label)
        + '<g class="marks">'
        + "".join(marks)
        + "</g>"
        + _row_legend(list(groups), frame.left, height - 6)
    )
    return figure(chart_id, title, body, height=height)


def _row_legend(names: Sequence[str], left: float, y: float) -> str:
    """The groups' colours in one row under a chart (where no bar can hide them)."""
    if len(names) < 2:
        return ""
    items = []
    for i, name in enumerate(names):
        x = left + i * 110
        items.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{x + 14}" y="{y}" font-size="11">{escape(name[:14])}</text>'
        )
    return '<g class="legend">' + "".join(items) + "</g>"


def histogram(
    chart_id: str, title: str, edges: Sequence[float], counts: Sequence[int], *, x_label: str
) -> str:
    """Counts over equal bins, as ``numpy.histogram`` returns them."""
    frame = Frame(edges[0], edges[-1], 0, max(1, *counts))
    marks = [
        f'<rect x="{frame.x(a):.1f}" y="{frame.y(c):.1f}" '
        f'width="{max(frame.x(b) - frame.x(a) - 1, 1):.1f}" '
        f'height="{frame.y(0) - frame.y(c):.1f}" fill="{PALETTE[0]}">'
        f"<title>[{_number(a)}, {_number(b)}): {c}</title></rect>"
        for a, b, c in zip(edges, edges[1:], counts, strict=False)
    ]
    body = _axes(frame, x_label, "rows") + '<g class="marks">' + "".join(marks) + "</g>"
    return figure(chart_id, title, body)


def heatmap(chart_id: str, title: str, matrix: dict[str, dict[str, int]]) -> str:
    """A confusion matrix ``{actual: {predicted: count}}``: one cell a pair, darker the more."""
    names = list(matrix)
    size = max(1, len(names))
    cell = max(24, min(80, 260 // size))
    left, top = 130, TOP
    width, height = left + cell * size + RIGHT + 10, top + cell * size + 70
    peak = max((c for row in matrix.values() for c in row.values()), default=0) or 1
    marks, labels = [], []
    for i, actual in enumerate(names):
        for j, predicted in enumerate(names):
            count = matrix[actual].get(predicted, 0)
            shade = 0.08 + 0.92 * count / peak
            x, y = left + j * cell, top + i * cell
            text_colour = "#fff" if shade > 0.55 else "#111"
            marks.append(
                f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{PALETTE[0]}" fill-opacity="{shade:.2f}"><title>actual {escape(actual)}, '
                f"predicted {escape(predicted)}: {count}</title></rect>"
                f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" '
                f'font-size="11" fill="{text_colour}">{count}</text>'
            )
        labels.append(
            f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4:.1f}" text-anchor="end" '
            f'font-size="11">{escape(actual[:18])}</text>'
            f'<text x="{left + i * cell + cell / 2:.1f}" y="{top + size * cell + 14}" '
            f'text-anchor="middle" font-size="11">{escape(actual[:10])}</text>'
        )
    body = (
        "".join(labels)
        + f'<text class="axis-label" data-axis="x" x="{left + size * cell / 2:.1f}" '
        f'y="{height - 16}" text-anchor="middle" font-size="12">predicted</text>'
        f'<text class="axis-label" data-axis="y" '
        f'transform="translate(14,{top + size * cell / 2:.1f}) '
        'rotate(-90)" text-anchor="middle" font-size="12">actual</text>'
        '<g class="marks">' + "".join(marks) + "</g>"
    )
    return figure(chart_id, title, body, width=width, height=height)


@dataclass
class Bar:
    """One span of the timeline."""

    lane: str
    start: float  # seconds since the execution started
    end: float
    status: str = "succeeded"  # succeeded | failed | caught
    retries: list[float] = field(default_factory=list)  # seconds of each retry
    group: str = ""  # a Map iteration's "Map state [index]"
    note: str = ""


def timeline(chart_id: str, title: str, bars: Sequence[Bar]) -> str:
    """One lane a state (Map iterations grouped under their Map), each visit a bar over time;
    failed bars red, retries marked."""
    lanes: list[str] = []
    for bar in bars:
        if bar.lane not in lanes:
            lanes.append(bar.lane)
    lane_height = 18
    height = TOP + BOTTOM + max(1, len(lanes)) * lane_height
    end = max((b.end for b in bars), default=1.0) or 1.0
    frame = Frame(0, end, 0, len(lanes), width=760, height=height, left=250)
    marks, names = [], []
    for row, lane in enumerate(lanes):
        y = TOP + row * lane_height
        names.append(
            f'<text x="{frame.left - 6}" y="{y + 13}" text-anchor="end" font-size="11">'
            f"{escape(lane[:40])}</text>"
        )
    for bar in bars:
        y = TOP + lanes.index(bar.lane) * lane_height
        x0, x1 = frame.x(bar.start), frame.x(bar.end)
        colour = {"failed": FAILED, "caught": FAILED}.get(bar.status, OK)
        if bar.retries:
            colour = RETRIED if bar.status == "succeeded" else colour
        tip = f"{bar.lane}: {bar.end - bar.start:.2f}s {bar.status}"
        tip += f", {len(bar.retries)} retries" if bar.retries else ""
        tip += f" ({bar.note})" if bar.note else ""
        marks.append(
            f'<rect class="bar {bar.status}" x="{x0:.1f}" y="{y + 3}" '
            f'width="{max(x1 - x0, 2):.1f}" '
            f'height="{lane_height - 6}" fill="{colour}"><title>{escape(tip)}</title></rect>'
        )
        marks.extend(
            f'<path class="retry" d="M{frame.x(t):.1f},{y}v{lane_height}" stroke="#000" '
            f'stroke-width="2"><title>retry at {t:.2f}s</title></path>'
            for t in bar.retries
        )
    body = (
        "".join(names)
        + _axes(frame, "seconds since the execution started", "state", y_ticks=False)
        + '<g class="marks">'
        + "".join(marks)
        + "</g>"
    )
    return figure(chart_id, title, body, width=760, height=height)

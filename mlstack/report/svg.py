"""Charts as inline SVG, drawn by matplotlib: line, scatter, bars, histogram, heatmap and the
timeline.

Why matplotlib, and what it costs: bench/README.md ("Run report: drawing the charts"). It draws on
the reading side only (``mlstack report``, a local run); the training image writes numbers.
Every chart is a ``<figure class="chart" data-chart="ID">`` whose ``<svg>`` holds its drawn marks
in groups whose id starts ``marks-`` and its axis titles in the groups ``axis-label-x`` and
``axis-label-y`` (matplotlib's ``gid``): what the browser check (tests/browser.py) looks for.
Text stays text (``svg.fonttype: none``) and the output is the same for the same input
(``svg.hashsalt`` fixed, no date in the metadata).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.container import Container
from matplotlib.figure import Figure
from matplotlib.rcsetup import cycler
from matplotlib.ticker import MaxNLocator

WIDTH, HEIGHT = 520, 320  # CSS pixels
PIXELS_PER_INCH = 96  # CSS pixels an inch: the SVG's size in pt is 3/4 of these
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
FAILED, RETRIED, OK = "#d62728", "#ff7f0e", "#2ca02c"

# Any keys: matplotlib types rc_context's keys as a Literal of every rcParam name.
_RC: dict[Any, Any] = {
    "svg.fonttype": "none",  # <text>, not glyph paths: smaller, selectable, checkable
    "svg.hashsalt": "mlstack-report",  # ids from content, not a random salt: same input, same SVG
    "text.parse_math": False,  # a feature or class named "$x$" is text, not TeX to typeset
    "font.size": 9,
    "axes.prop_cycle": cycler(color=list(PALETTE)),
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# No Date (it would change every render) and no Creator URL: the report fetches and names nothing.
_METADATA: dict[str, Any] = {"Creator": None, "Date": None, "Format": None, "Type": None}


@dataclass
class Series:
    """One line or set of points; ``mark`` is ``line`` or ``points``."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    mark: str = "line"
    highlight: int | None = None  # the index of a point to ring (the best tuning job)


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


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


# Every artist reads rcParams when it is made, and the SVG backend when it saves: a chart is made
# and saved wholly inside these settings (matplotlib restores the caller's afterwards).
_drawing = matplotlib.rc_context(_RC)


def _new(width: int, height: int, **margins: float) -> tuple[Figure, Axes]:
    figure_ = Figure(figsize=(width / PIXELS_PER_INCH, height / PIXELS_PER_INCH))
    axes = figure_.add_subplot()
    figure_.subplots_adjust(**margins)
    return figure_, axes


def _labels(axes: Axes, x_label: str, y_label: str) -> None:
    axes.set_xlabel(x_label, gid="axis-label-x")
    axes.set_ylabel(y_label, gid="axis-label-y")


def _marks(artists: Sequence[Any]) -> None:
    """Name the drawn marks so that the browser check finds them (a container's, each of its
    bars)."""
    flat = [
        a for artist in artists for a in (artist if isinstance(artist, Container) else [artist])
    ]
    for i, artist in enumerate(flat):
        artist.set_gid(f"marks-{i}")


def _svg(figure_: Figure) -> str:
    """The figure's ``<svg>`` element, ready to inline into HTML: one line, no XML prolog or
    DOCTYPE, and SVG 2's ``href`` rather than ``xlink:href`` (so no XLink namespace is declared)."""
    out = io.StringIO()
    figure_.savefig(out, format="svg", metadata=_METADATA)
    text = out.getvalue()
    # one line, as the HTML around it: matplotlib indents every element and breaks path data
    text = re.sub(r"\n\s*", " ", text[text.index("<svg") :].strip())
    text = text.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "")
    return re.sub(r"\bxlink:href=", "href=", text)


def figure(chart_id: str, title: str, body: str) -> str:
    """A chart's figure: its title as the caption, the SVG inline."""
    labelled = body.replace("<svg ", f'<svg role="img" aria-label="{escape(title)}" ', 1)
    return (
        f'<figure class="chart" data-chart="{escape(chart_id)}"><figcaption>{escape(title)}'
        f"</figcaption>{labelled}</figure>"
    )


@_drawing
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
    figure_, axes = _new(WIDTH, HEIGHT, left=0.13, right=0.97, top=0.95, bottom=0.15)
    drawn: list[Any] = []
    for s in series:
        pairs = [(a, b) for a, b in zip(s.x, s.y, strict=True) if _finite(a) and _finite(b)]
        xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
        if s.mark == "line" and len(pairs) > 1:
            drawn += axes.plot(xs, ys, linewidth=2, label=s.name)
        else:  # markers: one <use> of one marker definition a point
            drawn += axes.plot(xs, ys, "o", markersize=3.5, alpha=0.6, label=s.name)
        if s.highlight is not None and 0 <= s.highlight < len(pairs):
            at = pairs[s.highlight]
            axes.plot(*at, "o", markersize=11, fillstyle="none", color=FAILED, gid="best")
    if x_range:
        axes.set_xlim(*x_range)
    if y_range:
        axes.set_ylim(*y_range)
    if diagonal:
        (lo_x, hi_x), (lo_y, hi_y) = axes.get_xlim(), axes.get_ylim()
        lo, hi = max(lo_x, lo_y), min(hi_x, hi_y)
        axes.plot([lo, hi], [lo, hi], color="#999", linestyle="--", linewidth=1, gid="reference")
    if all(isinstance(v, int) for s in series for v in s.x):  # rounds, jobs: no 0.25 ticks
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, color="#eee")
    _labels(axes, x_label, y_label)
    _marks(drawn)
    if len(series) > 1:
        axes.legend(loc="best", fontsize=8)
    return figure(chart_id, title, _svg(figure_))


@_drawing
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
    height = 70 + rows * band + (18 if len(groups) > 1 else 0)
    figure_, axes = _new(
        WIDTH, height, left=0.33, right=0.97, top=1 - 10 / height, bottom=60 / height
    )
    thickness = 0.8 / max(1, len(groups))
    drawn = []
    for g, (name, values) in enumerate(groups.items()):
        offsets = [row + (g - (len(groups) - 1) / 2) * thickness for row in range(len(labels))]
        drawn.append(axes.barh(offsets, list(values), height=thickness * 0.95, label=name))
    axes.set_yticks(range(len(labels)), [label[:28] for label in labels])
    axes.invert_yaxis()  # the first label on top, as a table reads
    axes.grid(True, axis="x", color="#eee")
    axes.set_axisbelow(True)
    _labels(axes, x_label, y_label)
    _marks(drawn)
    if len(groups) > 1:  # one row under the chart, where no bar can hide it
        figure_.legend(loc="lower left", ncols=len(groups), fontsize=8, frameon=False)
    return figure(chart_id, title, _svg(figure_))


@_drawing
def histogram(
    chart_id: str, title: str, edges: Sequence[float], counts: Sequence[int], *, x_label: str
) -> str:
    """Counts over equal bins, as ``numpy.histogram`` returns them."""
    figure_, axes = _new(WIDTH, HEIGHT, left=0.13, right=0.97, top=0.95, bottom=0.15)
    _, _, bars = axes.hist(
        list(edges[:-1]), bins=list(edges), weights=list(counts), edgecolor="white"
    )
    axes.grid(True, axis="y", color="#eee")
    axes.set_axisbelow(True)
    _labels(axes, x_label, "rows")
    _marks([bars])
    return figure(chart_id, title, _svg(figure_))


@_drawing
def heatmap(chart_id: str, title: str, matrix: dict[str, dict[str, int]]) -> str:
    """A confusion matrix ``{actual: {predicted: count}}``: one cell a pair, darker the more."""
    names = list(matrix)
    size = max(1, len(names))
    cell = max(24, min(80, 260 // size))
    width, height = 150 + cell * size + 20, 20 + cell * size + 60
    figure_, axes = _new(
        width,
        height,
        left=140 / width,
        right=1 - 20 / width,
        top=1 - 20 / height,
        bottom=60 / height,
    )
    counts = [[matrix[actual].get(predicted, 0) for predicted in names] for actual in names]
    peak = max((c for row in counts for c in row), default=0) or 1
    # no classes, no cells: a chart without marks, which the browser check reports
    cells = [
        axes.pcolormesh(counts, cmap="Blues", vmin=0, vmax=peak, edgecolors="white")
        for _ in names[:1]
    ]
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            colour = "#fff" if count / peak > 0.55 else "#111"
            axes.text(j + 0.5, i + 0.5, str(count), ha="center", va="center", color=colour)
    axes.set_xticks([i + 0.5 for i in range(len(names))], [n[:10] for n in names])
    axes.set_yticks([i + 0.5 for i in range(len(names))], [n[:18] for n in names])
    axes.invert_yaxis()  # actual classes down, in the matrix's order
    axes.tick_params(length=0)
    _labels(axes, "predicted", "actual")
    _marks(cells)
    return figure(chart_id, title, _svg(figure_))


@_drawing
def timeline(chart_id: str, title: str, bars: Sequence[Bar]) -> str:
    """One lane a state (Map iterations grouped under their Map), each visit a bar over time;
    failed bars red, retries marked."""
    lanes: list[str] = []
    for bar in bars:
        if bar.lane not in lanes:
            lanes.append(bar.lane)
    width, height = 760, 64 + max(1, len(lanes)) * 18
    figure_, axes = _new(
        width,
        height,
        left=250 / width,
        right=1 - 16 / width,
        top=1 - 10 / height,
        bottom=54 / height,
    )
    end = max((b.end for b in bars), default=1.0) or 1.0
    drawn: list[Any] = []
    for bar in bars:
        row = lanes.index(bar.lane)
        colour = {"failed": FAILED, "caught": FAILED}.get(bar.status, OK)
        if bar.retries:
            colour = RETRIED if bar.status == "succeeded" else colour
        span = max(bar.end - bar.start, end / 400)  # an instant still shows
        drawn.append(axes.broken_barh([(bar.start, span)], (row - 0.35, 0.7), facecolors=colour))
        if bar.retries:
            drawn.append(axes.vlines(bar.retries, row - 0.5, row + 0.5, colors="#000", linewidth=2))
    axes.set_xlim(0, end)
    axes.set_ylim(max(1, len(lanes)) - 0.5, -0.5)  # the first state on top
    axes.set_yticks(range(len(lanes)), [lane[:40] for lane in lanes])
    axes.tick_params(axis="y", length=0)
    axes.grid(True, axis="x", color="#eee")
    axes.set_axisbelow(True)
    _labels(axes, "seconds since the execution started", "state")
    _marks(drawn)
    return figure(chart_id, title, _svg(figure_))

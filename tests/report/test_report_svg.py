"""The report's charts as matplotlib draws them (mlstack/report/svg.py), read as SVG (XML).

Expected values come from matplotlib's documented rcParams (matplotlibrc, 3.11): ``svg.hashsalt``
"if not None, use this string as hash salt instead of uuid4" (so ids, and the SVG, repeat only
when it is fixed) and ``svg.fonttype: none`` ("assume fonts are installed on the machine where the
SVG will be viewed": text is ``<text>``, not glyph paths); the SVG namespace from the SVG 2
specification; the inputs from the test itself.
"""

from __future__ import annotations

import re
from xml.etree import ElementTree

import pytest

from mlstack.report import svg

SVG = "{http://www.w3.org/2000/svg}"
CHARTS = {
    "roc": lambda: svg.xy_chart(
        "roc",
        "ROC",
        [svg.Series("ROC", [0.0, 0.25, 1.0], [0.0, 0.75, 1.0])],
        x_label="false positive rate",
        y_label="true positive rate",
        x_range=(0, 1),
        y_range=(0, 1),
        diagonal=True,
    ),
    "per-class": lambda: svg.bar_chart(
        "per-class",
        "By class",
        ["setosa", "versicolor", "virginica"],
        {"precision": [1.0, 0.9, 0.8], "recall": [1.0, 0.85, 0.95]},
        x_label="value",
        y_label="class",
    ),
    "residuals": lambda: svg.histogram(
        "residuals", "Residuals", [-2.0, -1.0, 0.0, 1.0, 2.0], [1, 5, 7, 2], x_label="residual"
    ),
    "confusion-matrix": lambda: svg.heatmap(
        "confusion-matrix", "Confusion", {"no": {"no": 40, "yes": 3}, "yes": {"no": 6, "yes": 51}}
    ),
    "timeline": lambda: svg.timeline(
        "timeline",
        "States",
        [svg.Bar("Train model", 0.0, 4.0), svg.Bar("Evaluate", 4.0, 6.0, "failed", [4.5])],
    ),
}


def _svg(chart: str) -> ElementTree.Element:
    match = re.search(r"<svg .*</svg>", chart, re.S)
    assert match is not None
    return ElementTree.fromstring(match.group(0))


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_a_chart_drawn_twice_is_the_same_svg(name: str) -> None:
    assert CHARTS[name]() == CHARTS[name]()


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_a_chart_names_its_marks_and_keeps_its_axis_titles_as_text(name: str) -> None:
    chart = CHARTS[name]()
    assert chart.startswith(f'<figure class="chart" data-chart="{name}">')
    root = _svg(chart)
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    marks = [g for gid, g in groups.items() if gid and gid.startswith("marks-")]
    assert marks, "no marks"
    for axis in ("x", "y"):
        title = groups[f"axis-label-{axis}"].find(f".//{SVG}text")
        assert title is not None and title.text and title.text.strip()
    assert "glyph" not in chart  # svg.fonttype none: no glyph paths


def test_the_timeline_and_its_axis_titles_read_as_the_input() -> None:
    root = _svg(CHARTS["timeline"]())
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"Train model", "Evaluate", "seconds since the execution started", "state"} <= texts
    groups = [g for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith("marks-")]
    assert len(groups) == 3  # two bars and the failed one's retry


def test_an_inlined_chart_declares_no_xlink_and_fetches_nothing() -> None:
    chart = CHARTS["roc"]()
    assert "<?xml" not in chart and "<!DOCTYPE" not in chart
    assert "xlink" not in chart
    outside = chart.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http" not in outside
    assert re.findall(r"url\((?!#)", outside) == []


def test_labels_from_the_data_are_drawn_as_written_not_as_tex_or_markup() -> None:
    # hostile names a dataset may hold: TeX delimiters (matplotlib's mathtext parses $...$ unless
    # text.parse_math is off, and an unbalanced "$" raises), markup, an underscore
    names = ["$x$", "price $", "<b>&amp;", "a_b"]
    chart = svg.bar_chart(
        "importance", "Gain", names, {"gain": [4.0, 3.0, 2.0, 1.0]}, x_label="gain", y_label="f"
    )
    texts = {t.text for t in _svg(chart).iter(f"{SVG}text")}
    assert set(names) <= texts


def test_a_confusion_matrix_without_classes_draws_no_marks() -> None:
    root = _svg(svg.heatmap("confusion-matrix", "Confusion", {}))
    assert [g for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith("marks-")] == []


def test_axis_titles_from_the_data_are_text_and_the_callers_settings_are_restored() -> None:
    import matplotlib

    before = dict(matplotlib.rcParams)
    chart = svg.xy_chart(
        "training-$m$", "m", [svg.Series("$a", [0, 1], [1.0, 2.0])], x_label="$r$", y_label="$m$"
    )
    texts = {t.text for t in _svg(chart).iter(f"{SVG}text")}
    assert {"$r$", "$m$"} <= texts
    assert dict(matplotlib.rcParams) == before

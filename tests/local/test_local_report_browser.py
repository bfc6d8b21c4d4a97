"""The report of a real local run, opened as a person opens it: in headless Chromium (Debian's
``chromium``), driven over the DevTools protocol. Fails on any console error, exception or failed
load, and on a chart without drawn marks or without its axis titles.

The run is the session's ``local_run`` (tests/local/conftest.py: dev, 500 generated rows).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack.local.runner import RunReport, format_summary
from tests.browser import CHART_CHECK, Browser, PageResult, png_size

WIDTH = 1200


@pytest.fixture(scope="module")
def browser() -> Browser:
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def opened(browser: Browser, local_run: RunReport) -> PageResult:
    assert local_run.report_path is not None
    return browser.open(local_run.report_path.as_uri(), CHART_CHECK, width=WIDTH)


def test_local_run_writes_report_html_and_names_it_in_its_summary(local_run: RunReport) -> None:
    assert local_run.report_path == local_run.run_dir / "report.html"
    assert local_run.report_path.is_file()
    assert "  Report            " in format_summary(local_run)
    assert str(local_run.report_path.name) in format_summary(local_run)


def test_report_opens_without_console_errors_or_failed_loads(opened: PageResult) -> None:
    assert opened.loaded
    assert opened.errors == []


def test_report_references_nothing_outside_the_file(local_run: RunReport) -> None:
    assert local_run.report_path is not None
    html = local_run.report_path.read_text("utf-8")
    # the SVG namespace is a name, not a load; url(#id) names a clip path in the same SVG
    inside = html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace("url(#", "")
    for outside in ("http://", "https://", "<script", "src=", "@import", "url("):
        assert inside.count(outside) == 0, outside


def test_every_chart_has_drawn_marks_and_labelled_axes(opened: PageResult) -> None:
    assert opened.check["problems"] == {}
    # the binary demo run: timeline, a training curve, ROC, PR, confusion matrix, importance
    charts = set(opened.check["charts"])
    expected = {"timeline", "roc", "precision-recall", "confusion-matrix", "importance"}
    assert expected <= charts, charts
    assert any(c.startswith("training-") for c in charts), charts


def test_the_screenshot_is_the_whole_page(opened: PageResult, tmp_path: Path) -> None:
    width, height = png_size(opened.screenshot)
    assert width == WIDTH
    assert height > 900  # past the first screen: the full page was captured


def test_the_check_fails_a_blank_chart_and_a_console_error(
    browser: Browser, tmp_path: Path
) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body>"
        '<figure class="chart" data-chart="blank"><svg width="100" height="100">'
        '<g id="marks-0"></g><g id="axis-label-x"><text>x</text></g></svg></figure>'
        "<script>console.error('drawn wrong')</script>"
        '<img src="missing.png"></body></html>',
        "utf-8",
    )
    result = browser.open(page.as_uri(), CHART_CHECK)
    assert result.check["problems"] == {
        "blank": ["no marks", "marks have no size", "no y axis label"]
    }
    assert any("drawn wrong" in e for e in result.errors)
    assert any("load failed" in e or "missing.png" in e for e in result.errors), result.errors


def _metadata(document: object) -> list[dict]:
    """Every CustomerMetadataProperties in the run's registry file."""
    if isinstance(document, dict):
        found = (
            [document["CustomerMetadataProperties"]]
            if "CustomerMetadataProperties" in document
            else []
        )
        return found + [m for v in document.values() for m in _metadata(v)]
    if isinstance(document, list):
        return [m for v in document for m in _metadata(v)]
    return []


def test_the_registered_version_names_the_report_beside_the_evaluation(
    local_run: RunReport,
) -> None:
    import json

    import botocore.session
    import regex

    registry = json.loads((local_run.run_dir / "sagemaker" / "registry.json").read_text("utf-8"))
    evaluation_uri = local_run.evaluation["report_uri"]
    expected = evaluation_uri.removesuffix("evaluation.json") + "report.html"
    reports = {m.get("report") for m in _metadata(registry)}
    assert expected in reports
    # CustomerMetadataValue's pattern and length, from botocore's sagemaker model
    shape = (
        botocore.session.get_session()
        .get_service_model("sagemaker")
        .shape_for("CustomerMetadataValue")
    )
    assert regex.fullmatch(shape.metadata["pattern"], expected)
    assert len(expected) <= shape.metadata["max"]

"""The data section's missing values per column, opened as a person opens it: in headless
Chromium (Debian's ``chromium``, tests/browser.py). Fails on any console error or failed load,
and on a chart without drawn marks or axis titles (``CHART_CHECK``, the check the local run's
report passes in tests/local/test_local_report_browser.py)."""

from __future__ import annotations

from pathlib import Path

from mlstack.report.build import ReportInputs, render
from tests.browser import CHART_CHECK, Browser
from tests.report.test_report_build import DATA


def test_the_missing_values_chart_draws_its_bars_and_axes(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    data = {**DATA, "missing": {"weight": 0, "size": 4, "colour": 4}}
    page.write_text(render(ReportInputs("r", "dev", "SUCCEEDED", parts={"data": data})), "utf-8")
    with Browser() as browser:
        result = browser.open(page.as_uri(), CHART_CHECK)
    assert result.errors == []
    assert result.check["problems"] == {}
    assert "missing-values" in result.check["charts"]

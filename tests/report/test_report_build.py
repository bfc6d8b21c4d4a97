"""The report's HTML from its inputs: the tuning chart from DescribeHyperParameterTuningJob and
DescribeTrainingJob shapes (botocore's sagemaker model names ``TuningJobArn``,
``FinalMetricDataList``, ``BestTrainingJob``), and a report whose run left nothing says so in
each section instead of drawing an empty chart."""

from __future__ import annotations

import re
from xml.etree import ElementTree

from mlstack.report.build import ReportInputs, render
from mlstack.report.sources import tuning_points

TUNING_ARN = "arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/t-1"


def _training(name: str, created: str, rmse: float, tuning: str | None = TUNING_ARN) -> dict:
    job = {
        "TrainingJobName": name,
        "CreationTime": created,
        "FinalMetricDataList": [{"MetricName": "validation:rmse", "Value": rmse}],
    }
    if tuning:
        job["TuningJobArn"] = tuning
    return job


def test_tuning_points_are_the_tuning_jobs_training_jobs_in_creation_order_best_marked() -> None:
    tuning = {
        "t-1": {
            "HyperParameterTuningJobArn": TUNING_ARN,
            "HyperParameterTuningJobConfig": {
                "HyperParameterTuningJobObjective": {
                    "Type": "Minimize",
                    "MetricName": "validation:rmse",
                }
            },
            "BestTrainingJob": {"TrainingJobName": "t-1-002"},
        }
    }
    training = {
        "t-1-002": _training("t-1-002", "2026-12-07T12:00:02", 0.1),
        "t-1-001": _training("t-1-001", "2026-12-07T12:00:01", 0.3),
        "other": _training("other", "2026-12-07T11:00:00", 0.01, tuning=None),
    }
    objective, points = tuning_points(tuning, training)
    assert objective == "validation:rmse"
    assert points == [
        {"name": "t-1-001", "value": 0.3, "best": False},
        {"name": "t-1-002", "value": 0.1, "best": True},
    ]
    html = render(ReportInputs("r", "dev", "SUCCEEDED", tuning=points, tuning_objective=objective))
    chart = re.search(r'<figure class="chart" data-chart="tuning">.*?</figure>', html, re.S)
    assert chart is not None
    svg = ElementTree.fromstring(re.search(r"<svg .*</svg>", chart.group(0), re.S).group(0))
    drawn = {
        group.get("id"): len(group.findall(".//{http://www.w3.org/2000/svg}use"))
        for group in svg.iter("{http://www.w3.org/2000/svg}g")
        if group.get("id") in ("marks-0", "best")
    }
    assert drawn == {"marks-0": 2, "best": 1}  # a point for each of the two jobs; the best ringed


def test_a_run_that_left_nothing_says_so_in_every_section() -> None:
    html = render(ReportInputs("r", "dev", "FAILED", error="States.TaskFailed: boom"))
    assert "<figure" not in html
    for said in (
        "No execution history.",
        "No per-round metrics",
        "No report_parts.json",
        "No feature importance",
        "No decisions",
    ):
        assert said in html, said
    assert "States.TaskFailed: boom" in html


# The data part as evaluate writes it from the prepare run of
# tests/training/test_training_prepare.py::test_missing_values_are_counted_per_feature_over_the_
# written_rows (counted by hand there: 40 written rows, colour 4 missing, size 4, weight none).
DATA = {
    "test_rows": 6,
    "rows": {"train": 28, "validation": 6, "test": 6, "rejected": 2},
    "class_balance": {"a": 3, "b": 3},
}


def _data_section(data: dict) -> str:
    html = render(ReportInputs("r", "dev", "SUCCEEDED", parts={"data": data}))
    found = re.search(r"<section><h2>Data</h2>.*?</section>", html)
    assert found is not None
    return found.group(0)


def test_the_data_section_shows_missing_values_per_column_with_their_share() -> None:
    section = _data_section({**DATA, "missing": {"weight": 0, "size": 4, "colour": 4}})
    assert '<figure class="chart" data-chart="missing-values">' in section
    table = re.search(r'<table class="missing-values">.*?</table>', section)
    assert table is not None
    cells = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", table.group(0))
    # most first (ties in the schema's order), 4 of 40 written rows is 10 %; weight has none
    assert cells == [("size", "4", "10 %"), ("colour", "4", "10 %")]
    assert "2 of 3 feature columns have missing values of 40 rows" in section


def test_the_data_section_says_when_no_column_misses_a_value() -> None:
    section = _data_section({**DATA, "missing": {"colour": 0, "size": 0}})
    assert "No missing values in any of the 2 feature columns." in section
    assert 'data-chart="missing-values"' not in section


def test_the_data_section_says_when_the_schema_does_not_count_missing_values() -> None:
    section = _data_section(DATA)  # a model prepared before the counts
    assert "does not count them" in section
    assert 'data-chart="missing-values"' not in section
    assert 'data-chart="rows"' in section  # the rest of the section is still drawn

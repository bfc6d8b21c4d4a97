"""Real `train` output read through every regex of the image contract's metric definitions (what
the training job declares, so SageMaker graphs and tunes on these metrics)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.training.conftest import (
    CONTRACT,
    Job,
    assert_succeeded,
    csv_bytes,
    reference_data,
)

DEFINITIONS = json.loads(CONTRACT.read_text())["metric_definitions"]


def run_with_metrics(job: Job, labels_for, **hyper) -> list[str]:
    X, y = reference_data(600, seed=13)
    X_val, y_val = reference_data(200, seed=14)
    job.hyperparameters(num_round=3, **hyper)
    job.channels(train={"ContentType": "text/csv"}, validation={"ContentType": "text/csv"})
    job.file("train", "train.csv", csv_bytes(X, labels_for(X, y)))
    job.file("validation", "validation.csv", csv_bytes(X_val, labels_for(X_val, y_val)))
    result = job.run()
    assert_succeeded(result, job)
    return [line for line in result.stdout.splitlines() if line.startswith("[")]


@pytest.fixture(scope="module")
def log_lines(tmp_path_factory) -> list[str]:
    def job() -> Job:
        return Job(tmp_path_factory.mktemp("metrics") / "opt_ml")

    binary = run_with_metrics(
        job(),
        lambda X, y: y,
        objective="binary:logistic",
        eval_metric="rmse,rmsle,mae,mape,logloss,error,auc,aucpr",  # mape: inf (zero labels)
    )
    multi = run_with_metrics(
        job(),
        lambda X, y: y + (X[:, 0] > 50),  # three classes
        objective="multi:softprob",
        num_class=3,
        eval_metric="merror,mlogloss",
    )
    counts = run_with_metrics(
        job(),
        lambda X, y: 1 + np.floor(X[:, 1] / 40),
        objective="count:poisson",
        eval_metric="poisson-nloglik,mape",
    )
    return binary + multi + counts


def printed_values(line: str) -> dict[str, float]:
    """{"train:rmse": 0.36, ...} from `[3]\\ttrain-rmse:0.36\\tvalidation-rmse:0.37`."""
    values = {}
    for field in line.split("\t")[1:]:
        key, value = field.rsplit(":", 1)
        channel, metric = key.split("-", 1)
        values[f"{channel}:{metric}"] = float(value)
    return values


def test_definitions_follow_the_sagemaker_schema():
    assert 0 < len(DEFINITIONS) <= 40  # SageMaker's limit per training job
    names = [d["Name"] for d in DEFINITIONS]
    assert len(set(names)) == len(names)
    for definition in DEFINITIONS:
        assert set(definition) == {"Name", "Regex"}
        assert re.compile(definition["Regex"]).groups == 1


@pytest.mark.parametrize("definition", DEFINITIONS, ids=[d["Name"] for d in DEFINITIONS])
@pytest.mark.parametrize("cloudwatch", [False, True], ids=["stdout", "cloudwatch"])
def test_every_regex_reads_its_metric_from_real_output(log_lines, definition, cloudwatch):
    regex = re.compile(definition["Regex"])
    matched = 0
    for line in log_lines:
        # CloudWatch Logs shows tab characters as "#011".
        shown = line.replace("\t", "#011") if cloudwatch else line
        match = regex.match(shown)
        expected = printed_values(line).get(definition["Name"])
        if expected is None or not np.isfinite(expected):
            # Never fooled by a metric whose name contains this one (logloss in mlogloss); an
            # infinite value is no data point.
            assert match is None, f"{definition['Name']} matched {line!r}"
            continue
        assert match is not None, f"{definition['Name']} did not match {shown!r}"
        assert float(match.group(1)) == pytest.approx(expected)
        matched += 1
    assert matched == 3  # one line per round, in the run that computes this metric

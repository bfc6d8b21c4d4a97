"""The ``baseline`` program, run as SageMaker Processing runs it: statistics.json and
constraints.json in Model Monitor's documented formats, with hand-computed values."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlstack_containers.baseline.stats import kll_levels

from tests import programs

REPO = Path(__file__).resolve().parents[2]
BASELINE = REPO / "containers" / "training" / "baseline"

NUMBER = {"type": "number"}
COUNT = {"type": "integer", "minimum": 0}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required if required is not None else list(properties),
    }


# The shapes AWS documents, transcribed by hand from "Schema for Statistics (statistics.json
# file)" (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-statistics.html)
# and "Schema for Constraints (constraints.json file)"
# (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-constraints.html).
BUCKET = _object({"lower_bound": NUMBER, "upper_bound": NUMBER, "count": COUNT})
SKETCH = _object(
    {
        "parameters": _object({"c": NUMBER, "k": NUMBER}),
        "data": {"type": "array", "items": {"type": "array", "items": NUMBER}},
    }
)
KLL = _object({"buckets": {"type": "array", "items": BUCKET}, "sketch": SKETCH})
NUMERICAL_STATISTICS = _object(
    {
        "common": _object({"num_present": COUNT, "num_missing": COUNT}),
        "mean": NUMBER,
        "sum": NUMBER,
        "std_dev": NUMBER,
        "min": NUMBER,
        "max": NUMBER,
        "distribution": _object({"kll": KLL}),
    }
)
STATISTICS_SCHEMA = _object(
    {
        "version": {"const": 0},
        "dataset": _object({"item_count": COUNT}),
        "features": {
            "type": "array",
            "items": _object(
                {
                    "name": {"type": "string"},
                    "inferred_type": {"enum": ["Fractional", "Integral"]},
                    "numerical_statistics": NUMERICAL_STATISTICS,
                }
            ),
        },
    }
)
ENABLED = {"enum": ["Enabled", "Disabled"]}
CONSTRAINTS_SCHEMA = _object(
    {
        "version": {"const": 0},
        "features": {
            "type": "array",
            "items": _object(
                {
                    "name": {"type": "string"},
                    "inferred_type": {"enum": ["Integral", "Fractional", "String", "Unknown"]},
                    "completeness": {"type": "number", "minimum": 0, "maximum": 1},
                    "num_constraints": _object({"is_non_negative": {"type": "boolean"}}),
                },
                required=["name", "inferred_type", "completeness"],
            ),
        },
        "monitoring_config": _object(
            {
                "evaluate_constraints": ENABLED,
                "emit_metrics": ENABLED,
                "datatype_check_threshold": NUMBER,
                "domain_content_threshold": NUMBER,
                "distribution_constraints": _object(
                    {
                        "perform_comparison": ENABLED,
                        "comparison_threshold": NUMBER,
                        "comparison_method": {"enum": ["Simple", "Robust"]},
                        "categorical_comparison_threshold": NUMBER,
                        "categorical_drift_method": {"enum": ["LInfinity", "ChiSquared"]},
                    }
                ),
            }
        ),
    }
)


def run_baseline(base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    return programs.run(BASELINE, args, env=env, timeout=120)


def train_channel(base: Path, files: dict[str, str]) -> Path:
    root = base / "processing" / "input" / "train"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def read_pair(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        json.loads((out / "statistics.json").read_text()),
        json.loads((out / "constraints.json").read_text()),
    )


def outputs(base: Path, name: str = "baseline") -> tuple[dict[str, Any], dict[str, Any]]:
    return read_pair(base / "processing" / "output" / name)


# Two shards (as the seeder writes them): label, then two features; one missing value.
SHARDS = {
    "run/train/part-00000.csv": "1,2,0.5\n0,4,1.5\n",
    "run/train/part-00001.csv": "1,,2.5\n0,6,-1.0\n",
}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    base = tmp_path_factory.mktemp("opt_ml")
    train_channel(base, SHARDS)
    result = run_baseline(base)
    assert result.returncode == 0, result.stdout + result.stderr
    return outputs(base)


def test_statistics_match_the_documented_schema(baseline):
    jsonschema.validate(baseline[0], STATISTICS_SCHEMA)


def test_constraints_match_the_documented_schema(baseline):
    jsonschema.validate(baseline[1], CONSTRAINTS_SCHEMA)


def test_dataset_counts_every_row_of_every_shard(baseline):
    assert baseline[0]["dataset"] == {"item_count": 4}


def test_features_are_named_as_the_endpoint_receives_them_label_dropped(baseline):
    assert [f["name"] for f in baseline[0]["features"]] == ["_c0", "_c1"]
    assert [f["name"] for f in baseline[1]["features"]] == ["_c0", "_c1"]


def test_integral_feature_statistics_by_hand(baseline):
    c0 = baseline[0]["features"][0]
    assert c0["inferred_type"] == "Integral"
    stats = c0["numerical_statistics"]
    assert stats["common"] == {"num_present": 3, "num_missing": 1}
    assert stats["sum"] == 12 and stats["min"] == 2 and stats["max"] == 6
    assert stats["mean"] == 4.0
    # Population standard deviation of 2, 4, 6: sqrt((4 + 0 + 4) / 3).
    assert stats["std_dev"] == pytest.approx(math.sqrt(8 / 3))
    kll = stats["distribution"]["kll"]
    assert [b["count"] for b in kll["buckets"]] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert kll["buckets"][0]["lower_bound"] == 2 and kll["buckets"][-1]["upper_bound"] == 6
    assert kll["sketch"]["data"] == [[2, 4, 6]]


def test_fractional_feature_statistics_by_hand(baseline):
    c1 = baseline[0]["features"][1]
    assert c1["inferred_type"] == "Fractional"
    stats = c1["numerical_statistics"]
    assert stats["common"] == {"num_present": 4, "num_missing": 0}
    assert stats["sum"] == pytest.approx(3.5)
    assert stats["mean"] == pytest.approx(0.875)
    # Deviations -0.375, 0.625, 1.625, -1.875: squares sum to 6.6875.
    assert stats["std_dev"] == pytest.approx(math.sqrt(6.6875 / 4))
    assert (stats["min"], stats["max"]) == (-1.0, 2.5)


def test_constraints_by_hand(baseline):
    c0, c1 = baseline[1]["features"]
    assert c0 == {
        "name": "_c0",
        "inferred_type": "Integral",
        "completeness": 0.75,
        "num_constraints": {"is_non_negative": True},
    }
    assert c1["completeness"] == 1.0
    assert c1["num_constraints"] == {"is_non_negative": False}
    config = baseline[1]["monitoring_config"]
    assert config["distribution_constraints"]["comparison_threshold"] == 0.1


def test_label_first_keeps_the_label_as_c0_ahead_of_the_features(tmp_path):
    # Model Monitor puts a captured prediction first ("Create a Baseline": the prediction/output
    # columns are assumed to be the first columns of the training dataset).
    train_channel(tmp_path, SHARDS)
    result = run_baseline(tmp_path, "--label", "first")
    assert result.returncode == 0, result.stderr
    stats, constraints = outputs(tmp_path)
    assert [f["name"] for f in stats["features"]] == ["_c0", "_c1", "_c2"]
    label = stats["features"][0]
    assert label["inferred_type"] == "Integral"
    assert label["numerical_statistics"]["sum"] == 2  # labels 1, 0, 1, 0
    assert stats["features"][1]["numerical_statistics"]["sum"] == 12  # the first feature
    assert [f["completeness"] for f in constraints["features"]] == [1.0, 0.75, 1.0]
    jsonschema.validate(stats, STATISTICS_SCHEMA)


def test_every_output_directory_gets_both_files_and_the_threshold_is_an_argument(tmp_path):
    train_channel(tmp_path, SHARDS)
    absolute = tmp_path / "elsewhere"
    result = run_baseline(
        tmp_path,
        "--output",
        "run",  # relative: under processing/output, a ProcessingOutput's LocalPath
        "--output",
        str(absolute),
        "--comparison-threshold",
        "0.25",
    )
    assert result.returncode == 0, result.stderr
    assert outputs(tmp_path, "run") == read_pair(absolute)
    threshold = outputs(tmp_path, "run")[1]["monitoring_config"]["distribution_constraints"]
    assert threshold["comparison_threshold"] == 0.25


@pytest.mark.parametrize(
    ("files", "args", "expected"),
    [
        ({"a.csv": "1,2,x\n"}, (), "a.csv line 1 column 3: 'x' is not a number"),
        ({"a.csv": "1,2,3\n0,4\n"}, (), "a.csv line 2: 2 columns; expected 3 like the first row"),
        ({"a.csv": "1\n"}, (), "a.csv line 1: 1 column"),
        ({"a.csv": "\n\n"}, (), "the input files hold no rows"),
        ({}, (), "no input files"),
        ({"a.csv": "1,inf\n"}, (), "is not a finite number"),
        ({"a.csv": "1,2\n"}, ("--comparison-threshold", "2"), "--comparison-threshold 2.0"),
        ({"a.csv": "1,2\n"}, ("--bogus",), "bad arguments"),
        ({"a.csv": "1,2\n"}, ("--label", "last"), "argument --label: invalid choice: 'last'"),
    ],
)
def test_bad_input_fails_with_a_message_for_processing(tmp_path, files, args, expected):
    root = tmp_path / "processing" / "input" / "train"
    root.mkdir(parents=True)
    train_channel(tmp_path, files)
    result = run_baseline(tmp_path, *args)
    assert result.returncode == 1
    # ExitMessage of DescribeProcessingJob ("Save and Access Metadata Information About Your
    # Processing Job"), and the failure file our training program writes too.
    message = (tmp_path / "output" / "message").read_text()
    assert expected in message
    assert (tmp_path / "output" / "failure").read_text() == message
    assert not (tmp_path / "processing" / "output" / "baseline").exists()


def test_a_missing_input_directory_fails_naming_it(tmp_path):
    result = run_baseline(tmp_path)
    assert result.returncode == 1
    assert "processing/input/train does not exist" in (tmp_path / "output" / "message").read_text()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=9000))
def test_kll_sketch_weights_add_up_to_the_present_values(values):
    ordered = sorted(values)
    levels = kll_levels(ordered, k=64)
    assert sum(len(items) << level for level, items in enumerate(levels)) == len(ordered)
    assert all(len(items) <= 64 for items in levels)
    flat = [v for items in levels for v in items]
    assert set(flat) <= set(ordered)


def test_statistics_agree_with_numpy_on_a_larger_dataset(tmp_path):
    rng = np.random.default_rng(7)
    X = rng.uniform(-50, 50, (5000, 3))
    lines = "".join(
        f"{i % 2}," + ",".join(repr(float(v)) for v in row) + "\n" for i, row in enumerate(X)
    )
    train_channel(tmp_path, {"train.csv": lines})
    result = run_baseline(tmp_path)
    assert result.returncode == 0, result.stderr
    stats, _ = outputs(tmp_path)
    jsonschema.validate(stats, STATISTICS_SCHEMA)
    for column, feature in zip(X.T, stats["features"], strict=True):
        numeric = feature["numerical_statistics"]
        assert numeric["mean"] == pytest.approx(column.mean())
        assert numeric["std_dev"] == pytest.approx(column.std())  # numpy's default: population
        assert numeric["sum"] == pytest.approx(column.sum())
        assert sum(b["count"] for b in numeric["distribution"]["kll"]["buckets"]) == 5000


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_the_images_put_baseline_on_path_for_processing_jobs(dockerfile):
    # Processing runs `baseline` as ContainerEntrypoint ("How Amazon SageMaker Processing Runs
    # Your Processing Container Image"): it must be on the image's PATH, executable in git.
    lines = (REPO / "containers" / "training" / dockerfile).read_text().splitlines()
    assert "COPY training/baseline /usr/local/bin/baseline" in lines
    mode = subprocess.run(
        ["git", "ls-files", "-s", "containers/training/baseline"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert mode and mode[0] == "100755"

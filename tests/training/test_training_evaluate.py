"""The ``evaluate`` program, run as a Processing job runs it: inputs under
/opt/ml/processing/input, evaluation.json under /opt/ml/processing/output/evaluation, the summary
or the failure reason in /opt/ml/output/message.

Expected values are computed by hand in the comments (scikit-learn is no dependency), and the
binary example is the one of SageMaker's "Model quality metrics" page
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-model-quality-metrics.html).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlstack_containers import evaluation
from mlstack_containers.paths import MESSAGE_LIMIT, SageMakerPaths

from mlstack import rules
from tests import programs
from tests.training.conftest import REPO

EVALUATE = REPO / "containers" / "training" / "evaluate"


def model_archive(objective: str, *, metadata: bool = True) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        files = {"xgboost-model": b"{}"}
        if metadata:
            files["mlstack-model.json"] = json.dumps({"objective": objective}).encode()
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def lines(values) -> bytes:
    return "".join(f"{v}\n" for v in values).encode()


def processing_tree(
    base: Path,
    objective: str,
    shards: dict[str, tuple[list, list]],
    *,
    metadata: bool = True,
) -> Path:
    """An /opt/ml tree: labels/<shard>, predictions/<shard>.out, model/model.tar.gz."""
    inputs = base / "processing" / "input"
    for name, (labels, scores) in shards.items():
        for folder, file, values in (
            ("labels", name, labels),
            ("predictions", name + ".out", scores),
        ):
            path = inputs / folder / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(values if isinstance(values, bytes) else lines(values))
    (inputs / "model").mkdir(parents=True, exist_ok=True)
    (inputs / "model" / "model.tar.gz").write_bytes(model_archive(objective, metadata=metadata))
    return base


def run_program(base: Path) -> subprocess.CompletedProcess[str]:
    env = {"SAGEMAKER_BASE_DIR": str(base), "PATH": "/usr/bin:/bin"}
    return programs.run(EVALUATE, env=env, timeout=60)


def report(base: Path) -> dict:
    return json.loads((base / "processing/output/evaluation/evaluation.json").read_text())


def message(base: Path) -> str:
    return (base / "output" / "message").read_text()


# --- the documented example and hand-computed cases ---------------------------------------------


def test_binary_example_of_the_model_quality_metrics_page(tmp_path: Path) -> None:
    # The page's confusion matrix {"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}}: one true
    # negative, two false positives, one true positive; recall 1.0, precision 1/3, accuracy 0.5.
    base = processing_tree(
        tmp_path, "reg:logistic", {"part-00000.csv": ([0, 0, 0, 1], [0.2, 0.7, 0.9, 0.8])}
    )
    result = run_program(base)
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = report(base)["binary_classification_metrics"]
    assert metrics["confusion_matrix"] == {"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}}
    value = {k: v["value"] for k, v in metrics.items() if k != "confusion_matrix"}
    assert value["recall"] == 1.0
    assert value["precision"] == pytest.approx(0.3333333333333333)
    assert value["accuracy"] == 0.5
    assert value["true_positive_rate"] == 1.0
    assert value["true_negative_rate"] == pytest.approx(0.33333333333333337)
    assert value["false_positive_rate"] == pytest.approx(0.6666666666666666)
    assert value["false_negative_rate"] == 0.0
    # F1 = 2TP / (2TP + FP + FN) = 2 / 4.
    assert value["f1"] == 0.5
    # AUC: the positive (0.8) scores above 2 of the 3 negatives (0.2, 0.7; not 0.9).
    assert value["auc"] == pytest.approx(2 / 3)
    # Log loss: -(ln 0.8 + ln 0.3 + ln 0.1 + ln 0.8) / 4 = 3.95284499 / 4.
    assert value["log_loss"] == pytest.approx(0.98821125, abs=1e-8)
    # Fewer than 200 rows: no standard deviation, written "NaN" as on the page.
    assert {v["standard_deviation"] for k, v in metrics.items() if k != "confusion_matrix"} == {
        "NaN"
    }
    summary = json.loads(message(base))
    assert summary["problem_type"] == "binary" and summary["rows"] == 4
    assert summary["metrics"] == value
    assert not (base / "output" / "failure").exists()


def test_ties_count_half_in_auc_and_the_threshold_is_strict(tmp_path: Path) -> None:
    # Positives 0.5 and 0.9, negatives 0.5 and 0.1: pairs (0.5, 0.5) tie = 1/2, the other three
    # are won: AUC = 3.5 / 4. A score of exactly 0.5 is not above the threshold: TP 1, FN 1,
    # TN 2, FP 0 -> accuracy 3/4, precision 1, recall 1/2, F1 = 2 / (2 + 0 + 1).
    base = processing_tree(
        tmp_path, "binary:logistic", {"part-00000.csv": ([0, 1, 0, 1], [0.5, 0.5, 0.1, 0.9])}
    )
    assert run_program(base).returncode == 0
    metrics = json.loads(message(base))["metrics"]
    assert metrics["auc"] == 0.875
    assert (metrics["accuracy"], metrics["precision"], metrics["recall"]) == (0.75, 1.0, 0.5)
    assert metrics["f1"] == pytest.approx(2 / 3)


def test_regression_metrics_by_hand(tmp_path: Path) -> None:
    # Errors 0.5, 0, -1, 1: MSE = 2.25 / 4, RMSE 0.75, MAE 2.5 / 4; labels' mean 2.5, total sum
    # of squares 5, R2 = 1 - 2.25 / 5.
    base = processing_tree(
        tmp_path, "reg:squarederror", {"part-00000.csv": ([1, 2, 3, 4], [1.5, 2, 2, 5])}
    )
    assert run_program(base).returncode == 0
    metrics = report(base)["regression_metrics"]
    assert {k: v["value"] for k, v in metrics.items()} == pytest.approx(
        {"mse": 0.5625, "rmse": 0.75, "mae": 0.625, "r2": 0.55}
    )
    assert json.loads(message(base))["problem_type"] == "regression"


def test_shards_pair_by_name_whatever_the_order_of_the_files(tmp_path: Path) -> None:
    # The regression case above, split over two shards (and a folder, as S3 keys may be).
    base = processing_tree(
        tmp_path,
        "reg:squarederror",
        {"part-00001.csv": ([3, 4], [2, 5]), "a/part-00000.csv": ([1, 2], [1.5, 2])},
    )
    assert run_program(base).returncode == 0
    assert json.loads(message(base))["metrics"] == pytest.approx(
        {"mse": 0.5625, "rmse": 0.75, "mae": 0.625, "r2": 0.55}
    )


def test_logitraw_margins_become_probabilities(tmp_path: Path) -> None:
    # Margins 0 and 2: logistic(0) = 0.5 (not above the threshold), logistic(2) = 0.8808.
    base = processing_tree(tmp_path, "binary:logitraw", {"p.csv": ([0, 1], [0.0, 2.0])})
    assert run_program(base).returncode == 0
    metrics = json.loads(message(base))["metrics"]
    assert metrics["accuracy"] == 1.0
    assert metrics["log_loss"] == pytest.approx(
        -(math.log(0.5) + math.log(1 / (1 + math.exp(-2)))) / 2
    )


def test_undefined_metrics_are_left_out(tmp_path: Path) -> None:
    # One class only: no AUC; no positive prediction: no precision; constant labels: no R2.
    base = processing_tree(tmp_path / "b", "reg:logistic", {"p.csv": ([0, 0], [0.1, 0.2])})
    assert run_program(base).returncode == 0
    metrics = json.loads(message(base))["metrics"]
    assert "auc" not in metrics and "precision" not in metrics and "recall" not in metrics
    assert metrics["accuracy"] == 1.0
    base = processing_tree(tmp_path / "r", "reg:squarederror", {"p.csv": ([2, 2], [1, 3])})
    assert run_program(base).returncode == 0
    assert set(json.loads(message(base))["metrics"]) == {"mse", "rmse", "mae"}


def test_standard_deviation_over_samples_from_200_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    scores = np.clip(labels * 0.6 + rng.uniform(0, 0.4, 400), 0, 1)
    base = processing_tree(
        tmp_path, "binary:logistic", {"p.csv": (labels.tolist(), scores.tolist())}
    )
    assert run_program(base).returncode == 0
    metrics = report(base)["binary_classification_metrics"]
    std = metrics["log_loss"]["standard_deviation"]
    assert isinstance(std, float) and 0 < std < 0.1


# --- bad input: the reason in message and failure, exit 1 -------------------------------------


@pytest.mark.parametrize(
    ("objective", "shards", "expected"),
    [
        (
            "reg:logistic",
            {"part-00000.csv": ([0, 1, 1], [0.1, 0.9])},
            "shard part-00000.csv: 2 predictions for 3 labels",
        ),
        (
            "reg:logistic",
            {"part-00000.csv": ([0, 1], b"0.1\nabc\n")},
            "predictions part-00000.csv.out line 2: 'abc' is not a finite number",
        ),
        (
            "reg:logistic",
            {"part-00000.csv": ([0, 1], b"0.1\nnan\n")},
            "line 2: 'nan' is not a finite number",
        ),
        (
            "reg:logistic",
            {"part-00000.csv": ([0, 2], [0.1, 0.9])},
            "label 2 (row 2 in shard order) is not 0 or 1",
        ),
        (
            "binary:logistic",
            {"part-00000.csv": ([0, 1], [0.1, 1.5])},
            "score 1.5 (row 2 in shard order) is outside [0, 1]",
        ),
        (
            "rank:pairwise",
            {"part-00000.csv": ([0, 1], [0, 1])},
            "training objective 'rank:pairwise' is neither binary classification",
        ),
        ("reg:squarederror", {"part-00000.csv": ([], [])}, "the label files hold no rows"),
    ],
)
def test_bad_input_fails_with_a_reason(tmp_path: Path, objective, shards, expected) -> None:
    base = processing_tree(tmp_path, objective, shards)
    result = run_program(base)
    assert result.returncode == 1, result.stdout
    assert expected in message(base)
    assert (base / "output" / "failure").read_text() == message(base)
    assert not (base / "processing/output/evaluation/evaluation.json").exists()


def test_a_shard_without_predictions_fails(tmp_path: Path) -> None:
    base = processing_tree(tmp_path, "reg:logistic", {"part-00000.csv": ([0], [0.1])})
    (base / "processing/input/labels/part-00001.csv").write_text("1\n")
    assert run_program(base).returncode == 1
    assert "shard part-00001.csv: no predictions/part-00001.csv.out" in message(base)


def test_predictions_without_labels_fail(tmp_path: Path) -> None:
    base = processing_tree(tmp_path, "reg:logistic", {"part-00000.csv": ([0], [0.1])})
    (base / "processing/input/predictions/extra.csv.out").write_text("0.3\n")
    assert run_program(base).returncode == 1
    assert "predictions extra.csv.out have no label file" in message(base)


def test_a_model_without_metadata_fails(tmp_path: Path) -> None:
    base = processing_tree(tmp_path, "reg:logistic", {"p.csv": ([0], [0.1])}, metadata=False)
    assert run_program(base).returncode == 1
    assert "model.tar.gz has no mlstack-model.json" in message(base)


def test_unexpected_arguments_fail(tmp_path: Path) -> None:
    env = {"SAGEMAKER_BASE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([str(EVALUATE), "train"], env=env, capture_output=True, check=False)
    assert result.returncode == 2
    assert "usage: evaluate" in (tmp_path / "output" / "failure").read_text()


# --- properties --------------------------------------------------------------------------------


def test_metric_names_are_the_ones_the_config_accepts() -> None:
    # mlstack.rules holds the names `deploy.metric` may give as evaluation:<name>.
    assert rules.EVALUATION_METRICS == {
        "binary": evaluation.BINARY_METRICS,
        "multiclass": evaluation.MULTICLASS_METRICS,
        "regression": evaluation.REGRESSION_METRICS,
    }


rows = st.lists(
    st.tuples(st.integers(0, 1), st.floats(0, 1, allow_nan=False)), min_size=1, max_size=300
)


@settings(max_examples=40, deadline=None)
@given(rows=rows, cuts=st.lists(st.integers(0, 300), max_size=4))
def test_binary_metrics_match_their_definitions_over_any_sharding(rows, cuts) -> None:
    labels = [label for label, _ in rows]
    scores = [score for _, score in rows]
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    shards = {
        f"part-{i:05d}.csv": (labels[a:b], scores[a:b])
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = processing_tree(Path(tmp), "reg:logistic", shards)
        result = evaluation.run(SageMakerPaths(base))
        summary = result.summary()
    # Independent definitions: accuracy as the share of rows whose side of 0.5 matches the
    # label; AUC as the share of (positive, negative) pairs ordered right, ties half.
    correct = sum((s > 0.5) == bool(y) for y, s in zip(labels, scores, strict=True))
    assert result.metrics["accuracy"] == pytest.approx(correct / len(rows))
    positives = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    negatives = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    if positives and negatives:
        won = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
        assert result.metrics["auc"] == pytest.approx(won / (len(positives) * len(negatives)))
    else:
        assert "auc" not in result.metrics
    for name, value in result.metrics.items():
        assert name in evaluation.BINARY_METRICS
        assert math.isfinite(value) and (name == "log_loss" or 0 <= value <= 1)
    assert len(summary.encode()) < MESSAGE_LIMIT
    assert json.loads(summary)["metrics"] == result.metrics


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.floats(-1e300, 1e300, allow_nan=False), st.floats(-1e300, 1e300, allow_nan=False)
        ),
        min_size=1,
        max_size=50,
    )
)
def test_regression_summary_fits_the_exit_message_for_any_values(pairs) -> None:
    labels = np.array([a for a, _ in pairs])
    scores = np.array([b for _, b in pairs])
    with np.errstate(over="ignore", invalid="ignore"):
        result = evaluation.evaluate("reg:squarederror", labels, scores)
    summary = result.summary()
    assert len(summary.encode()) < MESSAGE_LIMIT
    parsed = json.loads(summary)  # strict JSON: no NaN or Infinity reaches the workflow
    assert all(math.isfinite(v) for v in parsed["metrics"].values())
    json.dumps(result.report(), allow_nan=False)

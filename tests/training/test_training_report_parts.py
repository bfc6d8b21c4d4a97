"""``report_parts.json``, what ``evaluate`` writes beside evaluation.json for the run report, and
``train``'s per-round metrics in output/data.

Expected values come from scikit-learn (``roc_curve``, ``precision_recall_curve``,
``confusion_matrix``, ``precision_recall_fscore_support``) on the same labels and scores, and
from XGBoost's own ``evals_result`` and ``get_score`` on the same data: outside our code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st
from mlstack_containers import report_parts
from mlstack_containers.paths import SageMakerPaths
from sklearn import metrics as skm
from sklearn.datasets import load_wine

from tests.training.test_training_evaluate import processing_tree, run_program


def _binary_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.float64)
    # rounded scores: ties, which the curves must merge as scikit-learn does
    scores = np.round(np.clip(labels * 0.3 + rng.random(n) * 0.7, 0, 1), 2)
    return labels, scores


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 400), st.integers(0, 10_000))
def test_roc_curve_is_scikit_learns(n: int, seed: int) -> None:
    labels, scores = _binary_sample(n, seed)
    if len(set(labels)) < 2:
        labels[0], labels[1] = 0, 1
    fpr, tpr, thresholds = skm.roc_curve(labels, scores)
    ours = report_parts.roc_curve(labels, scores)
    np.testing.assert_allclose(ours["false_positive_rate"], fpr, rtol=1e-6)
    np.testing.assert_allclose(ours["true_positive_rate"], tpr, rtol=1e-6)
    np.testing.assert_allclose(ours["thresholds"][1:], thresholds[1:], rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 400), st.integers(0, 10_000))
def test_precision_recall_curve_is_scikit_learns(n: int, seed: int) -> None:
    labels, scores = _binary_sample(n, seed)
    if not labels.any():
        labels[0] = 1
    precision, recall, thresholds = skm.precision_recall_curve(labels, scores)
    ours = report_parts.precision_recall_curve(labels, scores)
    np.testing.assert_allclose(ours["precision"], precision, rtol=1e-6)
    np.testing.assert_allclose(ours["recall"], recall, rtol=1e-6)
    np.testing.assert_allclose(ours["thresholds"], thresholds, rtol=1e-6)


def test_per_class_precision_and_recall_are_scikit_learns() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 300)
    predicted = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 3, 300))
    predicted[predicted == 2] = 1  # class 2 never predicted: precision 0, as scikit-learn
    names = ("a", "b", "c")
    matrix = skm.confusion_matrix(labels, predicted, labels=[0, 1, 2])
    ours = report_parts.per_class(
        {names[i]: {names[j]: int(matrix[i, j]) for j in range(3)} for i in range(3)}
    )
    precision, recall, _, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=[0, 1, 2], zero_division=0
    )
    assert [ours[n]["precision"] for n in names] == pytest.approx(list(precision))
    assert [ours[n]["recall"] for n in names] == pytest.approx(list(recall))
    assert [ours[n]["support"] for n in names] == list(support)


def _trained_model(base: Path, X: np.ndarray, y: np.ndarray, params: dict) -> xgb.Booster:
    booster = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=8)
    model = base / "processing" / "input" / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    return booster


def _wine_schema(
    classes: list[str], features: list[str], rows: dict[str, int], missing: dict[str, int] | None
) -> str:
    counts = {} if missing is None else missing
    return json.dumps(
        {
            "schema_version": 1,
            "problem_type": "multiclass",
            "label": {"name": "cultivar", "type": "categorical", "classes": classes},
            "features": [
                {"name": name, "type": "numeric"}
                | ({"missing": counts[name]} if name in counts else {})
                for name in features
            ],
            "rows": rows,
        }
    )


def test_evaluate_writes_binary_parts_beside_the_report(tmp_path: Path) -> None:
    labels, scores = _binary_sample(300, 7)
    base = processing_tree(tmp_path, "binary:logistic", {"part-00000.csv": (labels, scores)})
    result = run_program(base)
    assert result.returncode == 0, result.stdout + result.stderr
    out = base / "processing" / "output" / "evaluation"
    parts = json.loads((out / report_parts.REPORT_PARTS_FILE).read_text())
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    precision, recall, _ = skm.precision_recall_curve(labels, scores)
    np.testing.assert_allclose(parts["roc"]["false_positive_rate"], fpr, rtol=1e-6)
    np.testing.assert_allclose(parts["roc"]["true_positive_rate"], tpr, rtol=1e-6)
    np.testing.assert_allclose(parts["precision_recall"]["precision"], precision, rtol=1e-6)
    np.testing.assert_allclose(parts["precision_recall"]["recall"], recall, rtol=1e-6)
    (tn, fp), (fn, tp) = skm.confusion_matrix(labels, scores > 0.5)
    assert parts["confusion_matrix"] == {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    assert parts["data"]["class_balance"] == {"0": int((labels == 0).sum()), "1": int(labels.sum())}
    # the test archive's xgboost-model is "{}": no importance, and the reason says why
    assert "XGBoost cannot read the model" in parts["importance"]["missing"]


# a schema from before features[].missing, and one that counts (hand-set counts: 3 in the first
# column, none in the others; at most the 356 written rows)
@pytest.mark.parametrize("counted", [False, True], ids=["schema-without-missing", "with-missing"])
def test_evaluate_writes_multiclass_parts_by_class_label_with_named_importance(
    tmp_path: Path, counted: bool
) -> None:
    wine = load_wine()  # scikit-learn's bundled UCI wine data: 3 cultivars, 13 features
    X, y = wine.data, wine.target.astype(np.float64)
    params = {"objective": "multi:softmax", "num_class": 3, "max_depth": 2}
    base = tmp_path
    booster = _trained_model(base, X, y, params)
    predicted = booster.predict(xgb.DMatrix(X))
    processing_tree(base, "multi:softmax", {"part-00000.csv": (y, predicted)})
    model = base / "processing" / "input" / "model"
    (model / "model.tar.gz").unlink()
    (model / "mlstack-model.json").write_text(json.dumps({"objective": "multi:softmax"}))
    classes = [str(name) for name in wine.target_names]
    rows = {"train": 178, "validation": 0, "test": 178, "rejected": 0}
    names = list(wine.feature_names)
    missing = {name: 3 if i == 0 else 0 for i, name in enumerate(names)} if counted else None
    (model / "schema.json").write_text(_wine_schema(classes, names, rows, missing))
    result = run_program(base)
    assert result.returncode == 0, result.stdout + result.stderr
    parts = json.loads(
        (base / "processing" / "output" / "evaluation" / report_parts.REPORT_PARTS_FILE).read_text()
    )
    matrix = skm.confusion_matrix(y, predicted)
    assert parts["confusion_matrix"] == {
        classes[i]: {classes[j]: int(matrix[i, j]) for j in range(3)} for i in range(3)
    }
    precision, recall, _, _ = skm.precision_recall_fscore_support(y, predicted, zero_division=0)
    assert [parts["per_class"][c]["precision"] for c in classes] == pytest.approx(list(precision))
    assert [parts["per_class"][c]["recall"] for c in classes] == pytest.approx(list(recall))
    gains = booster.get_score(importance_type="total_gain")
    expected = {wine.feature_names[int(k[1:])]: v for k, v in gains.items()}
    assert parts["importance"]["gain"] == pytest.approx(expected)
    assert list(parts["importance"]["gain"]) == sorted(expected, key=lambda k: -expected[k])
    assert parts["data"]["rows"] == rows
    if missing is None:
        assert "missing" not in parts["data"]
    else:
        assert parts["data"]["missing"] == missing
        assert list(parts["data"]["missing"]) == names  # the schema's feature order
    assert parts["data"]["class_balance"] == dict(
        zip(classes, np.bincount(wine.target).tolist(), strict=True)
    )


def test_evaluate_writes_regression_parts(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = rng.normal(10, 3, 1500).round(3)
    scores = (labels + rng.normal(0, 1, 1500)).round(3)
    base = processing_tree(tmp_path, "reg:squarederror", {"part-00000.csv": (labels, scores)})
    result = run_program(base)
    assert result.returncode == 0, result.stdout + result.stderr
    parts = json.loads(
        (base / "processing" / "output" / "evaluation" / report_parts.REPORT_PARTS_FILE).read_text()
    )
    counts, edges = np.histogram(scores - labels, bins=report_parts.HISTOGRAM_BINS)
    assert parts["residuals"]["counts"] == counts.tolist()
    np.testing.assert_allclose(parts["residuals"]["edges"], edges, rtol=1e-6)
    scatter = parts["predicted_vs_actual"]
    assert len(scatter["actual"]) == report_parts.SCATTER_POINTS and scatter["rows"] == 1500
    pairs = set(zip(labels.tolist(), scores.tolist(), strict=True))
    assert set(zip(scatter["actual"], scatter["predicted"], strict=True)) <= pairs
    assert "class_balance" not in parts["data"]


def test_train_keeps_every_hosts_metrics_per_round(tmp_path: Path) -> None:
    from mlstack_containers.training import runner
    from mlstack_containers.training.config import Cluster

    X, y = load_wine(return_X_y=True)
    evals: dict = {}
    params = {"objective": "multi:softprob", "num_class": 3, "eval_metric": "mlogloss"}
    dtrain = xgb.DMatrix(X, label=y)
    xgb.train(params, dtrain, 4, evals=[(dtrain, "train")], evals_result=evals, verbose_eval=False)
    paths = SageMakerPaths(tmp_path)
    cluster = Cluster(hosts=("algo-1", "algo-2"), current_host="algo-2")
    written = runner.write_round_metrics(
        paths, cluster, runner.Result(xgb.Booster(), resumed_from=2, rounds=evals)
    )
    assert written == tmp_path / "output" / "data" / "metrics-algo-2.json"
    document = json.loads(written.read_text())
    assert document["host"] == "algo-2" and document["first_round"] == 2
    assert document["metrics"]["train"]["mlogloss"] == pytest.approx(evals["train"]["mlogloss"])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 1.0]), st.floats(0, 1, allow_nan=False)),
        min_size=1,
        max_size=50,
    )
)
def test_binary_parts_of_any_labels_have_curves_exactly_when_both_classes_are_there(
    rows: list[tuple[float, float]],
) -> None:
    labels = np.array([label for label, _ in rows])
    scores = np.array([score for _, score in rows])
    parts = report_parts.report_parts(
        "binary",
        labels,
        scores,
        confusion_matrix=None,
        classes=(),
        feature_names=[],
        rows=None,
        model_dir=Path("/nonexistent"),
    )
    both = len(set(labels.tolist())) == 2
    assert ("roc" in parts) == both and ("precision_recall" in parts) == both
    if both:
        np.testing.assert_allclose(
            parts["roc"]["true_positive_rate"], skm.roc_curve(labels, scores)[1], rtol=1e-6
        )
    json.dumps(parts, allow_nan=False)  # every value is plain JSON

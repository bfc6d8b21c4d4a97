"""The run report's parts that ``evaluate`` can compute, written beside ``evaluation.json`` as
``report_parts.json`` (docs/evaluation.md, "Report parts").

Numbers only, no pictures: the report is drawn where it is read (``mlstack report``, a local
run), so the training image carries no plotting library. By problem type:

* binary (both classes among the labels: else neither curve is defined, as AUC is not): the
  ROC curve (false and true positive rates at each distinct score, the points that
  are not corners dropped, as scikit-learn's ``roc_curve`` does by default), the precision-recall
  curve (``precision_recall_curve``: recall falling, ending at precision 1, recall 0) and the
  confusion matrix at the metrics' threshold;
* multiclass: the confusion matrix by class label and each class's precision, recall and support;
* regression: predicted against actual (at most :data:`SCATTER_POINTS` rows, a fixed sample) and
  the residuals' histogram (:data:`HISTOGRAM_BINS` equal bins).

Besides: the feature importance (XGBoost's total ``gain`` per feature, named from the model's
``schema.json`` when it has one, else ``f0``, ``f1``, ...), and the data (rows per split and
missing values per feature from the schema, the test labels' class balance).
"""

from __future__ import annotations

import math
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

REPORT_PARTS_FILE = "report_parts.json"
PARTS_VERSION = 1
SCATTER_POINTS = 1000
HISTOGRAM_BINS = 30


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    """False and true positive rates from the highest score down, starting at (0, 0); a point
    on a straight segment between its neighbours is dropped."""
    fps, tps, thresholds = _cumulative(labels, scores)
    if len(fps) > 2:
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps = np.r_[0, fps], np.r_[0, tps]
    return {
        "false_positive_rate": _rounded(fps / fps[-1]),
        "true_positive_rate": _rounded(tps / tps[-1]),
        "thresholds": _rounded(np.r_[math.inf, thresholds]),
    }


def precision_recall_curve(labels: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    """Precision and recall at each distinct score, recall falling, then (1, 0)."""
    fps, tps, thresholds = _cumulative(labels, scores)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return {
        "precision": _rounded(np.r_[precision[::-1], 1.0]),
        "recall": _rounded(np.r_[recall[::-1], 0.0]),
        "thresholds": _rounded(thresholds[::-1]),
    }


def _cumulative(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """False and true positives counted above each distinct score, highest score first."""
    order = np.argsort(-scores, kind="mergesort")
    ordered_scores, ordered_labels = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(ordered_scores)), len(ordered_scores) - 1]
    tps = np.cumsum(ordered_labels == 1)[last].astype(np.float64)
    fps = (1 + last - tps).astype(np.float64)
    return fps, tps, ordered_scores[last]


def per_class(matrix: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Each class's precision (0 when never predicted), recall (0 without a label of it: both as
    scikit-learn's ``zero_division=0``) and support, from the confusion matrix
    ``{actual: {predicted: count}}``."""
    out = {}
    for label, row in matrix.items():
        hits = row.get(label, 0)
        support = sum(row.values())
        said = sum(other.get(label, 0) for other in matrix.values())
        out[label] = {
            "precision": hits / said if said else 0.0,
            "recall": hits / support if support else 0.0,
            "support": support,
        }
    return out


def regression_parts(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """A fixed sample of (actual, predicted) and the residuals' histogram."""
    index = np.arange(len(labels))
    if len(index) > SCATTER_POINTS:
        index = np.sort(np.random.default_rng(0).choice(len(labels), SCATTER_POINTS, False))
    residuals = scores - labels
    counts, edges = np.histogram(residuals, bins=HISTOGRAM_BINS)
    return {
        "predicted_vs_actual": {
            "actual": _rounded(labels[index]),
            "predicted": _rounded(scores[index]),
            "rows": len(labels),
        },
        "residuals": {"edges": _rounded(edges), "counts": [int(c) for c in counts]},
    }


def class_balance(labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, int]:
    """Test rows per class label (binary without a schema: "0" and "1")."""
    names = classes or ("0", "1")
    return {name: int(np.sum(labels == i)) for i, name in enumerate(names)}


def importance(model_dir: Path, feature_names: list[str]) -> dict[str, float] | str:
    """Total gain per feature name, largest first; or why there is none (a string)."""
    try:
        import xgboost as xgb
    except ImportError:  # the inference image has no evaluate; a developer machine may lack it
        return "xgboost is not installed where evaluate ran"
    raw = _model_bytes(model_dir)
    if raw is None:
        return "the model artifact has no xgboost-model file"
    try:
        booster = xgb.Booster()
        booster.load_model(bytearray(raw))
        gains = booster.get_score(importance_type="total_gain")
    except (xgb.core.XGBoostError, ValueError) as exc:
        return f"XGBoost cannot read the model: {str(exc).splitlines()[0][:200]}"
    named = {_feature_name(key, feature_names): float(value) for key, value in gains.items()}
    return dict(sorted(named.items(), key=lambda kv: -kv[1]))


def _feature_name(key: str, names: list[str]) -> str:
    if key.startswith("f") and key[1:].isdigit() and int(key[1:]) < len(names):
        return names[int(key[1:])]
    return key


def _model_bytes(model_dir: Path, name: str = "xgboost-model") -> bytes | None:
    loose = sorted(model_dir.rglob(name))
    if loose:
        return loose[0].read_bytes()
    for archive in sorted(model_dir.rglob("*.tar.gz")):
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    if Path(member.name).name == name and member.isfile():
                        stream = tar.extractfile(member)
                        return None if stream is None else stream.read()
        except (tarfile.TarError, OSError):
            return None
    return None


def _rounded(values: np.ndarray) -> list[float]:
    """JSON numbers (7 significant digits: a chart needs no more); infinity as a string."""
    return [float(f"{v:.7g}") if math.isfinite(v) else str(v) for v in values.tolist()]


def report_parts(
    kind: str,
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    confusion_matrix: dict[str, dict[str, int]] | None,
    classes: tuple[str, ...],
    feature_names: list[str],
    rows: dict[str, int] | None,
    model_dir: Path,
    missing: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Every part of one evaluation: ``scores`` are the probabilities (binary), the predicted
    class indices (multiclass) or the predictions (regression); ``missing`` the missing values
    per feature (``schema.json``'s ``features[].missing``), in the schema's feature order."""
    parts: dict[str, Any] = {"version": PARTS_VERSION, "problem_type": kind, "rows": len(labels)}
    positives = int(np.sum(labels == 1))
    if kind == "binary" and 0 < positives < len(labels):  # undefined with one class, as AUC
        parts["roc"] = roc_curve(labels, scores)
        parts["precision_recall"] = precision_recall_curve(labels, scores)
    if confusion_matrix is not None:
        parts["confusion_matrix"] = confusion_matrix
    if kind == "multiclass" and confusion_matrix is not None:
        parts["per_class"] = per_class(confusion_matrix)
    if kind == "regression":
        parts.update(regression_parts(labels, scores))
    gains = importance(model_dir, feature_names)
    parts["importance"] = {"gain": gains} if isinstance(gains, dict) else {"missing": gains}
    data: dict[str, Any] = {"test_rows": len(labels)}
    if rows is not None:
        data["rows"] = rows
    if missing is not None:
        data["missing"] = missing
    if kind != "regression":
        data["class_balance"] = class_balance(labels, classes)
    parts["data"] = data
    return parts

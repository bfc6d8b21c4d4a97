"""Ground truth, joined with the captured predictions, and the model's quality on it.

Ground truth is JSON Lines, any file below the input directory, one object a line::

    {"inference_id": "<the request's InferenceId, else the capture's eventId>", "label": 1}

A label is a number, or a class label of a classification model as a string (``"Adelie"``); a
request that held N records takes a list of N labels. A line that is not such an object, an id
seen twice (the first one is kept), a label of the wrong type or outside the classes is counted
and listed, never a crash; an id with no captured request in the window is counted as
unmatched (its request may be in another window).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlstack_containers.evaluation import binary_metrics, multiclass_metrics, regression_metrics
from mlstack_containers.monitor.capture import Problems

# CloudWatch metric names per problem type (the contract with the constructs: mlstack.rules'
# QUALITY_METRICS, the same order, the first the default; a test keeps the two equal), and the
# evaluation module's metric each one is.
QUALITY_METRICS = {
    "binary": {"AUC": "auc", "Accuracy": "accuracy", "F1": "f1"},
    "multiclass": {"Accuracy": "accuracy", "F1": "weighted_f1"},
    "regression": {"RMSE": "rmse", "MAE": "mae"},
}
DEFAULT_METRIC = {problem: next(iter(names)) for problem, names in QUALITY_METRICS.items()}
HIGHER_IS_BETTER = frozenset({"AUC", "Accuracy", "F1"})  # the others alarm above the threshold


@dataclass
class GroundTruth:
    labels: dict[str, list[float]] = field(default_factory=dict)
    lines: int = 0
    problems: Problems = field(default_factory=Problems)
    duplicates: int = 0


def _label(value: Any, classes: tuple[str, ...]) -> float:
    """A label as the model's encoding: a class index, or the regression value."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"label {value!r} is not a number or a class label")
    if classes:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        key = str(value)
        if key not in classes:
            raise ValueError(f"label {value!r} is not one of the classes {list(classes)}")
        return float(classes.index(key))
    if isinstance(value, str) or not math.isfinite(value):
        raise ValueError(f"label {value!r} is not a finite number (a regression label)")
    return float(value)


def read_ground_truth(root: Path | None, classes: tuple[str, ...]) -> GroundTruth:
    truth = GroundTruth()
    if root is None or not root.is_dir():
        return truth
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        name = str(path.relative_to(root))
        try:
            handle = path.open("rb")
        except OSError as exc:
            truth.problems.add(name, 0, f"cannot read the file: {exc}")
            continue
        with handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    truth.lines += 1
                    _truth_line(truth, line, name, number, classes)
    return truth


def _truth_line(truth: GroundTruth, line: bytes, name: str, number: int, classes: tuple) -> None:
    try:
        item = json.loads(line)
        if not isinstance(item, dict):
            raise ValueError('expected an object {"inference_id": ..., "label": ...}')
        identity = item.get("inference_id")
        if not isinstance(identity, str) or not identity:
            raise ValueError(f"inference_id {identity!r} is not a non-empty string")
        if "label" not in item:
            raise ValueError("no label")
        raw = item["label"]
        labels = [_label(v, classes) for v in (raw if isinstance(raw, list) else [raw])]
        if not labels:
            raise ValueError("label is an empty list")
    except (ValueError, RecursionError) as exc:
        truth.problems.add(name, number, str(exc))
        return
    if identity in truth.labels:
        truth.duplicates += 1
        truth.problems.add(name, number, f"inference_id {identity!r} seen before; kept the first")
        return
    truth.labels[identity] = labels


@dataclass
class Quality:
    problem_type: str
    labelled: int
    unmatched: int
    mismatched: int
    metrics: dict[str, float]


def join(
    truth: GroundTruth, predictions: dict[str, np.ndarray], problem_type: str
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(labels, predictions) of the labelled records, the unmatched ids and the ids whose label
    count differs from their request's record count (or whose response was unreadable)."""
    pairs: list[tuple[list[float], np.ndarray]] = []
    unmatched = mismatched = 0
    for identity, values in truth.labels.items():
        predicted = predictions.get(identity)
        if predicted is None:
            unmatched += 1
        elif len(values) != len(predicted):
            mismatched += 1
        else:
            pairs.append((values, predicted))
    width = pairs[0][1].shape[1] if pairs else 1
    kept = [(v, p) for v, p in pairs if p.shape[1] == width]
    mismatched += len(pairs) - len(kept)
    labels = np.asarray([x for v, _ in kept for x in v], dtype=np.float64)
    matrix = np.vstack([p for _, p in kept]) if kept else np.empty((0, width))
    return labels, matrix, unmatched, mismatched


def quality_metrics(problem_type: str, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The problem type's CloudWatch metrics; a metric that is not defined here (AUC of one
    class) is left out."""
    if not len(labels):
        return {}
    if problem_type == "binary":
        probability = scores[:, -1]
        if np.any((probability < 0) | (probability > 1)):  # margins (binary:logitraw)
            probability = 1 / (1 + np.exp(-probability))
        values = binary_metrics(labels, probability)
    elif problem_type == "multiclass":
        predicted = scores.argmax(axis=1) if scores.shape[1] > 1 else scores[:, 0]
        values = multiclass_metrics(labels, predicted.astype(np.float64))
    else:
        values = regression_metrics(labels, scores[:, 0])
    out = {}
    for metric, key in QUALITY_METRICS[problem_type].items():
        value = float(values[key])
        if math.isfinite(value):
            out[metric] = value
    return out


def breaches(metric: str, value: float, threshold: float) -> bool:
    return value < threshold if metric in HIGHER_IS_BETTER else value > threshold

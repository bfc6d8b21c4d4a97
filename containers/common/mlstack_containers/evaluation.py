"""The ``evaluate`` program: batch transform scores against held-out labels, as SageMaker's model
quality metrics.

A SageMaker Processing job runs it (``AppSpecification.ContainerEntrypoint = ["evaluate"]``) with
three inputs under ``/opt/ml/processing/input/`` and one output:

* ``predictions/``: the batch transform output, ``<shard>.out`` per input shard, one score a line;
* ``labels/``: the held-out labels, ``<shard>`` (same name without ``.out``), one label a line in
  the order of the test rows;
* ``model/``: the model artifact (``model.tar.gz``); only its ``mlstack-model.json`` is read, for
  the training objective, which decides the problem type: ``binary:*`` and ``reg:logistic`` are
  binary classification, the other ``reg:*``, ``count:*`` and ``survival:*`` regression;
* ``/opt/ml/processing/output/evaluation/evaluation.json``: the metrics in the format of SageMaker
  Model Monitor's model quality metrics, which the Model Registry shows for a model package's
  ``ModelMetrics.ModelQuality.Statistics`` (SageMaker developer guide, "Model quality metrics":
  ``binary_classification_metrics`` / ``regression_metrics``, each metric ``{"value",
  "standard_deviation"}``, the confusion matrix as ``{actual: {predicted: count}}``).

Binary metrics are taken at threshold 0.5, a score above it being the positive class (what
XGBoost's own ``error`` metric does; ``binary:logitraw`` margins go through the logistic function
first): accuracy, precision, recall, F1, the four rates, ROC AUC (ties averaged) and log loss
(probabilities clipped to [1e-15, 1 - 1e-15]). Regression: MSE, RMSE, MAE, R2. A metric that is
undefined on the data (AUC with one class only, precision with no positive prediction, R2 of
constant labels) is left out. As Model Monitor does, ``standard_deviation`` is the standard
deviation of the metric over 5 random samples of 80 % of the rows when there are at least 200
rows, else ``"NaN"``.

On success ``/opt/ml/output/message`` holds a one-line JSON summary, ``{"problem_type",
"objective", "rows", "metrics": {name: value}}``, always under 1 KB: SageMaker returns that file's
first 1 KB as the job's ``ExitMessage`` (SageMaker developer guide, "Save and Access Metadata
Information About Your Processing Job"), which is how the workflow reads the metrics without a
second S3 request. On bad input (a shard without its predictions or labels, row counts that
differ, a score that is not a finite number, a label outside {0, 1} for a binary objective) the
reason goes to ``/opt/ml/output/message`` and ``/opt/ml/output/failure`` and the exit status is 1.
"""

from __future__ import annotations

import json
import math
import sys
import tarfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from mlstack_containers.paths import SageMakerPaths

MESSAGE_LIMIT = 1024  # SageMaker keeps the first 1 KB of /opt/ml/output/message
THRESHOLD = 0.5
LOG_LOSS_EPSILON = 1e-15
STD_MIN_ROWS = 200  # Model Monitor gives a standard deviation from 200 samples on
STD_SAMPLES = 5
STD_FRACTION = 0.8
PREDICTIONS, LABELS, MODEL, OUTPUT = "predictions", "labels", "model", "evaluation"
REPORT_FILE = "evaluation.json"
METADATA_FILE = "mlstack-model.json"
PREDICTION_SUFFIX = ".out"

BINARY_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "auc",
    "log_loss",
    "true_positive_rate",
    "true_negative_rate",
    "false_positive_rate",
    "false_negative_rate",
)
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")
FORMAT_KEYS = {"binary": "binary_classification_metrics", "regression": "regression_metrics"}


class EvaluationError(ValueError):
    """The inputs cannot be evaluated; the message names the file and what is wrong."""


def log(message: str) -> None:
    print(f"mlstack-evaluate: {message}", flush=True)


# --- problem type -------------------------------------------------------------------------------


def problem_type(objective: str) -> str:
    """``binary`` or ``regression`` for a training objective, or EvaluationError."""
    if objective.startswith("binary:") or objective == "reg:logistic":
        return "binary"
    if objective.startswith(("reg:", "count:", "survival:")):
        return "regression"
    raise EvaluationError(
        f"training objective {objective!r} is neither binary classification (binary:*, "
        "reg:logistic) nor regression (reg:*, count:*, survival:*): evaluate has no metrics for it"
    )


def read_objective(model_dir: Path) -> str:
    """The objective in the model artifact's ``mlstack-model.json`` (``model.tar.gz`` or
    extracted)."""
    loose = sorted(model_dir.rglob(METADATA_FILE))
    if loose:
        return _objective(json.loads(loose[0].read_text("utf-8")), loose[0])
    archives = sorted(model_dir.rglob("*.tar.gz"))
    if not archives:
        raise EvaluationError(
            f"no model artifact under {model_dir}: the 'model' input must be the training job's "
            "model.tar.gz"
        )
    try:
        with tarfile.open(archives[0], "r:gz") as tar:
            member = next((m for m in tar if Path(m.name).name == METADATA_FILE), None)
            stream = tar.extractfile(member) if member is not None and member.isfile() else None
            if stream is None:
                raise EvaluationError(
                    f"{archives[0].name} has no {METADATA_FILE}: evaluate reads the training "
                    "objective from the metadata the mlstack training image writes"
                )
            return _objective(json.loads(stream.read().decode("utf-8")), archives[0])
    except (tarfile.TarError, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"cannot read the model artifact {archives[0].name}: {exc}") from None


def _objective(metadata: Any, where: Path) -> str:
    objective = metadata.get("objective") if isinstance(metadata, dict) else None
    if not isinstance(objective, str) or not objective:
        raise EvaluationError(f"{where.name}: {METADATA_FILE} has no 'objective'")
    return objective


# --- input ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pairs:
    """Labels and scores, shard after shard in name order."""

    labels: np.ndarray
    scores: np.ndarray
    shards: tuple[str, ...]


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def _numbers(path: Path, name: str, what: str) -> list[float]:
    values = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text:
                continue
            # One value a line: the first column when a line has several (a CSV row).
            first = text.split(b",", 1)[0].strip()
            try:
                value = float(first)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                shown = first[:40].decode("utf-8", errors="replace")
                raise EvaluationError(
                    f"{what} {name} line {number}: {shown!r} is not a finite number"
                )
            values.append(value)
    return values


def read_pairs(predictions_dir: Path, labels_dir: Path) -> Pairs:
    """Pair ``labels/<shard>`` with ``predictions/<shard>.out``, line by line."""
    labels = _files(labels_dir)
    predictions = _files(predictions_dir)
    if not labels:
        raise EvaluationError(f"no label files under {labels_dir}: the 'labels' input is empty")
    orphans = sorted(set(predictions) - {name + PREDICTION_SUFFIX for name in labels})
    if orphans:
        raise EvaluationError(
            f"predictions {', '.join(orphans[:5])} have no label file (expected "
            f"labels/<shard> for predictions/<shard>{PREDICTION_SUFFIX})"
        )
    all_labels: list[float] = []
    all_scores: list[float] = []
    for name, label_file in labels.items():
        prediction_file = predictions.get(name + PREDICTION_SUFFIX)
        if prediction_file is None:
            raise EvaluationError(
                f"shard {name}: no predictions/{name}{PREDICTION_SUFFIX} (did the batch "
                "transform cover every test shard?)"
            )
        shard_labels = _numbers(label_file, name, "labels")
        shard_scores = _numbers(prediction_file, name + PREDICTION_SUFFIX, "predictions")
        if len(shard_labels) != len(shard_scores):
            raise EvaluationError(
                f"shard {name}: {len(shard_scores)} predictions for {len(shard_labels)} labels; "
                "each test row needs exactly one score"
            )
        all_labels += shard_labels
        all_scores += shard_scores
    if not all_labels:
        raise EvaluationError("the label files hold no rows: nothing to evaluate")
    return Pairs(np.asarray(all_labels), np.asarray(all_scores), tuple(labels))


# --- metrics --------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def confusion(labels: np.ndarray, scores: np.ndarray) -> tuple[int, int, int, int]:
    """(true negatives, false positives, false negatives, true positives) at THRESHOLD."""
    actual = labels == 1
    predicted = scores > THRESHOLD
    return (
        int(np.sum(~actual & ~predicted)),
        int(np.sum(~actual & predicted)),
        int(np.sum(actual & ~predicted)),
        int(np.sum(actual & predicted)),
    )


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The probability that a random positive scores above a random negative (ties count
    half): the Mann-Whitney U statistic over the product of the class sizes."""
    positives = int(np.sum(labels == 1))
    negatives = len(labels) - positives
    if not positives or not negatives:
        return math.nan
    ranks = rankdata(scores)  # average ranks for ties
    u = float(np.sum(ranks[labels == 1])) - positives * (positives + 1) / 2
    return u / (positives * negatives)


def log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
    p = np.clip(scores, LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def binary_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    tn, fp, fn, tp = confusion(labels, scores)
    return {
        "accuracy": _ratio(tp + tn, len(labels)),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "auc": roc_auc(labels, scores),
        "log_loss": log_loss(labels, scores),
        "true_positive_rate": _ratio(tp, tp + fn),
        "true_negative_rate": _ratio(tn, tn + fp),
        "false_positive_rate": _ratio(fp, fp + tn),
        "false_negative_rate": _ratio(fn, fn + tp),
    }


def regression_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    errors = scores - labels
    mse = float(np.mean(errors**2))
    total = float(np.sum((labels - np.mean(labels)) ** 2))
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(np.mean(np.abs(errors))),
        "r2": 1 - float(np.sum(errors**2)) / total if total else math.nan,
    }


def binary_scores(objective: str, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Check a binary problem's labels and scores; margins of ``binary:logitraw`` become
    probabilities."""
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        raise EvaluationError(
            f"label {labels[bad[0]]:g} (row {bad[0] + 1} in shard order) is not 0 or 1; a binary "
            f"objective ({objective}) needs 0/1 labels"
        )
    if objective == "binary:logitraw":
        return 1 / (1 + np.exp(-scores))
    outside = np.flatnonzero((scores < 0) | (scores > 1))
    if outside.size:
        raise EvaluationError(
            f"score {scores[outside[0]]:g} (row {outside[0] + 1} in shard order) is outside "
            f"[0, 1]; {objective} predicts probabilities"
        )
    return scores


# --- report ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    problem_type: str
    objective: str
    rows: int
    metrics: dict[str, float]  # the defined ones, in the documented order
    standard_deviations: dict[str, float]
    confusion_matrix: tuple[int, int, int, int] | None  # tn, fp, fn, tp

    def report(self) -> dict[str, Any]:
        """evaluation.json, in the model quality metrics format."""
        body: dict[str, Any] = {}
        if self.confusion_matrix is not None:
            tn, fp, fn, tp = self.confusion_matrix
            body["confusion_matrix"] = {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
        for name, value in self.metrics.items():
            std = self.standard_deviations.get(name, math.nan)
            body[name] = {
                "value": value,
                "standard_deviation": std if math.isfinite(std) else "NaN",
            }
        return {FORMAT_KEYS[self.problem_type]: body}

    def summary(self) -> str:
        """The one-line JSON the workflow reads from the job's ExitMessage (< 1 KB)."""
        return json.dumps(
            {
                "problem_type": self.problem_type,
                "objective": self.objective,
                "rows": self.rows,
                "metrics": self.metrics,
            },
            separators=(",", ":"),
        )


def _standard_deviations(
    compute: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    labels: np.ndarray,
    scores: np.ndarray,
) -> dict[str, float]:
    if len(labels) < STD_MIN_ROWS:
        return {}
    rng = np.random.default_rng(0)  # fixed: the same inputs give the same report
    size = int(len(labels) * STD_FRACTION)
    samples: dict[str, list[float]] = {}
    for _ in range(STD_SAMPLES):
        index = rng.choice(len(labels), size=size, replace=False)
        for name, value in compute(labels[index], scores[index]).items():
            samples.setdefault(name, []).append(value)
    return {name: float(np.std(values)) for name, values in samples.items()}


def evaluate(objective: str, labels: np.ndarray, scores: np.ndarray) -> Evaluation:
    kind = problem_type(objective)
    matrix = None
    compute: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    if kind == "binary":
        scores = binary_scores(objective, labels, scores)
        compute = binary_metrics
        matrix = confusion(labels, scores)
    else:
        compute = regression_metrics
    metrics = {k: v for k, v in compute(labels, scores).items() if math.isfinite(v)}
    return Evaluation(
        problem_type=kind,
        objective=objective[:100],
        rows=len(labels),
        metrics=metrics,
        standard_deviations=_standard_deviations(compute, labels, scores),
        confusion_matrix=matrix,
    )


# --- program --------------------------------------------------------------------------------------


def processing_dir(paths: SageMakerPaths) -> Path:
    return paths.base / "processing"


def run(paths: SageMakerPaths) -> Evaluation:
    inputs = processing_dir(paths) / "input"
    objective = read_objective(inputs / MODEL)
    problem_type(objective)  # an objective without metrics fails before any data is read
    pairs = read_pairs(inputs / PREDICTIONS, inputs / LABELS)
    result = evaluate(objective, pairs.labels, pairs.scores)
    out = processing_dir(paths) / "output" / OUTPUT
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_FILE).write_text(json.dumps(result.report(), indent=2) + "\n", "utf-8")
    log(f"{result.rows} rows, {len(pairs.shards)} shards, {result.problem_type}: {result.metrics}")
    return result


def _write(paths: SageMakerPaths, names: Sequence[str], text: str) -> None:
    try:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            (paths.output_dir / name).write_text(text[:MESSAGE_LIMIT], "utf-8")
    except OSError as exc:
        print(f"mlstack-evaluate: cannot write {paths.output_dir}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = SageMakerPaths.from_env()
    if args not in ([], ["evaluate"]):
        _write(paths, ("message", "failure"), f"unexpected arguments {args}; usage: evaluate")
        return 2
    try:
        result = run(paths)
    except EvaluationError as exc:
        message = str(exc)
    except (OSError, MemoryError) as exc:
        message = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # the job must say why, whatever happened
        traceback.print_exc()
        message = f"internal error ({type(exc).__name__}): {exc}"
    else:
        _write(paths, ("message",), result.summary())
        return 0
    _write(paths, ("message", "failure"), message)
    log(f"failed: {message}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())

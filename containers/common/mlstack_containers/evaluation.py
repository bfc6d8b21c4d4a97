"""The ``evaluate`` program: batch transform scores against held-out labels, as SageMaker's model
quality metrics.

A SageMaker Processing job runs it (``AppSpecification.ContainerEntrypoint = ["evaluate"]``) with
three inputs under ``/opt/ml/processing/input/`` and one output:

* ``predictions/``: the batch transform output, ``<shard>.out`` per input shard, one score a line;
* ``labels/``: the held-out labels, ``<shard>`` (same name without ``.out``), one label a line in
  the order of the test rows;
* ``model/``: the model artifact (``model.tar.gz``); its ``mlstack-model.json`` is read for the
  training objective, which decides the problem type when the model has no ``schema.json``:
  ``binary:*`` and ``reg:logistic`` are binary classification, ``multi:softmax`` and
  ``multi:softprob`` multiclass, the other ``reg:*``, ``count:*`` and ``survival:*`` regression.
  A model trained on a prepared dataset carries its ``schema.json`` (docs/your-data.md): its
  ``problem_type`` and ``label.classes`` are then used (the objective must agree);
* ``/opt/ml/processing/output/evaluation/evaluation.json``: the metrics in the format of SageMaker
  Model Monitor's model quality metrics, which the Model Registry shows for a model package's
  ``ModelMetrics.ModelQuality.Statistics`` (SageMaker developer guide, "Model quality metrics":
  ``binary_classification_metrics`` / ``multiclass_classification_metrics`` /
  ``regression_metrics``, each metric ``{"value", "standard_deviation"}``, the confusion matrix as
  ``{actual: {predicted: count}}``);
* ``/opt/ml/processing/output/evaluation/report_parts.json``: the run report's parts
  (:mod:`mlstack_containers.report_parts`: curves, matrices, importance, the data).

Binary metrics are taken at threshold 0.5, a score above it being the positive class (what
XGBoost's own ``error`` metric does; ``binary:logitraw`` margins go through the logistic function
first): accuracy, precision, recall, F1, the four rates, ROC AUC (ties averaged) and log loss
(probabilities clipped to [1e-15, 1 - 1e-15]). Multiclass: the labels are class indices
0..K-1 (K the schema's classes, else the model's ``num_class``); ``multi:softprob`` predictions
are K probabilities a line (the class is the most probable, the first on a tie), ``multi:softmax``
one class index a line; accuracy, recall, precision and F0.5/F1/F2 weighted by each class's share
of the labels (a class never predicted has precision 0), the same for the best constant
classifier (always the most frequent label, the smallest index on a tie), and the confusion
matrix keyed by class label. Regression: MSE, RMSE, MAE, R2. A metric that is
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

import dataclasses
import json
import math
import sys
import tarfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from mlstack_containers.hyperparameters import objective_problem_type
from mlstack_containers.paths import SageMakerPaths
from mlstack_containers.report_parts import REPORT_PARTS_FILE, report_parts
from mlstack_containers.schema import Schema, SchemaError

PROGRAM = "mlstack-evaluate"
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
_WEIGHTED = ("weighted_recall", "weighted_precision", "weighted_f0_5", "weighted_f1", "weighted_f2")
MULTICLASS_METRICS = (
    "accuracy",
    *_WEIGHTED,
    "accuracy_best_constant_classifier",
    *(f"{name}_best_constant_classifier" for name in _WEIGHTED),
)
FORMAT_KEYS = {
    "binary": "binary_classification_metrics",
    "multiclass": "multiclass_classification_metrics",
    "regression": "regression_metrics",
}
SCHEMA_FILE = "schema.json"


class EvaluationError(ValueError):
    """The inputs cannot be evaluated; the message names the file and what is wrong."""


def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", flush=True)


# --- problem type -------------------------------------------------------------------------------


def problem_type(objective: str) -> str:
    """``binary``, ``multiclass`` or ``regression`` for a training objective, or
    EvaluationError."""
    kind = objective_problem_type(objective)
    if kind is not None:
        return kind
    raise EvaluationError(
        f"training objective {objective!r} is neither binary classification (binary:*, "
        "reg:logistic), multiclass (multi:softmax, multi:softprob) nor regression (reg:*, "
        "count:*, survival:*): evaluate has no metrics for it"
    )


@dataclass(frozen=True)
class ModelInfo:
    """What evaluate reads from the model artifact."""

    objective: str
    num_class: int  # 0 unless multi:*
    schema: Schema | None  # the prepared dataset's schema.json, when the model carries one


def read_objective(model_dir: Path) -> str:
    """The objective in the model artifact's ``mlstack-model.json`` (``model.tar.gz`` or
    extracted)."""
    return read_model(model_dir).objective


def read_model(model_dir: Path) -> ModelInfo:
    """``mlstack-model.json`` (required) and ``schema.json`` (optional) from the model artifact
    (``model.tar.gz`` or extracted)."""
    files = _model_files(model_dir, (METADATA_FILE, SCHEMA_FILE))
    where, text = files.get(METADATA_FILE, (None, None))
    if where is None or text is None:
        raise EvaluationError(
            f"{_artifact_name(model_dir)} has no {METADATA_FILE}: evaluate reads the training "
            "objective from the metadata the mlstack training image writes"
        )
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"cannot read the model artifact {where}: {exc}") from None
    objective = _objective(metadata, Path(where))
    num_class = metadata.get("num_class", 0) if isinstance(metadata, dict) else 0
    schema = None
    if SCHEMA_FILE in files:
        schema_where, schema_text = files[SCHEMA_FILE]
        try:
            schema = Schema.from_json(schema_text)
        except SchemaError as exc:
            raise EvaluationError(f"{schema_where}: {exc}") from None
    return ModelInfo(objective, num_class if isinstance(num_class, int) else 0, schema)


def _artifact_name(model_dir: Path) -> str:
    archives = sorted(model_dir.rglob("*.tar.gz"))
    return archives[0].name if archives else str(model_dir)


def _model_files(model_dir: Path, names: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """{name: (where, text)} of the named files, loose under ``model_dir`` or in its archive."""
    found: dict[str, tuple[str, str]] = {}
    for name in names:
        loose = sorted(model_dir.rglob(name))
        if loose:
            found[name] = (loose[0].name, loose[0].read_text("utf-8"))
    if METADATA_FILE in found:
        return found
    archives = sorted(model_dir.rglob("*.tar.gz"))
    if not archives:
        raise EvaluationError(
            f"no model artifact under {model_dir}: the 'model' input must be the training job's "
            "model.tar.gz"
        )
    try:
        with tarfile.open(archives[0], "r:gz") as tar:
            for member in tar:
                base = Path(member.name).name
                if base in names and base not in found and member.isfile():
                    stream = tar.extractfile(member)
                    if stream is not None:
                        found[base] = (archives[0].name, stream.read().decode("utf-8"))
    except (tarfile.TarError, OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"cannot read the model artifact {archives[0].name}: {exc}") from None
    return found


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


def _numbers(path: Path, name: str, what: str, width: int = 1) -> list[float]:
    """One value a line (the first column when a line has several: a CSV row), or with ``width``
    above 1 exactly ``width`` values a line (multi:softprob's K probabilities), flattened."""
    values = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text:
                continue
            fields = [text.split(b",", 1)[0]] if width == 1 else text.split(b",")
            if len(fields) != width:
                raise EvaluationError(
                    f"{what} {name} line {number}: {len(fields)} values, expected {width} (one "
                    "probability per class)"
                )
            for field in fields:
                try:
                    value = float(field.strip())
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    shown = field.strip()[:40].decode("utf-8", errors="replace")
                    raise EvaluationError(
                        f"{what} {name} line {number}: {shown!r} is not a finite number"
                    )
                values.append(value)
    return values


def read_pairs(predictions_dir: Path, labels_dir: Path, width: int = 1) -> Pairs:
    """Pair ``labels/<shard>`` with ``predictions/<shard>.out``, line by line; with ``width``
    above 1 the scores are a (rows, width) matrix."""
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
        shard_scores = _numbers(prediction_file, name + PREDICTION_SUFFIX, "predictions", width)
        if len(shard_labels) * width != len(shard_scores):
            raise EvaluationError(
                f"shard {name}: {len(shard_scores) // width} predictions for {len(shard_labels)} "
                "labels; each test row needs exactly one score"
            )
        all_labels += shard_labels
        all_scores += shard_scores
    if not all_labels:
        raise EvaluationError("the label files hold no rows: nothing to evaluate")
    scores = np.asarray(all_scores)
    if width > 1:
        scores = scores.reshape(-1, width)
    return Pairs(np.asarray(all_labels), scores, tuple(labels))


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


def multiclass_metrics(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy and the class-share-weighted recall, precision and F-beta of class indices,
    then the same for the best constant classifier (the most frequent label)."""
    metrics = _multiclass(labels, predicted)
    values, counts = np.unique(labels, return_counts=True)
    constant = np.full(len(labels), values[np.argmax(counts)])
    for name, value in _multiclass(labels, constant).items():
        metrics[f"{name}_best_constant_classifier"] = value
    return metrics


def _multiclass(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    classes, support = np.unique(labels, return_counts=True)
    weights = support / len(labels)
    recall, precision = [], []
    for c in classes:
        hits = float(np.sum((labels == c) & (predicted == c)))
        recall.append(hits / np.sum(labels == c))
        said = float(np.sum(predicted == c))
        precision.append(hits / said if said else 0.0)  # never predicted: 0, as scikit-learn
    r, p = np.asarray(recall), np.asarray(precision)
    metrics = {
        "accuracy": float(np.mean(labels == predicted)),
        "weighted_recall": float(np.sum(weights * r)),
        "weighted_precision": float(np.sum(weights * p)),
    }
    for name, beta in (("weighted_f0_5", 0.5), ("weighted_f1", 1.0), ("weighted_f2", 2.0)):
        b2 = beta * beta
        denominator = b2 * p + r
        f = np.divide((1 + b2) * p * r, denominator, out=np.zeros_like(r), where=denominator > 0)
        metrics[name] = float(np.sum(weights * f))
    return metrics


def multiclass_predictions(
    objective: str, labels: np.ndarray, scores: np.ndarray, num_class: int
) -> np.ndarray:
    """Check a multiclass problem's labels (class indices); softprob probabilities become the
    most probable class."""
    bad = np.flatnonzero((labels != np.floor(labels)) | (labels < 0) | (labels >= num_class))
    if bad.size:
        raise EvaluationError(
            f"label {labels[bad[0]]:g} (row {bad[0] + 1} in shard order) is not a class index "
            f"0..{num_class - 1}; {objective} needs encoded labels (prepare writes them)"
        )
    if scores.ndim == 2:
        return np.argmax(scores, axis=1).astype(np.float64)
    bad = np.flatnonzero((scores != np.floor(scores)) | (scores < 0) | (scores >= num_class))
    if bad.size:
        raise EvaluationError(
            f"prediction {scores[bad[0]]:g} (row {bad[0] + 1} in shard order) is not a class "
            f"index 0..{num_class - 1}; {objective} predicts one class index a line"
        )
    return scores


def class_matrix(
    labels: np.ndarray, predicted: np.ndarray, names: tuple[str, ...]
) -> dict[str, dict[str, int]]:
    """``{actual: {predicted: count}}`` over every class, keyed by class label."""
    return {
        actual: {
            said: int(np.sum((labels == i) & (predicted == j))) for j, said in enumerate(names)
        }
        for i, actual in enumerate(names)
    }


# --- report ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    problem_type: str
    objective: str
    rows: int
    metrics: dict[str, float]  # the defined ones, in the documented order
    standard_deviations: dict[str, float]
    confusion_matrix: dict[str, dict[str, int]] | None  # {actual: {predicted: count}}

    def report(self) -> dict[str, Any]:
        """evaluation.json, in the model quality metrics format."""
        body: dict[str, Any] = {}
        if self.confusion_matrix is not None:
            body["confusion_matrix"] = self.confusion_matrix
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


def evaluate(
    objective: str,
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    kind: str | None = None,
    classes: tuple[str, ...] = (),
) -> Evaluation:
    """The metrics of ``kind`` (default: the objective's problem type); ``classes`` names the
    class indices of a multiclass problem."""
    kind = kind or problem_type(objective)
    matrix = None
    compute: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    if kind == "binary":
        scores = binary_scores(objective, labels, scores)
        compute = binary_metrics
        tn, fp, fn, tp = confusion(labels, scores)
        matrix = {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    elif kind == "multiclass":
        scores = multiclass_predictions(objective, labels, scores, len(classes))
        compute = multiclass_metrics
        matrix = class_matrix(labels, scores, classes)
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


def model_problem(model: ModelInfo) -> tuple[str, tuple[str, ...]]:
    """The problem type and, for multiclass, the class labels: from the model's schema.json
    when it has one (its objective must agree), else from the objective (classes "0".."K-1")."""
    kind = problem_type(model.objective)
    if model.schema is None:
        if kind == "multiclass" and model.num_class < 2:
            raise EvaluationError(
                f"{METADATA_FILE} gives no num_class for {model.objective}: cannot tell the classes"
            )
        return kind, tuple(str(i) for i in range(model.num_class if kind == "multiclass" else 0))
    schema = model.schema
    if schema.problem_type != kind:
        raise EvaluationError(
            f"the model's schema.json says problem_type {schema.problem_type} but it was trained "
            f"with {model.objective} ({kind}): train with an objective of that problem type"
        )
    if kind == "multiclass" and model.num_class and model.num_class != schema.num_class:
        raise EvaluationError(
            f"the model has num_class {model.num_class} but its schema.json has "
            f"{schema.num_class} classes"
        )
    return kind, schema.classes


# --- program --------------------------------------------------------------------------------------


def processing_dir(paths: SageMakerPaths) -> Path:
    return paths.base / "processing"


def run(paths: SageMakerPaths) -> Evaluation:
    inputs = processing_dir(paths) / "input"
    model = read_model(inputs / MODEL)
    # an objective without metrics fails before any data is read
    kind, classes = model_problem(model)
    width = len(classes) if model.objective == "multi:softprob" else 1
    pairs = read_pairs(inputs / PREDICTIONS, inputs / LABELS, width)
    result = evaluate(model.objective, pairs.labels, pairs.scores, kind=kind, classes=classes)
    out = processing_dir(paths) / "output" / OUTPUT
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_FILE).write_text(json.dumps(result.report(), indent=2) + "\n", "utf-8")
    parts = _report_parts(model, result, pairs, classes, inputs / MODEL)
    (out / REPORT_PARTS_FILE).write_text(json.dumps(parts, separators=(",", ":")) + "\n", "utf-8")
    log(f"{result.rows} rows, {len(pairs.shards)} shards, {result.problem_type}: {result.metrics}")
    return result


def _report_parts(
    model: ModelInfo, result: Evaluation, pairs: Pairs, classes: tuple[str, ...], model_dir: Path
) -> dict[str, Any]:
    """report_parts.json: the curves, matrices, importance and data of this evaluation."""
    scores = pairs.scores
    if result.problem_type == "binary":
        scores = binary_scores(model.objective, pairs.labels, scores)
    elif result.problem_type == "multiclass":
        scores = multiclass_predictions(model.objective, pairs.labels, scores, len(classes))
    schema = model.schema
    return report_parts(
        result.problem_type,
        pairs.labels,
        scores,
        confusion_matrix=result.confusion_matrix,
        classes=classes,
        feature_names=schema.feature_names if schema is not None else [],
        rows=dataclasses.asdict(schema.rows) if schema is not None else None,
        model_dir=model_dir,
        missing=schema.missing if schema is not None else None,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = SageMakerPaths.from_env()
    if args not in ([], ["evaluate"]):
        paths.write_output(
            ("message", "failure"), f"unexpected arguments {args}; usage: evaluate", PROGRAM
        )
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
        paths.write_output(("message",), result.summary(), PROGRAM)
        return 0
    paths.write_output(("message", "failure"), message, PROGRAM)
    log(f"failed: {message}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())

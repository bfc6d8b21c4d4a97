"""Answers of a model that carries its schema: class labels and probabilities, or a score.

The keys and their meaning follow SageMaker Autopilot's inference containers ("Configure
inference output in generated containers", SageMaker Developer Guide): ``predicted_label``
(the most probable class), ``probability`` (the predicted label's probability, as Autopilot's
ensembling mode gives it), ``labels`` (every class, in the schema's order) and
``probabilities`` (one per label); a regression model answers ``score``. Autopilot selects the
CSV columns with the model's ``SAGEMAKER_INFERENCE_OUTPUT`` environment variable
(``predicted_label,probability``); here the same variable selects them per model, and the
request's ``X-Amzn-SageMaker-Custom-Attributes`` (``output=predicted_label,probabilities``, the
``CustomAttributes`` of ``InvokeEndpoint``) per request.

Defaults: CSV ``predicted_label,probability``; JSON and JSON Lines all four keys. A list in a
CSV cell is written as JSON text (``"[0.1, 0.9]"``, ``"[""Adelie"", ""Gentoo""]"``), which both
``json.loads`` and Python's ``ast.literal_eval`` read. One CSV or JSON Lines line per record.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from mlstack_containers.schema import Schema
from mlstack_containers.serving import codecs

PREDICTED_LABEL = "predicted_label"
PROBABILITY = "probability"
LABELS = "labels"
PROBABILITIES = "probabilities"
SCORE = "score"
CLASSIFICATION_KEYS = (PREDICTED_LABEL, PROBABILITY, LABELS, PROBABILITIES)
REGRESSION_KEYS = (SCORE,)
ALL_KEYS = (*CLASSIFICATION_KEYS, *REGRESSION_KEYS)
DEFAULT_CSV_KEYS = (PREDICTED_LABEL, PROBABILITY)

OUTPUT_ATTRIBUTE = "output"  # the key in X-Amzn-SageMaker-Custom-Attributes

# What each objective's prediction is, for a classification schema.
BINARY_OBJECTIVES = {
    "binary:logistic": "probability",
    "reg:logistic": "probability",  # the reference workflow's objective on 0/1 labels
    "binary:logitraw": "margin",
    "binary:hinge": "class",
}
MULTICLASS_OBJECTIVES = {"multi:softprob": "probabilities", "multi:softmax": "class"}


def parse_keys(text: str, where: str) -> tuple[str, ...]:
    """``"predicted_label, probability"`` as keys (Autopilot's form: comma-separated, spaces
    and case ignored); ValueError naming ``where`` for an unknown or repeated key."""
    keys = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    if not keys:
        raise ValueError(f"{where} names no output key; use some of {', '.join(ALL_KEYS)}")
    for key in keys:
        if key not in ALL_KEYS:
            raise ValueError(
                f"{where}: unknown output key {key[:40]!r}; use some of {', '.join(ALL_KEYS)}"
            )
    if len(set(keys)) != len(keys):
        raise ValueError(f"{where} names a key twice: {','.join(keys)}")
    return keys


def requested_keys(custom_attributes: str | None) -> tuple[str, ...] | None:
    """The keys an ``output=...`` custom attribute asks for (attributes are ``;``-separated
    ``name=value`` pairs; others are left to whoever reads them), or None."""
    if not custom_attributes:
        return None
    for attribute in custom_attributes.split(";"):
        name, sep, value = attribute.partition("=")
        if sep and name.strip().lower() == OUTPUT_ATTRIBUTE:
            try:
                return parse_keys(value, f"the custom attribute {OUTPUT_ATTRIBUTE}=")
            except ValueError as exc:
                raise codecs.ClientError(400, str(exc)) from None
    return None


def _csv_cell(text: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([text])
    return out.getvalue().encode()


class Answers:
    """The answer forms of one model.

    Args:
        schema: the model's dataset schema (problem type and classes).
        objective: the booster's objective (what its predictions are).
        configured: the keys of ``SAGEMAKER_INFERENCE_OUTPUT``, or None.

    Raises ValueError when the objective cannot answer the schema's problem type, or the
    configured keys do not fit it.
    """

    def __init__(
        self, schema: Schema, objective: str, configured: tuple[str, ...] | None = None
    ) -> None:
        self.problem_type = schema.problem_type
        self.classes = list(schema.classes)
        self.objective = objective
        if self.problem_type == "binary":
            self.kind = BINARY_OBJECTIVES.get(objective)
        elif self.problem_type == "multiclass":
            self.kind = MULTICLASS_OBJECTIVES.get(objective)
        else:
            self.kind = None if objective.startswith(("binary:", "multi:")) else "score"
        if self.kind is None:
            raise ValueError(
                f"schema.json says problem_type {self.problem_type!r}, but the model's "
                f"objective {objective!r} does not predict that"
            )
        self.allowed = REGRESSION_KEYS if self.kind == "score" else CLASSIFICATION_KEYS
        if configured is not None:
            self._check(configured, "SAGEMAKER_INFERENCE_OUTPUT", ValueError)
        self.configured = configured
        self._json_labels = [json.dumps(c, ensure_ascii=False).encode() for c in self.classes]
        self._csv_labels = [_csv_cell(c) for c in self.classes]
        labels_json = "[" + ", ".join(json.dumps(c, ensure_ascii=False) for c in self.classes) + "]"
        self._labels = {codecs.JSON: labels_json.encode(), codecs.CSV: _csv_cell(labels_json)}

    def _check(self, keys: tuple[str, ...], where: str, error: type[Exception]) -> None:
        wrong = [k for k in keys if k not in self.allowed]
        if wrong:
            message = (
                f"{where}: {', '.join(wrong)} is not an answer of a {self.problem_type} model; "
                f"use some of {', '.join(self.allowed)}"
            )
            raise error(400, message) if error is codecs.ClientError else error(message)

    def keys_for(
        self, accept: str, requested: tuple[str, ...] | None, raw: bool
    ) -> tuple[str, ...] | None:
        """The keys of this request's answer; None for today's numeric answer (a request in
        the encoded numeric form with no key selected, or a RecordIO-protobuf answer)."""
        if accept == codecs.RECORDIO:
            return None
        if requested is not None:
            self._check(requested, f"the custom attribute {OUTPUT_ATTRIBUTE}=", codecs.ClientError)
            return requested
        if self.configured is not None:
            return self.configured
        if not raw:
            return None
        if self.kind == "score":
            return REGRESSION_KEYS
        return DEFAULT_CSV_KEYS if accept == codecs.CSV else CLASSIFICATION_KEYS

    def probabilities(self, predictions: np.ndarray) -> np.ndarray:
        """One probability per class and record (rows sum to 1)."""
        preds = np.asarray(predictions, dtype=np.float32)
        if self.kind == "probabilities":
            return preds.reshape(len(preds), -1)
        k = len(self.classes)
        if self.kind == "class":  # binary:hinge, multi:softmax: the class index itself
            index = np.clip(preds.reshape(-1).astype(np.int64), 0, k - 1)
            return np.eye(k, dtype=np.float32)[index]
        p = preds.reshape(-1)
        if self.kind == "margin":
            p = (1.0 / (1.0 + np.exp(-p.astype(np.float64)))).astype(np.float32)
        p = np.clip(p, 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1).astype(np.float32)

    def format(self, predictions: np.ndarray, accept: str, keys: tuple[str, ...]) -> bytes:
        """The answer of ``predictions`` (one per record) in ``accept``: one CSV line or JSON
        Lines object per record, or ``{"predictions": [...]}``."""
        if self.kind == "score":
            columns = {SCORE: _texts(np.asarray(predictions, np.float32).reshape(-1), accept)}
        else:
            columns = self._classification_columns(predictions, accept, keys)
        if accept == codecs.CSV:
            return b"\n".join(
                b",".join(row) for row in zip(*(columns[k] for k in keys), strict=True)
            )
        names = [json.dumps(k).encode() + b": " for k in keys]
        items = [
            b"{" + b", ".join(n + v for n, v in zip(names, row, strict=True)) + b"}"
            for row in zip(*(columns[k] for k in keys), strict=True)
        ]
        if accept == codecs.JSONLINES:
            return b"\n".join(items)
        return b'{"predictions": [' + b", ".join(items) + b"]}"

    def _classification_columns(
        self, predictions: np.ndarray, accept: str, keys: tuple[str, ...]
    ) -> dict[str, list[bytes]]:
        probs = self.probabilities(predictions)
        n = len(probs)
        index = probs.argmax(axis=1)  # ties: the first class, as int(p > 0.5) for binary
        text_form = codecs.CSV if accept == codecs.CSV else codecs.JSON
        columns: dict[str, list[bytes]] = {}
        if PREDICTED_LABEL in keys:
            labels = self._csv_labels if accept == codecs.CSV else self._json_labels
            columns[PREDICTED_LABEL] = [labels[i] for i in index.tolist()]
        if PROBABILITY in keys:
            columns[PROBABILITY] = _texts(probs[np.arange(n), index], accept)
        if LABELS in keys:
            columns[LABELS] = [self._labels[text_form]] * n
        if PROBABILITIES in keys:
            k = probs.shape[1]
            flat = _texts(probs.reshape(-1), codecs.JSON)
            lists = [b"[" + b", ".join(flat[i : i + k]) + b"]" for i in range(0, n * k, k)]
            if accept == codecs.CSV:
                lists = [b'"' + t + b'"' for t in lists]  # numbers only: no quote to double
            columns[PROBABILITIES] = lists
        return columns


def _texts(values: np.ndarray, accept: str) -> list[bytes]:
    """Each value as ``%.9g`` text (as every numeric answer of ``serve``); in JSON a
    non-finite value as ``NaN``/``Infinity``, as Python's ``json`` reads them."""
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    if len(v) == 0:
        return []
    texts = codecs.format_joined(v, b"\n").split(b"\n")
    if accept != codecs.CSV and not np.isfinite(v).all():
        texts = [codecs._JSON_NON_FINITE.get(t, t) for t in texts]
    return texts

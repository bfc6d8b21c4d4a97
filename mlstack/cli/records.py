"""``mlstack invoke --json`` and ``--jsonl``: raw records as a caller has them (field names,
category texts), sent to a model that carries its schema, and its answers printed for a person
(one line per record: the predicted label and its probability, or the score).

The request and answer forms are the inference image's (docs/serving.md, "Raw records"): JSON
``{"instances": [...]}`` or one bare record, JSON Lines of records; answers
``{"predictions": [{"predicted_label": ..., "probability": ..., "labels": [...],
"probabilities": [...]}]}`` (SageMaker Autopilot's keys), or ``{"score": ...}`` for regression.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class RecordsError(Exception):
    """Records the command cannot send, with what to do; the command exits 1."""


@dataclass(frozen=True)
class Request:
    body: bytes
    content_type: str
    records: int


def from_json(text: str) -> Request:
    """``--json``: one record (an object) or ``{"instances": [...]}``, sent as given."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        why = (
            f"{err.msg} at character {err.pos}"
            if isinstance(err, json.JSONDecodeError)
            else "nested too deeply or a number too long"
        )
        raise RecordsError(
            f"--json is not JSON ({why}); give one record, e.g. "
            """'{"island": "Biscoe", "bill_length_mm": 45.1}', or '{"instances": [...]}'"""
        ) from None
    if not isinstance(value, dict):
        raise RecordsError(
            f'--json takes one record (a JSON object) or {{"instances": [...]}}, got a '
            f'{_kind(value)}; for several records use {{"instances": [...]}} or --jsonl FILE'
        )
    instances = value.get("instances")
    count = len(instances) if isinstance(instances, list) else 1
    return Request(text.encode("utf-8"), "application/json", count)


def from_jsonl(data: bytes, source: str) -> Request:
    """``--jsonl``: one JSON object per line (blank lines skipped), checked line by line so a
    bad line is named here rather than by the endpoint's 400."""
    count = 0
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError
            why = (
                err.msg
                if isinstance(err, json.JSONDecodeError)
                else "not UTF-8"
                if isinstance(err, UnicodeDecodeError)
                else "nested too deeply or a number too long"
            )
            raise RecordsError(f"{source} line {number} is not JSON ({why})") from None
        if not isinstance(value, dict):
            raise RecordsError(
                f"{source} line {number} is a {_kind(value)}; each line is one record, a JSON "
                "object of field names and values"
            )
        count += 1
    if count == 0:
        raise RecordsError(f"{source} holds no record (one JSON object per line)")
    return Request(data, "application/jsonlines", count)


def read_jsonl(path: Path, stdin: Any) -> Request:
    if str(path) == "-":
        return from_jsonl(stdin.read(), "stdin")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RecordsError(f"cannot read {path}: {err.strerror}") from None
    return from_jsonl(data, str(path))


def readable(body: bytes) -> list[str] | None:
    """The answer as lines for a person, or None when it is not a JSON ``predictions`` answer
    (then the body is printed as it came)."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, too deep, too long a number
        return None
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or not all(isinstance(p, dict) for p in predictions):
        return None
    rows = [_row(i, p) for i, p in enumerate(predictions)]
    keys = [
        k
        for k in ("predicted_label", "probability", "score", "probabilities")
        if any(k in p for p in predictions)
    ]
    table = [["record", *keys], *[[row[0], *(row[1].get(k, "") for k in keys)] for row in rows]]
    widths = [max(len(line[c]) for line in table) for c in range(len(table[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]


def _row(index: int, prediction: dict[str, Any]) -> tuple[str, dict[str, str]]:
    cells = {k: _text(v) for k, v in prediction.items() if k in ("predicted_label", "score")}
    if "probability" in prediction:
        cells["probability"] = _text(prediction["probability"])
    probabilities = prediction.get("probabilities")
    labels = prediction.get("labels")
    if isinstance(probabilities, list):
        if isinstance(labels, list) and len(labels) == len(probabilities):
            cells["probabilities"] = ", ".join(
                f"{_text(label)} {_text(p)}" for label, p in zip(labels, probabilities, strict=True)
            )
        else:
            cells["probabilities"] = ", ".join(_text(p) for p in probabilities)
    return str(index), cells


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return str(value)


def _kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )

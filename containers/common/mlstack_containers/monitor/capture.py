"""An endpoint's data capture, read as SageMaker writes it, decoded as the endpoint decoded it.

SageMaker's "Capture data from real-time endpoint" (SageMaker developer guide,
https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html) writes
JSON Lines objects under ``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/``, one line per
captured request::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "69,0,153.7", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv; charset=utf-8",
                                        "mode": "OUTPUT", "data": "0.025", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "aaaaaaaa-...", "inferenceId": "(when the request sent one)",
                       "inferenceTime": "2022-02-14T17:25:49Z"},
     "eventVersion": "0"}

``encoding`` is ``CSV``, ``JSON`` (the data is the body's text) or ``BASE64`` (the body's bytes,
base64-encoded: what SageMaker does for a content type not named in the endpoint's
``CaptureContentTypeHeader``). A request is decoded with the serving container's own decoders
(:mod:`mlstack_containers.serving.codecs` for numeric rows, :class:`RecordCodec` for raw records
of a model that carries its schema), so the monitor sees exactly the rows the model saw.

A line that cannot be read (not JSON, not the shape above, an encoding or content type the
endpoint would refuse, a body the model refused) is *rejected*: counted, and the first few are
kept with their file and line. It is never a crash and never a row.
"""

from __future__ import annotations

import base64
import binascii
import json
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlstack_containers.schema import Feature, Label, Rows, Schema
from mlstack_containers.serving import codecs
from mlstack_containers.serving.codecs import ClientError
from mlstack_containers.serving.records import RecordCodec

KEPT_PROBLEMS = 20  # rejected lines listed in the report (all are counted)
_MAX_SHOWN = 200


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


@dataclass
class Problems:
    """Counted problems, the first :data:`KEPT_PROBLEMS` kept."""

    count: int = 0
    first: list[Problem] = field(default_factory=list)

    def add(self, file: str, line: int, reason: str) -> None:
        self.count += 1
        if len(self.first) < KEPT_PROBLEMS:
            self.first.append(Problem(file, line, reason[:_MAX_SHOWN]))


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; none: UTC) as an aware datetime."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class RequestDecoder:
    """A captured request body to feature rows, as the serving container reads it."""

    def __init__(self, width: int, schema: Schema | None) -> None:
        self.width = width
        # Fields the schema does not name are ignored: the monitor watches the features only.
        self.records = None if schema is None else RecordCodec(schema, unknown_fields="ignore")

    def rows(self, body: bytes, content_type: str) -> np.ndarray:
        kind = codecs.request_type(content_type)
        if self.records is not None and body.strip():
            parsed = self.records.parse(body, kind)
            if parsed is not None:
                return parsed
        features = codecs.parse_request(body, kind, self.width)
        if isinstance(features, np.ndarray):
            return features
        # Sparse (libsvm, RecordIO): a value the record does not hold is missing, as XGBoost
        # reads it.
        sparse = features.tocsr()
        dense = np.full(sparse.shape, np.nan, dtype=np.float32)
        rows = np.repeat(np.arange(sparse.shape[0]), np.diff(sparse.indptr))
        dense[rows, sparse.indices] = sparse.data
        return dense


def schema_of(features: list[tuple[str, tuple[str, ...] | None]]) -> Schema:
    """The serving schema of a baseline's features, (name, categories or None) in column order:
    raw records are decoded with it. The label is not read here (a placeholder)."""
    return Schema(
        "regression",
        Label("\x00label", "numeric"),
        tuple(
            Feature(name, "numeric") if cats is None else Feature(name, "categorical", cats)
            for name, cats in features
        ),
        Rows(0, 0, 0),
    )


def decode_output(body: bytes, content_type: str, records: int) -> np.ndarray:
    """The predictions of a captured response for ``records`` records (the serving container's
    answer formats, :func:`mlstack_containers.serving.codecs.format_response`): one row per
    record, one column per score (more than one: class probabilities)."""
    kind = codecs.media_type(content_type)
    if kind == codecs.CSV:
        lines = [line for line in body.decode("utf-8").splitlines() if line.strip()]
        rows = [[float(v) for v in line.split(",")] for line in lines]
        if len(rows) == 1 and records > 1:
            # A realtime answer to N records is one line of N values (the serving CSV).
            return np.asarray(rows[0], dtype=np.float64).reshape(-1, 1)
        return np.asarray(rows, dtype=np.float64)
    if kind in (codecs.JSON, codecs.JSONLINES):
        if kind == codecs.JSON:
            items = json.loads(body)["predictions"]
        else:
            items = [json.loads(line) for line in body.splitlines() if line.strip()]
        scores = [item["score"] for item in items]
        matrix = np.asarray(scores, dtype=np.float64)
        return matrix.reshape(-1, 1) if matrix.ndim == 1 else matrix
    raise ValueError(f"output content type {kind!r} is not read (csv, json, jsonlines)")


@dataclass
class Captured:
    """What the window's captured requests held."""

    columns: list[array] = field(default_factory=list)  # one per feature, NaN = missing
    records: int = 0
    requests: int = 0
    outside_window: int = 0
    rejected: Problems = field(default_factory=Problems)
    content_types: dict[str, int] = field(default_factory=dict)
    # inference id -> predictions of its records (only ids that have ground truth)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    ids_seen: int = 0

    def matrix(self, index: int) -> np.ndarray:
        return np.frombuffer(self.columns[index], dtype=np.float64)


def capture_files(root: Path) -> list[Path]:
    """Every ``*.jsonl`` below ``root``, any depth, in path order."""
    return sorted(p for p in root.rglob("*.jsonl") if p.is_file()) if root.is_dir() else []


def _body(side: Any, what: str) -> tuple[bytes, str]:
    if not isinstance(side, dict):
        raise ValueError(f"captureData.{what} is missing or not an object")
    data, encoding = side.get("data"), side.get("encoding")
    content_type = side.get("observedContentType")
    if not isinstance(data, str) or not isinstance(content_type, str):
        raise ValueError(f"captureData.{what} needs string data and observedContentType")
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True), content_type
        except (binascii.Error, ValueError):
            raise ValueError(f"captureData.{what}.data is not valid base64") from None
    if encoding in ("CSV", "JSON"):
        return data.encode("utf-8"), content_type
    raise ValueError(f"captureData.{what}.encoding {encoding!r}: expected CSV, JSON or BASE64")


class CaptureReader:
    """Reads capture files into a :class:`Captured` for the window [start, end)."""

    def __init__(
        self,
        decoder: RequestDecoder,
        start: datetime,
        end: datetime,
        labelled: Mapping[str, Any],
    ) -> None:
        self.decoder = decoder
        self.start, self.end = start, end
        self.labelled = labelled
        self.out = Captured(columns=[array("d") for _ in range(decoder.width)])

    def read(self, files: list[Path], root: Path) -> Captured:
        for path in files:
            name = str(path.relative_to(root))
            for number, line in _lines(path, name, self.out.rejected):
                if line.strip():
                    self._line(line, name, number)
        return self.out

    def _line(self, line: bytes, name: str, number: int) -> None:
        try:
            event = json.loads(line)
            meta = event["eventMetadata"]
            moment = parse_time(meta["inferenceTime"])
            if not self.start <= moment < self.end:
                self.out.outside_window += 1
                return
            body, content_type = _body(event["captureData"].get("endpointInput"), "endpointInput")
            rows = self.decoder.rows(body, content_type)
            identity = meta.get("inferenceId") or meta["eventId"]
            if not isinstance(identity, str):
                raise ValueError("eventMetadata.inferenceId/eventId is not a string")
            predictions = None
            if identity in self.labelled:
                predictions = self._predictions(event["captureData"], len(rows))
        except ClientError as exc:
            self.out.rejected.add(name, number, f"the endpoint refuses this request: {exc}")
            return
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            self.out.rejected.add(name, number, f"not a capture record: {reason}")
            return
        for index, column in enumerate(self.out.columns):
            column.extend(rows[:, index].astype(np.float64).tolist())
        self.out.records += len(rows)
        self.out.requests += 1
        kind = codecs.media_type(content_type)
        self.out.content_types[kind] = self.out.content_types.get(kind, 0) + 1
        if predictions is not None:
            self.out.predictions[identity] = predictions

    def _predictions(self, capture: dict[str, Any], records: int) -> np.ndarray | None:
        """The response's predictions, None when the capture has no (readable) output."""
        try:
            body, content_type = _body(capture.get("endpointOutput"), "endpointOutput")
            predictions = decode_output(body, content_type, records)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None
        if len(predictions) != records or not np.all(np.isfinite(predictions)):
            return None
        return predictions


def _lines(path: Path, name: str, problems: Problems) -> Iterator[tuple[int, bytes]]:
    """The lines of a capture file; a file that cannot be read is one problem."""
    try:
        with path.open("rb") as handle:
            yield from enumerate(handle, start=1)
    except OSError as exc:
        problems.add(name, 0, f"cannot read the file: {exc}")

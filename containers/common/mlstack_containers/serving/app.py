"""The WSGI application: ``/ping``, ``/invocations``, ``/execution-parameters``.

A plain WSGI callable (no framework): per request it does the routing, the payload limit, the
codecs and one XGBoost prediction, and nothing else. Every exception is caught here, so no
request — however malformed — can take a worker down.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import xgboost as xgb

try:  # the distinct-row prediction's hash table (the inference image installs pandas)
    import pandas as _pandas
except ImportError:  # pragma: no cover
    _pandas = None

from mlstack_containers import model_io
from mlstack_containers.schema import SCHEMA_FILE, Schema, SchemaError
from mlstack_containers.serving import codecs
from mlstack_containers.serving.answers import Answers, requested_keys
from mlstack_containers.serving.config import ServerConfig
from mlstack_containers.serving.records import RecordCodec

log = logging.getLogger("mlstack.serving")

try:  # XGBoost's C library, for the dense fast path of Predictor.predict (pinned 3.2.0)
    from xgboost.core import _LIB as _XGB_LIB
    from xgboost.core import _check_call as _xgb_check_call

    _XGB_PREDICT_DENSE = _XGB_LIB.XGBoosterPredictFromDense
except (ImportError, AttributeError):  # pragma: no cover - another XGBoost: the public API
    _XGB_PREDICT_DENSE = None
_FLOAT32 = np.dtype(np.float32).str.encode()  # b"<f4" on every platform XGBoost ships for

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
_CUSTOM_ATTRIBUTES_ENV = "HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"
# A body this far over the limit is not drained before the 413 (the connection is closed).
_DRAIN_FACTOR = 4
# CSV bodies from twice this size are parsed, predicted and written piece by piece (pipelined).
PIECE_BYTES = 1 << 20

StartResponse = Callable[..., Any]


class SpareCpus(Protocol):
    """Whether a large request may take a second CPU (pipelined pieces, two threads).

    With every CPU already busy (two workers each parsing a batch on two CPUs), the pieces
    buy no time and cost CPU: pandas' set-up per piece, the hand-offs between the threads.
    The server gives each worker one that counts large requests in progress in all workers
    (:class:`~.server.BatchCount`).
    """

    def running(self) -> AbstractContextManager[None]:
        """Held while this worker answers a large request."""
        ...

    def spare(self) -> bool:
        """Whether fewer large requests are in progress (this one included) than CPUs."""
        ...


class AlwaysSpare:
    """:class:`SpareCpus` of an application alone (no server's count): always a spare CPU."""

    def running(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def spare(self) -> bool:
        return True


@dataclass
class Predictor:
    """A loaded booster and what is needed to call it."""

    booster: xgb.Booster
    num_features: int
    iteration_range: tuple[int, int] = (0, 0)
    objective: str = ""
    schema: Schema | None = None  # the dataset's schema.json, when the model carries one

    def __post_init__(self) -> None:
        self._rounds = self.iteration_range[1] or self.booster.num_boosted_rounds()
        # The prediction settings inplace_predict would encode as JSON on every call.
        self._config = json.dumps(
            {
                "type": 0,
                "training": False,
                "iteration_begin": self.iteration_range[0],
                "iteration_end": self.iteration_range[1],
                "missing": float("nan"),
                "strict_shape": False,
                "cache_id": 0,
            }
        ).encode()

    @classmethod
    def load(cls, config: ServerConfig) -> Predictor:
        loaded = model_io.load_model(config.model_dir)
        meta = loaded.metadata
        booster = loaded.booster
        booster.set_param({"nthread": config.predict_threads})
        rounds = booster.num_boosted_rounds()
        iteration_range = (0, 0)
        if meta.best_iteration is not None and meta.best_iteration + 1 < rounds:
            iteration_range = (0, meta.best_iteration + 1)  # early stopping's best model
        schema = read_schema(config.model_dir, meta.num_features)
        return cls(booster, meta.num_features, iteration_range, meta.objective, schema)

    def predict(self, features: codecs.Features) -> np.ndarray:
        if (
            _XGB_PREDICT_DENSE is not None
            and type(features) is np.ndarray
            and features.dtype == np.float32
            and features.ndim == 2
            and features.shape[0] > 0
            and features.flags.c_contiguous
        ):
            if (
                features.shape[0] >= DISTINCT_MIN_ROWS
                and features.shape[1] <= 2
                and self._rounds >= DISTINCT_MIN_ROUNDS
            ):
                found = _distinct_rows(features)
                if found is not None:
                    rows, index = found
                    return self._predict_dense(rows)[index]
            return self._predict_dense(features)
        return self.booster.inplace_predict(
            features, iteration_range=self.iteration_range, validate_features=False
        )

    def _predict_dense(self, features: np.ndarray) -> np.ndarray:
        """``inplace_predict`` of a float32 matrix, straight through XGBoost's C API.

        The same call ``Booster.inplace_predict`` makes (``XGBoosterPredictFromDense``), without
        the per-call type dispatch and JSON encoding that take half of a one-row prediction's
        ~75 µs. XGBoost's inplace prediction is thread-safe; its result buffer is per thread,
        so it is copied before anything else runs on this thread.
        """
        rows, cols = features.shape
        interface = b'{"data": [%d, true], "shape": [%d, %d], "typestr": "%s", "version": 3}' % (
            features.ctypes.data,
            rows,
            cols,
            _FLOAT32,
        )
        shape = ctypes.POINTER(ctypes.c_uint64)()
        dims = ctypes.c_uint64()
        preds = ctypes.POINTER(ctypes.c_float)()
        _xgb_check_call(
            _XGB_PREDICT_DENSE(
                self.booster.handle,
                interface,
                self._config,
                None,
                ctypes.byref(shape),
                ctypes.byref(dims),
                ctypes.byref(preds),
            )
        )
        out_shape = tuple(shape[i] for i in range(dims.value))
        size = math.prod(out_shape)
        if size <= 1024:  # a few predictions: a bytes copy is cheaper than as_array's set-up
            copied = bytearray(ctypes.string_at(preds, 4 * size))
            return np.frombuffer(copied, np.float32).reshape(out_shape)
        return np.ctypeslib.as_array(preds, (size,)).copy().reshape(out_shape)


# Many rows, one or two features a row: predict each distinct row once when the rows repeat
# (the reference workflow's rows, two integers 0-100, have at most 10,201 distinct rows in a
# batch of a million). Finding them (a hash table) costs ~17 ns a row; predicting costs ~27 ns
# a row for one boosting round and ~15 more for each further round (bench/README.md, issue 26).
DISTINCT_MIN_ROWS = 1 << 16
DISTINCT_MIN_ROUNDS = 2
_SAMPLE_ROWS = 8192
# An odd multiplier: a bijection of the 64-bit (32-bit) keys, so distinct rows stay distinct.
# pandas' hash of an integer key spreads the bit patterns of floats poorly (2-3x slower).
_MIX = {8: (0x9E3779B97F4A7C15, 64), 4: (0x9E3779B1, 32)}


def _distinct_rows(features: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The distinct rows of a C-contiguous float32 matrix of one or two columns and, for each
    row, its position among them; None when a sample of the rows shows they seldom repeat.

    Rows are compared by their bits (a row of one or two float32 is one integer key), so two
    rows that share a key are the same input to XGBoost and get the same prediction; ``-0.0``
    and ``0.0``, or two NaNs of different payloads, are simply predicted twice.
    """
    if _pandas is None:  # pragma: no cover - the inference image installs pandas
        return None
    size = features.shape[1] * features.itemsize
    key_type = np.uint64 if size == 8 else np.uint32
    keys = features.view(key_type).ravel()
    sample = keys[:: max(1, len(keys) // _SAMPLE_ROWS)]
    seen = len(np.unique(sample))
    # 90% distinct in a sample of 8,192 means about 39,000 distinct rows in all (a draw of s
    # from D equally likely rows shows D(1 - exp(-s/D)) distinct): a few % of a 6 MB batch.
    if seen > 0.9 * len(sample):
        return None
    multiplier, bits = _MIX[size]
    hint = min(len(keys), 8 * seen)  # room for the rows the sample missed: no regrowing
    index, mixed = _pandas.factorize(keys * key_type(multiplier), size_hint=hint)
    unmixed = np.asarray(mixed, key_type) * key_type(pow(multiplier, -1, 1 << bits))
    return unmixed.view(np.float32).reshape(-1, features.shape[1]), index


def read_schema(model_dir: Path, num_features: int) -> Schema | None:
    """The model's ``schema.json`` (None without one); ModelError when it is unreadable or
    does not describe the booster's features."""
    path = model_dir / SCHEMA_FILE
    if not path.exists():
        return None
    try:
        schema = Schema.read(path)
    except (SchemaError, OSError) as exc:
        raise model_io.ModelError(f"cannot read {path}: {exc}") from None
    if len(schema.features) != num_features:
        raise model_io.ModelError(
            f"{path} describes {len(schema.features)} features but the model has {num_features}"
        )
    return schema


class InferenceApp:
    """The WSGI application of one loaded model.

    A model with a schema also takes raw records (:mod:`.records`) and answers them with class
    labels or scores (:mod:`.answers`); ModelError when its objective or
    ``SAGEMAKER_INFERENCE_OUTPUT`` does not fit the schema.
    """

    def __init__(self, predictor: Predictor, config: ServerConfig) -> None:
        self.predictor = predictor
        self.config = config
        self.records: RecordCodec | None = None
        self.answers: Answers | None = None
        if predictor.schema is not None:
            self.records = RecordCodec(predictor.schema, unknown_fields=config.unknown_fields)
            try:
                self.answers = Answers(
                    predictor.schema, predictor.objective, config.inference_output
                )
            except ValueError as exc:
                raise model_io.ModelError(str(exc)) from None
        self.execution_parameters = json.dumps(
            {
                "MaxConcurrentTransforms": config.workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": config.max_payload_mb,
            }
        ).encode()
        self._pipeline: ThreadPoolExecutor | None = None  # started by the first large CSV
        # Whether a large CSV body may be pipelined on a second CPU; the server sets its count.
        self.cpus: SpareCpus = AlwaysSpare()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        headers: list[tuple[str, str]] = []
        try:
            if path == "/invocations":
                if method != "POST":
                    raise codecs.ClientError(405, "use POST for /invocations")
                status, ctype, parts = 200, *self.invocations(environ)
                attributes = environ.get(_CUSTOM_ATTRIBUTES_ENV)
                if attributes is not None:
                    headers.append((CUSTOM_ATTRIBUTES, attributes))
            elif path == "/ping":
                if method not in ("GET", "HEAD"):
                    raise codecs.ClientError(405, "use GET for /ping")
                status, ctype, parts = 200, "text/plain", []
            elif path == "/execution-parameters":
                status, ctype, parts = 200, codecs.JSON, [self.execution_parameters]
            else:
                raise codecs.ClientError(404, f"no such path {path!r}")
        except codecs.ClientError as exc:
            status, ctype, parts = exc.status, "text/plain; charset=utf-8", [exc.message.encode()]
            log.debug("client error %d: %s", exc.status, exc.message)
            if exc.close:
                _close_after(start_response)
        except Exception as exc:  # the server's fault: answer 500, keep the worker
            log.exception("error while handling %s %s", method, path)
            status, ctype = 500, "text/plain; charset=utf-8"
            parts = [f"server error: {exc}".encode()]
        # The connection stays usable only when the whole body has been read (an answer
        # given before reading it: an error, /ping or /execution-parameters with a body):
        # what the client sent beyond it would be taken for the next request.
        if not environ.get(_BODY_READ) and not self._finish_body(environ):
            _close_after(start_response)
        length = sum(map(len, parts))
        headers += [("Content-Type", ctype), ("Content-Length", str(length))]
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return parts

    def invocations(self, environ: dict[str, Any]) -> tuple[str, list[bytes]]:
        """The response type and body (in pieces: they are sent one after the other)."""
        kind = codecs.request_type(environ.get("CONTENT_TYPE"))
        accept = codecs.response_type(environ.get("HTTP_ACCEPT"))
        length = _content_length(environ)
        if length is not None and 2 * PIECE_BYTES <= length <= self.config.max_payload_bytes:
            # Counted from its first byte: while this worker reads a batch, another worker
            # starting one must not take this CPU for a spare one and parse in pieces (which
            # costs ~20% more CPU; with 2 clients that was a quarter of the parsing).
            with self.cpus.running():
                return accept, self.answer(self.read_body(environ), kind, accept, environ)
        body = self.read_body(environ)
        if len(body) < 2 * PIECE_BYTES:
            return accept, self.answer(body, kind, accept, environ)
        with self.cpus.running():
            return accept, self.answer(body, kind, accept, environ)

    def answer(self, body: bytes, kind: str, accept: str, environ: dict[str, Any]) -> list[bytes]:
        """The response body of a request (in pieces: they are sent one after the other)."""
        if self.records is not None:
            answer = self.raw_invocation(body, kind, accept, environ)
            if answer is not None:
                return [answer]
        if kind == codecs.CSV and len(body) >= 2 * PIECE_BYTES and self.cpus.spare():
            parts = self.pipelined_csv(body, accept)
            if parts is not None:
                return parts
        features = codecs.parse_request(body, kind, self.predictor.num_features)
        predictions = self.predictor.predict(features)
        return [codecs.format_response(predictions, accept, batch=self.config.batch)]

    def raw_invocation(
        self, body: bytes, kind: str, accept: str, environ: dict[str, Any]
    ) -> bytes | None:
        """The answer of a model with a schema: raw records (or a request selecting answer
        keys) get labels or scores; None leaves a numeric request to today's path."""
        assert self.records is not None and self.answers is not None
        if not body.strip():
            raise codecs.ClientError(400, "empty request body: send at least one record")
        features = self.records.parse(body, kind)
        requested = requested_keys(environ.get(_CUSTOM_ATTRIBUTES_ENV))
        keys = self.answers.keys_for(accept, requested, raw=features is not None)
        if keys is None:
            if features is None:
                return None
            # Raw records asking for RecordIO-protobuf: the scores, as every RecordIO answer.
            predictions = self.predictor.predict(features)
            return codecs.format_response(predictions, accept, batch=self.config.batch)
        if features is None:
            features = codecs.parse_request(body, kind, self.predictor.num_features)
        return self.answers.format(self.predictor.predict(features), accept, keys)

    def pipelined_csv(self, body: bytes, accept: str) -> list[bytes] | None:
        """A large CSV body in ~1 MiB pieces of whole lines: while this thread parses a piece
        (numpy's parser holds the GIL), a prediction thread predicts and writes the previous
        one (XGBoost and most of the writer release it), so a lone large request uses two
        CPUs. When the other CPUs get busy meanwhile (:class:`SpareCpus`), the rest of the body
        is parsed in one call. The same answer as the whole body at once; None when a piece is
        not valid CSV of the model's width, and the caller then parses the whole body for the
        exact error.
        """
        if self._pipeline is None:
            self._pipeline = ThreadPoolExecutor(1, thread_name_prefix="predict")
        jobs: list[Future[tuple[int, Any]]] = []
        try:
            done = 0
            for i, piece in enumerate(_line_pieces(body, PIECE_BYTES)):
                rest = i > 0 and not self.cpus.spare()
                if rest:  # no CPU to pipeline with: the rest of the body in one call
                    piece = body[done:]
                done += len(piece)
                try:
                    features = codecs.parse_csv(piece)
                except codecs.ClientError:
                    return None
                if features.shape[0] > 0:  # else blank lines only
                    if features.shape[1] != self.predictor.num_features:
                        return None
                    jobs.append(self._pipeline.submit(self._predict_piece, features, accept))
                if rest:
                    break
            if not jobs:
                return None
            results = [job.result() for job in jobs]
        finally:
            for job in jobs:
                job.cancel()  # no-op for finished jobs; stops queued ones after an error
        if accept == codecs.JSON:  # one JSON document: formatted whole
            predictions = np.concatenate([r for _, r in results])
            return [codecs.format_response(predictions, accept, batch=self.config.batch)]
        if accept == codecs.RECORDIO:
            sep = b""  # a stream of records
        elif accept == codecs.CSV and not self.config.batch and results[0][0] == 1:
            sep = b","  # realtime single predictions: one line
        else:
            sep = b"\n"  # a line per record
        parts = [results[0][1]]
        for _, text in results[1:]:
            parts += [sep, text] if sep else [text]
        return parts

    def _predict_piece(self, features: np.ndarray, accept: str) -> tuple[int, Any]:
        predictions = self.predictor.predict(features)
        if accept == codecs.JSON:
            return predictions.ndim, predictions
        text = codecs.format_response(predictions, accept, batch=self.config.batch)
        return predictions.ndim, text

    def read_body(self, environ: dict[str, Any]) -> bytes:
        """The whole request body, or a :class:`~.codecs.ClientError`: 413 over the payload
        limit, 400 for a malformed ``Content-Length`` or chunked framing, a body shorter than
        its ``Content-Length`` (the client stopped sending), 408 when the client stalls."""
        limit = self.config.max_payload_bytes
        stream = environ["wsgi.input"]
        length = _content_length(environ)
        environ[_BODY_READ] = True  # whatever happens below, nothing more is drained
        if length is not None and length > limit:
            drained = self._drain(environ, length)
            raise self._too_large(f"{length} bytes", close=drained < length)
        with _read_timeout(environ, self.config.body_timeout):
            body = _read(stream, length if length is not None else limit + 1)
            if len(body) > limit:  # chunked upload without a Content-Length
                self._drain(environ, _DRAIN_FACTOR * limit)
                raise self._too_large(f"more than {limit} bytes", close=True)
        if length is not None and len(body) < length:
            raise codecs.ClientError(
                400,
                f"the request body ended after {len(body)} of the {length} bytes its "
                "Content-Length announced; send the whole body",
                close=True,
            )
        return body

    def _too_large(self, size: str, close: bool) -> codecs.ClientError:
        return codecs.ClientError(
            413,
            f"request body of {size} exceeds the limit of {self.config.max_payload_mb} MB "
            "(SAGEMAKER_MAX_PAYLOAD_IN_MB); split it into smaller requests",
            close=close,
        )

    def _drain(self, environ: dict[str, Any], length: int) -> int:
        """Read and drop up to ``length`` bytes (at most ``_DRAIN_FACTOR`` x the limit) of the
        body, so that the client, still sending, receives the answer instead of a reset."""
        left = min(length, _DRAIN_FACTOR * self.config.max_payload_bytes)
        drained = 0
        try:
            with _read_timeout(environ, self.config.body_timeout):
                while left > 0:
                    # _read: a client that stalls (or breaks its framing) while its body is
                    # drained is its own fault, never a 500.
                    chunk = _read(environ["wsgi.input"], min(left, 1 << 20))
                    if not chunk:
                        break
                    left -= len(chunk)
                    drained += len(chunk)
        except codecs.ClientError:
            return -1
        return drained

    def _finish_body(self, environ: dict[str, Any]) -> bool:
        """Read what is left of a body nobody read (an error answered before reading it) up to
        the payload limit; True when the connection can then serve the next request."""
        if environ.get(_BODY_READ):
            return True
        environ[_BODY_READ] = True
        raw_length = environ.get("CONTENT_LENGTH") or ""
        if raw_length in ("", "0") and "HTTP_TRANSFER_ENCODING" not in environ:
            return True  # no body (every GET /ping)
        try:
            length = _content_length(environ)
        except codecs.ClientError:
            return False
        limit = self.config.max_payload_bytes
        if length is not None and length > limit:
            # Too much to keep the connection for, but read (some of) it so that the client,
            # still sending, receives the answer rather than a reset.
            self._drain(environ, length)
            return False
        try:
            with _read_timeout(environ, self.config.body_timeout):
                body = _read(environ["wsgi.input"], length if length is not None else limit + 1)
        except codecs.ClientError:
            return False
        return len(body) == length if length is not None else len(body) <= limit


class BodyTooLarge(Exception):
    """Raised by the server's body reader for a chunk larger than the payload limit (see
    :mod:`.server`): answered 413 at once instead of waiting for the chunk's bytes."""


_BODY_READ = "mlstack.body_read"


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH") or ""
    if not raw.strip():
        return None
    if not (raw.strip().isascii() and raw.strip().isdigit()):  # int() takes "-1", "1_000"
        raise codecs.ClientError(400, f"invalid Content-Length {raw!r}", close=True)
    return int(raw)


def _read(stream: Any, size: int) -> bytes:
    """``stream.read(size)``; a framing error while reading is the client's (400)."""
    try:
        return stream.read(size)
    except BodyTooLarge as exc:
        message = f"{exc}; split it into smaller requests"
        raise codecs.ClientError(413, message, close=True) from None
    except TimeoutError:
        raise codecs.ClientError(
            408, "the client stopped sending the request body", close=True
        ) from None
    except Exception as exc:  # gunicorn's ParseException family, NoMoreData, a reset
        reason = str(exc) or type(exc).__name__
        raise codecs.ClientError(
            400, f"could not read the request body ({type(exc).__name__}: {reason})", close=True
        ) from None


@contextlib.contextmanager
def _read_timeout(environ: dict[str, Any], seconds: float) -> Iterator[None]:
    """Bound each read of the body: a client that stops sending gets a 408, not a thread
    blocked until it goes away. gunicorn hands the socket in ``gunicorn.socket``."""
    sock = environ.get("gunicorn.socket")
    previous = None
    if sock is not None:
        try:
            previous = sock.gettimeout()
            sock.settimeout(seconds)
        except OSError:
            sock = None
    try:
        yield
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(previous)


def _close_after(start_response: StartResponse) -> None:
    """Answer with ``Connection: close`` and close the connection after the response.

    gunicorn drops a ``Connection`` header an application sets (hop-by-hop); its response
    object, whose ``start_response`` this is, has ``force_close`` for that. Other WSGI servers:
    nothing (they close a connection whose body was not read).
    """
    force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
    if callable(force_close):
        force_close()


def _line_pieces(body: bytes, size: int) -> list[bytes]:
    """``body`` cut after the first newline past every ``size`` bytes (whole lines each)."""
    pieces, start = [], 0
    while start < len(body):
        end = body.find(b"\n", start + size)
        if end < 0:
            pieces.append(body[start:])
            break
        pieces.append(body[start : end + 1])
        start = end + 1
    return pieces


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Payload Too Large",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}

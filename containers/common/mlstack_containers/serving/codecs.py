"""Request parsing and response formatting for ``/invocations`` (no HTTP here).

Request content types: ``text/csv``, ``application/json``, ``application/jsonlines``,
``text/libsvm`` / ``text/x-libsvm``, ``application/x-recordio-protobuf``.
Response types (``Accept``): ``text/csv``, ``application/json``, ``application/jsonlines``,
``application/x-recordio-protobuf``. Every client mistake raises :class:`ClientError` with the
HTTP status and a message saying what was wrong.
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from typing import Any

import numpy as np
import scipy.sparse

try:  # the CSV fast path (the inference image installs it; the reference parser is numpy's)
    import pandas as _pandas
except ImportError:  # pragma: no cover
    _pandas = None

from mlstack_containers import recordio

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
LIBSVM = "text/libsvm"
RECORDIO = "application/x-recordio-protobuf"

REQUEST_TYPES = {
    CSV: CSV,
    JSON: JSON,
    JSONLINES: JSONLINES,
    "application/x-jsonlines": JSONLINES,
    "application/json-lines": JSONLINES,
    LIBSVM: LIBSVM,
    "text/x-libsvm": LIBSVM,
    RECORDIO: RECORDIO,
    "application/x-recordio": RECORDIO,
}
RESPONSE_TYPES = {
    CSV: CSV,
    JSON: JSON,
    JSONLINES: JSONLINES,
    "application/x-jsonlines": JSONLINES,
    RECORDIO: RECORDIO,
}
DEFAULT_ACCEPT = CSV

Features = np.ndarray | scipy.sparse.csr_matrix


class ClientError(Exception):
    """A request the server cannot answer because of the client; ``status`` is the HTTP code.

    ``close``: the connection cannot serve another request after this answer (the body's
    framing is broken or only partly read).
    """

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


def media_type(header: str | None) -> str:
    """``"Text/CSV; charset=utf-8"`` -> ``"text/csv"``."""
    return (header or "").split(";", 1)[0].strip().lower()


def request_type(header: str | None) -> str:
    mime = media_type(header)
    if not mime:
        raise ClientError(
            415, "missing Content-Type; supported: " + ", ".join(sorted(REQUEST_TYPES))
        )
    kind = REQUEST_TYPES.get(mime)
    if kind is None:
        raise ClientError(
            415, f"unsupported Content-Type {mime!r}; supported: {', '.join(sorted(REQUEST_TYPES))}"
        )
    return kind


def response_type(header: str | None) -> str:
    """The first supported type of an ``Accept`` header; ``*/*`` or none gives text/csv."""
    if not header or not header.strip():
        return DEFAULT_ACCEPT
    for part in header.split(","):
        mime = media_type(part)
        if mime in RESPONSE_TYPES:
            return RESPONSE_TYPES[mime]
        if mime in ("*/*", "text/*"):
            return DEFAULT_ACCEPT
        if mime == "application/*":
            return JSON
    raise ClientError(
        406,
        f"unsupported Accept {header.strip()!r}; supported: {', '.join(sorted(RESPONSE_TYPES))}",
    )


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def parse_request(body: bytes, kind: str, num_features: int) -> Features:
    """Parse a request body of type ``kind`` into a feature matrix of ``num_features`` columns."""
    if not body.strip():
        raise ClientError(400, "empty request body: send at least one record")
    if kind == CSV:
        features: Features = parse_csv(body)
    elif kind == JSON:
        features = parse_json(body)
    elif kind == JSONLINES:
        features = parse_jsonlines(body)
    elif kind == LIBSVM:
        features = parse_libsvm(body, num_features)
    else:
        features = parse_recordio(body, num_features)
    if features.shape[0] == 0:
        raise ClientError(400, "the request holds no records")
    width = features.shape[1]
    if scipy.sparse.issparse(features):
        if width > num_features:
            raise ClientError(
                400, f"feature index {width - 1} is out of range: the model has {num_features}"
            )
        if width < num_features:
            features = scipy.sparse.csr_matrix(
                (features.data, features.indices, features.indptr),
                shape=(features.shape[0], num_features),
            )
    elif width != num_features:
        raise ClientError(
            400, f"each record must have {num_features} features, the request has {width}"
        )
    return features


def parse_csv(body: bytes) -> np.ndarray:
    """Numbers only, no header, one record per line; an empty field is a missing value.

    pandas' C parser for a body of 8 KiB or more that it reads as a rectangle of numbers
    (2-20x faster than ``np.loadtxt`` on 6 MB batches, bench/csv_batches.py); otherwise
    ``np.loadtxt``, the reference, decides: its result or its error message.
    """
    if len(body) >= PANDAS_MIN_BYTES:
        fast = _parse_csv_pandas(body)
    else:
        fast = _parse_csv_line(body) if len(body) <= LINE_MAX_BYTES else None
    return fast if fast is not None else _parse_csv_numpy(body)


# One record of plain numbers (a realtime request): Python's float() per field, ~1 µs instead
# of np.loadtxt's ~13. Both read a field as a double (the same correctly rounded conversion)
# and cast it to float32; anything else (spaces, CR, empty fields, letters, more lines) goes
# to np.loadtxt, and so does any field float() rejects. A property test checks the bits.
LINE_MAX_BYTES = 4096
_PLAIN_LINE = re.compile(rb"[0-9.eE+\-]+(?:,[0-9.eE+\-]+)*\n?")


def _parse_csv_line(body: bytes) -> np.ndarray | None:
    if _PLAIN_LINE.fullmatch(body) is None:
        return None
    try:
        values = [float(field) for field in body.rstrip(b"\n").split(b",")]
    except ValueError:
        return None
    with np.errstate(over="ignore"):  # 1e39: inf in float32, as np.loadtxt gives
        return np.array([values], dtype=np.float32)


# pandas' fixed cost (~0.3 ms a call) loses to np.loadtxt below a few KiB (13 µs for one
# record): a one-record request stays on numpy.
PANDAS_MIN_BYTES = 8192
_PANDAS_DIFFERS = (b" ", b"\t", b"\x0b", b"\x0c")
# pandas reads these fields as a missing value; np.loadtxt reads them as the same NaN (bits
# 0x7fc00000). pandas' default list also takes words np.loadtxt refuses ("NA", "NULL", "None",
# "#N/A", ...) and reads "-nan" without its sign, and its default quoting takes '"1.5"', which
# np.loadtxt refuses too: with only these words and no quoting, any such field fails pandas
# and np.loadtxt answers. Checking each field against pandas' 19 words also cost ~2 ms of the
# ~27 of a 6 MB body of 20 features (bench/README.md, issue 26, session 5).
_PANDAS_OPTIONS: dict[str, Any] = {
    "header": None,
    "dtype": np.float32,
    "engine": "c",
    "skip_blank_lines": True,
    "keep_default_na": False,
    "na_values": ["", "nan", "NaN"],
    "quoting": csv.QUOTE_NONE,
}


def _parse_csv_pandas(body: bytes) -> np.ndarray | None:
    if _pandas is None:
        return None
    # Where pandas and np.loadtxt read differently, np.loadtxt decides: whitespace (pandas
    # skips a line of spaces, np.loadtxt reads it as a record of missing values) and a lone
    # CR (a line end for pandas only). Each check is a memchr-speed scan (~0.5 ms for 6 MB).
    if any(c in body for c in _PANDAS_DIFFERS):
        return None
    if b"\r" in body and body.count(b"\r") != body.count(b"\r\n"):  # count: ~8 ms for 6 MB
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 1e999: inf, as np.loadtxt
            frame = _pandas.read_csv(io.BytesIO(body), **_PANDAS_OPTIONS)
        matrix = frame.to_numpy(np.float32)
    except Exception:  # any doubt: np.loadtxt reads it or says what is wrong
        return None
    rows, width = matrix.shape
    if rows == 0 or b"#" in body:  # "#" starts a comment for np.loadtxt, not for pandas
        return None
    # pandas fills a short line with NaN: a rectangle has exactly (width - 1) commas a row.
    # A short line leaves a NaN in the last column, so without one there is no need to count.
    if np.isnan(matrix[:, -1]).any() and body.count(b",") != rows * (width - 1):
        return None
    return _row_major(matrix)


def _row_major(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` in C order (what XGBoost's dense prediction reads), from pandas' column-major
    result. numpy's transposing copy of a narrow matrix goes element by element (~5 ms for
    the 1,080,525 x 2 reference rows); copying each column into place takes ~1.5 ms. From
    about 8 columns the transposing copy is the faster (bench/README.md, issue 26, session 5).
    """
    rows, width = matrix.shape
    if matrix.flags.c_contiguous or width > _NARROW:
        return np.ascontiguousarray(matrix)
    out = np.empty((rows, width), matrix.dtype)
    for j in range(width):
        out[:, j] = matrix[:, j]
    return out


_NARROW = 4


def _parse_csv_numpy(body: bytes) -> np.ndarray:
    def load(**kwargs: Any) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            warnings.simplefilter("ignore", RuntimeWarning)  # 1e999: inf, as float() reads it
            return np.loadtxt(
                io.BytesIO(body), delimiter=",", dtype=np.float32, ndmin=2, encoding=None, **kwargs
            )

    try:
        return load()
    except ValueError as fast_error:
        try:
            return load(converters=lambda s: float(s) if s.strip() else np.nan)
        except (ValueError, UnicodeDecodeError):
            raise ClientError(400, f"invalid CSV: {fast_error}") from None
    except UnicodeDecodeError as exc:
        raise ClientError(400, f"invalid CSV: not UTF-8 text ({exc.reason})") from None


def _rows(value: Any) -> list[Any]:
    """Rows of a JSON request: ``{"instances": [...]}``, ``{"features": [...]}`` or a list."""
    if isinstance(value, dict):
        if "instances" in value:
            value = value["instances"]
        elif "features" in value:
            return [value["features"]]
        else:
            raise ClientError(
                400, 'JSON object must have "instances" (a list of records) or "features"'
            )
    if not isinstance(value, list):
        raise ClientError(400, "JSON request must be an object or a list of records")
    if value and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return [value]  # one flat record
    return [_row(v) for v in value]


def _row(value: Any) -> Any:
    if isinstance(value, dict):
        if "data" in value:  # SageMaker's common JSON format for dense features
            return _common_format_values(value["data"])
        if "features" not in value:
            raise ClientError(
                400,
                'each JSON record object must have "features" (a list of numbers) or '
                '"data": {"features": {"values": [...]}}',
            )
        return value["features"]
    return value


def _common_format_values(data: Any) -> Any:
    """``{"features": {"values": [...]}}``: the ``data`` of a record in SageMaker's common JSON
    request format (dense; see the "Common Data Formats for Inference" page of the SageMaker
    Developer Guide)."""
    features = data.get("features") if isinstance(data, dict) else None
    values = features.get("values") if isinstance(features, dict) else None
    if values is None:
        raise ClientError(400, 'a "data" record must be {"features": {"values": [numbers]}}')
    if features.get("keys") is not None:
        raise ClientError(
            400,
            'sparse "keys" in a JSON record are not supported: send the dense "values", '
            "or use text/libsvm or application/x-recordio-protobuf for sparse records",
        )
    return values


def _matrix(rows: list[Any]) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):  # 1e300 is inf in float32, as in a CSV request
            matrix = np.asarray(rows, dtype=np.float32)
    except OverflowError:  # an integer beyond any float (a 400-digit literal)
        where = _too_large(rows)
        raise ClientError(400, f"a number in the records is too large: {where}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise ClientError(400, f"records must be lists of numbers of one length: {exc}") from None
    if matrix.ndim != 2:
        raise ClientError(400, f"records must be flat lists of numbers (got {matrix.ndim}-D data)")
    return matrix


def _too_large(rows: list[Any]) -> str:
    """Where the first integer too large for a float is (record and position)."""
    for i, row in enumerate(rows):
        for j, v in enumerate(row if isinstance(row, list) else [row]):
            if isinstance(v, int) and not isinstance(v, bool):
                try:
                    float(v)
                except OverflowError:
                    return f"record {i}, value {j} has {len(str(v))} digits"
    return "an integer is beyond the float range"


def _loads(text: bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ClientError(400, f"invalid {what}: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientError(400, f"invalid {what}: {exc}") from None


def parse_json(body: bytes) -> np.ndarray:
    return _matrix(_rows(_loads(body, "JSON")))


def parse_jsonlines(body: bytes) -> np.ndarray:
    rows = []
    for lineno, line in enumerate(body.splitlines(), start=1):
        if line.strip():
            rows.append(_row(_loads(line, f"JSON on line {lineno}")))
    return _matrix(rows)


def parse_libsvm(body: bytes, num_features: int) -> scipy.sparse.csr_matrix:
    """``[label] index:value ...`` per line; indices 0-based as in XGBoost (and training)."""
    indptr = [0]
    cols: list[int] = []
    vals: list[float] = []
    for lineno, raw in enumerate(body.splitlines(), start=1):
        tokens = raw.split(b"#", 1)[0].split()
        if not tokens:
            continue
        if b":" not in tokens[0]:
            tokens = tokens[1:]  # the label (ignored) of a labelled line
        try:
            for token in tokens:
                index, _, value = token.partition(b":")
                if index == b"qid":
                    continue
                col = int(index)
                if not 0 <= col < num_features:
                    raise ClientError(
                        400,
                        f"libsvm line {lineno}: feature index {col} is out of range "
                        f"0..{num_features - 1}",
                    )
                cols.append(col)
                vals.append(float(value))
        except ValueError:
            bad = token.decode(errors="replace")
            raise ClientError(400, f"libsvm line {lineno}: {bad!r} is not index:value") from None
        indptr.append(len(cols))
    matrix = scipy.sparse.csr_matrix(
        (np.asarray(vals, np.float32), np.asarray(cols, np.int32), np.asarray(indptr, np.int64)),
        shape=(len(indptr) - 1, num_features),
    )
    matrix.sum_duplicates()
    return matrix


def parse_recordio(body: bytes, num_features: int) -> Features:
    try:
        features, _ = recordio.to_matrix(body, num_features=num_features)
    except recordio.RecordIOError as exc:
        raise ClientError(400, f"invalid RecordIO-protobuf: {exc}") from None
    return features


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------


def format_floats(values: np.ndarray) -> list[bytes]:
    """Each value as ``%.9g`` text: 9 significant digits, enough to round-trip a float32."""
    return [b"%.9g" % v for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


_DIGITS = 9
_MINUS, _DOT, _ZERO, _E = (ord(c) for c in "-.0e")
_POW10_BIAS = 120
_POW10 = 10.0 ** np.arange(-_POW10_BIAS, _POW10_BIAS + 1)


def format_joined(values: np.ndarray, sep: np.ndarray | bytes) -> bytes:
    """``sep.join(b"%.9g" % v for v in values)``, vectorised with numpy.

    ``sep`` is one byte, or an array of one separator byte per value (the last is dropped).
    Writing a million predictions as text with Python's formatting takes longer than parsing
    and predicting them. Three paths, all byte-identical to ``%.9g`` (checked in the tests):

    * a few values: Python's own formatting (numpy's per-call overhead would dominate);
    * few *distinct* values, the usual case for a tree ensemble (a prediction is a sum of leaf
      values, so a million rows of a small model share a few hundred): each distinct value is
      formatted once and the text gathered per row (:func:`_format_distinct`);
    * otherwise every number's characters are built in a byte matrix (:func:`_format_matrix`).
    """
    v = np.asarray(values).ravel()
    if v.dtype != np.float32:
        v = v.astype(np.float64)
    n = len(v)
    if n <= _SMALL:
        texts = format_floats(v)
        if isinstance(sep, bytes):
            return sep.join(texts)
        seps = bytes(np.asarray(sep, np.uint8)[:n])
        return b"".join(t + seps[i : i + 1] for i, t in enumerate(texts))[:-1]
    if isinstance(sep, bytes):
        joined = _format_distinct(v, sep)
        if joined is not None:
            return joined
    return _format_matrix(v.astype(np.float64), sep)


_SMALL = 32  # values below which Python's formatting is faster than any numpy path
_MAX_DISTINCT = 1 << 16
# Odd multipliers for the multiplicative hash of _distinct_index (golden ratio first).
_HASH_MULTIPLIERS = {
    np.dtype(np.uint32): np.array(
        [0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1, 0xD3A2646D, 0xFD7046C5],
        np.uint32,
    ),
    np.dtype(np.uint64): np.array(
        [0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xC2B2AE3D27D4EB4F],
        np.uint64,
    ),
}


def _format_distinct(v: np.ndarray, sep: bytes) -> bytes | None:
    """Format each distinct value once and gather the texts; None when most values differ.

    Values are compared by bit pattern (so ``-0.0`` and ``0.0``, or two NaNs, never share a
    text unless their bits are equal), and any float works: the texts are Python's ``%.9g``.
    """
    n = len(v)
    bits = v.view(np.uint32 if v.dtype == np.float32 else np.uint64)
    # A look at a sample first: when nearly all of it differs, hashing every value is wasted.
    sample = bits[:: max(1, n // _SAMPLE)]
    if len(np.unique(sample)) > 0.9 * len(sample):
        return None
    distinct, index = _distinct_values(bits)
    if len(distinct) > min(_MAX_DISTINCT, n // 4):
        return None
    texts = [t + sep for t in format_floats(distinct.view(v.dtype))]
    width = max(map(len, texts))
    cells = np.take(np.array(texts, dtype=f"S{width}"), index)  # a text per row, NUL-padded
    if all(len(t) == width for t in texts):
        return cells.tobytes()[: -len(sep)]
    grid = cells.view(np.uint8).reshape(n, width)
    grid[-1, len(texts[index[-1]]) - len(sep) :] = 0  # no separator after the last value
    return cells.tobytes().translate(None, b"\0")  # drop the padding (C speed)


_SAMPLE = 8192


def _distinct_values(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``bits`` and, for each element, its position among them.

    pandas' hash-table ``factorize`` (~6 ms a million, in order of first appearance) when
    pandas is installed (the inference image has it); else a sort (~10-30 ms a million, by
    how ordered the values are) and :func:`_distinct_index`.
    """
    if _pandas is not None:
        index, distinct = _pandas.factorize(bits)
        return np.asarray(distinct, dtype=bits.dtype), index
    ordered = np.sort(bits)
    first = np.empty(len(bits), bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    distinct = ordered[first]
    if len(distinct) > _MAX_DISTINCT:
        return distinct, np.empty(0, np.intp)  # too many: the caller gives up on them
    return distinct, _distinct_index(distinct, bits)


def _distinct_index(distinct: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """For each of ``bits``, its position in the sorted array ``distinct`` (which holds it).

    A binary search (``searchsorted``) costs ~12 ms a million; a multiplicative hash that is
    collision-free on the distinct values (tried with a few multipliers, in a table of about
    ``len(distinct) ** 2`` slots so one usually is) costs a few.
    """
    d = len(distinct)
    word = bits.dtype.itemsize * 8
    slots = min(22, max(8, 2 * d.bit_length() + 1))
    if d <= 2048:
        shift = bits.dtype.type(word - slots)
        for a in _HASH_MULTIPLIERS[bits.dtype]:
            keys = (distinct * a) >> shift
            if len(np.unique(keys)) == d:
                table = np.zeros(1 << slots, np.int32)
                table[keys] = np.arange(d, dtype=np.int32)
                return table[(bits * a) >> shift]
    return np.searchsorted(distinct, bits)


def _format_matrix(v: np.ndarray, sep: np.ndarray | bytes) -> bytes:
    """:func:`format_joined` for float64 ``v``, each number built in a row of a byte matrix."""
    n = len(v)
    seps = np.broadcast_to(np.frombuffer(sep, np.uint8) if isinstance(sep, bytes) else sep, (n,))
    a = np.abs(v)
    if not np.isfinite(a).all() or (a[a > 0] < 1e-99).any() or (a >= 1e99).any():
        texts = format_floats(v)  # nan, inf or 3-digit exponents: not worth a vector path
        return b"".join(t + bytes([c]) for t, c in zip(texts, seps.tolist(), strict=True))[:-1]
    zero = a == 0
    safe = np.where(zero, 1.0, a)
    exp = np.floor(np.log10(safe)).astype(np.int64)
    mant = np.rint(safe * _POW10[_DIGITS - 1 - exp + _POW10_BIAS])
    for fix, step in ((mant >= 10.0**_DIGITS, 1), (mant < 10.0 ** (_DIGITS - 1), -1)):
        exp[fix] += step  # log10 rounded across a power of ten
        mant[fix] = np.rint(safe[fix] * _POW10[_DIGITS - 1 - exp[fix] + _POW10_BIAS])
    m = mant.astype(np.uint32)  # 9 digits fit; uint32 division is several times faster
    m[zero], exp[zero] = 0, 0
    digits = np.empty((n, _DIGITS), np.uint8)
    for j in range(_DIGITS - 1, -1, -1):
        q = m // np.uint32(10)
        digits[:, j] = m - q * np.uint32(10)
        m = q
    nonzero = digits != 0
    kept = _DIGITS - np.argmax(nonzero[:, ::-1], axis=1)  # significant digits printed
    kept[~nonzero.any(axis=1)] = 1
    digits += _ZERO
    shown = np.where(np.arange(_DIGITS)[None, :] < kept[:, None], digits, 0).astype(np.uint8)

    width = 16  # sign, up to 14 characters of number, separator
    out = np.zeros((n, width), np.uint8)
    out[:, 0] = np.where(np.signbit(v), _MINUS, 0)
    out[:, width - 1] = seps
    sci = (exp < -4) | (exp >= _DIGITS)
    group = np.where(sci, 13, exp + 4)  # 0..12: positional exponent -4..8, 13: scientific
    counts = np.bincount(group, minlength=14)
    for g in np.flatnonzero(counts).tolist():
        rows: slice | np.ndarray = slice(None) if counts[g] == n else np.flatnonzero(group == g)
        block = out[rows]  # a view when every row is in this group (the common case)
        d, raw, k = shown[rows], digits[rows], kept[rows]
        e = g - 4
        if g == 13:  # d.dddddddde+XX
            block[:, 1] = d[:, 0]
            block[:, 2] = np.where(k > 1, _DOT, 0)
            block[:, 3:11] = d[:, 1:]
            ex = exp[rows]
            block[:, 11] = _E
            block[:, 12] = np.where(ex < 0, _MINUS, ord("+"))
            block[:, 13] = np.abs(ex) // 10 + _ZERO
            block[:, 14] = np.abs(ex) % 10 + _ZERO
        elif e >= 0:  # ddd.dddddd: integer digits always shown
            block[:, 1 : 2 + e] = raw[:, : e + 1]
            block[:, 2 + e] = np.where(k > e + 1, _DOT, 0)
            block[:, 3 + e : 2 + _DIGITS] = d[:, e + 1 :]
        else:  # 0.000ddddddddd
            zeros = -e - 1
            block[:, 1] = _ZERO
            block[:, 2] = _DOT
            block[:, 3 : 3 + zeros] = _ZERO
            block[:, 3 + zeros : 3 + zeros + _DIGITS] = d
        if not isinstance(rows, slice):
            out[rows] = block
    return out[out != 0].tobytes()[:-1]


_JSON_NON_FINITE = {b"nan": b"NaN", b"inf": b"Infinity", b"-inf": b"-Infinity"}


def _json_floats(values: np.ndarray) -> list[bytes]:
    """:func:`format_floats` with a non-finite value written as Python's ``json`` writes and
    reads it (``NaN``, ``Infinity``): ``nan`` and ``inf`` are not JSON at all."""
    texts = format_floats(values)
    if np.isfinite(values).all():
        return texts
    return [_JSON_NON_FINITE.get(t, t) for t in texts]


def format_response(predictions: np.ndarray, accept: str, *, batch: bool) -> bytes:
    """Predictions (one per row, or a vector per row for multi-class) in the ``accept`` type.

    CSV: realtime, N single predictions are one comma-separated line (what SageMaker Spark's
    XGBoostCSVRowDeserializer reads); in batch mode, or for vector predictions, one line per
    record. JSON: ``{"predictions": [{"score": p}, ...]}``. JSON Lines: ``{"score": p}`` per
    line. RecordIO-protobuf: one Record per row, the prediction in ``label["score"]``.
    """
    preds = np.asarray(predictions, dtype=np.float32)
    if accept == RECORDIO:
        return recordio.encode_scores(preds)
    if accept == CSV:
        if preds.ndim == 1:
            return format_joined(preds, b"\n" if batch else b",")
        seps = np.full(preds.shape, ord(","), np.uint8)
        seps[:, -1] = ord("\n")
        return format_joined(preds, seps.ravel())
    if preds.ndim == 1:
        items = _json_floats(preds)
    else:
        width = preds.shape[1]
        flat = _json_floats(preds)
        items = [b"[" + b", ".join(flat[i : i + width]) + b"]" for i in range(0, len(flat), width)]
    scores = [b'{"score": ' + item + b"}" for item in items]
    if accept == JSONLINES:
        return b"\n".join(scores)
    return b'{"predictions": [' + b", ".join(scores) + b"]}"

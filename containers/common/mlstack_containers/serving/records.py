"""Raw records for a model that carries its dataset's ``schema.json`` (no HTTP here).

A model trained on prepared data holds ``schema.json`` beside the booster (see
:mod:`mlstack_containers.schema`): the features in shard column order, each numeric or
categorical with its categories. :class:`RecordCodec` turns the rows a caller has into the
float32 matrix the booster was trained on, exactly as ``prepare`` encoded the shards:

* a number is itself; a category is its 0-based index in ``categories``;
* a missing value (an empty CSV field, JSON ``null``, an absent field, NaN) and a category not
  in ``categories`` are missing (NaN, which XGBoost treats as missing);
* a value of the wrong type, an unknown field (unless ``unknown_fields="ignore"``), a record of
  the wrong width or a malformed record is a :class:`~.codecs.ClientError` (400) naming the
  record (0-based) and the field.

Request forms: CSV rows in the features' order without the label (a first line that names the
features is a header and skipped); JSON ``{"instances": [{...}, ...]}`` or one bare object; JSON
Lines of objects. A body in the encoded numeric form (numbers in the encoded order, JSON arrays,
``{"features": [...]}``) is not a raw record: :meth:`RecordCodec.parse` returns None and the
numeric codecs read it as for a model without a schema.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from typing import Any

import numpy as np

try:  # the fast path for large CSV bodies (the inference image installs pandas)
    import pandas as _pandas
except ImportError:  # pragma: no cover
    _pandas = None

from mlstack_containers.schema import Schema
from mlstack_containers.serving.codecs import CSV, JSON, JSONLINES, ClientError

UNKNOWN_FIELDS = ("refuse", "ignore")
# pandas' fixed cost per call loses to the reference parser below a few KiB.
PANDAS_MIN_BYTES = 8192
_SHOWN = 60  # characters of a hostile name or value quoted in an error message


def shown(value: Any) -> str:
    """``repr`` of a field name or value, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 5] + "...'" + f" ({len(text)} chars)"


class _Fields(dict[str, Any]):
    """A JSON object that remembers a key it held twice (``json`` keeps only the last)."""

    duplicate: str | None = None


def _object_pairs(pairs: list[tuple[str, Any]]) -> _Fields:
    fields = _Fields(pairs)
    if len(fields) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                fields.duplicate = key
                break
            seen.add(key)
    return fields


def loads(text: bytes, what: str) -> Any:
    """JSON with duplicate keys remembered; a 400 naming ``what`` when it is not JSON."""
    try:
        return json.loads(text, object_pairs_hook=_object_pairs)
    except RecursionError:
        raise ClientError(400, f"invalid {what}: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientError(400, f"invalid {what}: {exc}") from None


def _is_numeric_form(value: Any) -> bool:
    """A record in the encoded numeric form: a list, ``{"features": [...]}`` or
    ``{"data": {...}}`` (SageMaker's common JSON format)."""
    if isinstance(value, list):
        return True
    if isinstance(value, dict):
        return isinstance(value.get("features"), list) or isinstance(value.get("data"), dict)
    return False


class RecordCodec:
    """Raw records of one schema to float32 rows in the schema's feature order.

    Args:
        schema: the model's dataset schema.
        unknown_fields: ``"refuse"`` (a 400 naming the field) or ``"ignore"`` a field that is
            not a feature (``MLSTACK_UNKNOWN_FIELDS``).
    """

    def __init__(self, schema: Schema, *, unknown_fields: str = "refuse") -> None:
        if unknown_fields not in UNKNOWN_FIELDS:
            raise ValueError(f"unknown_fields={unknown_fields!r}; use one of {UNKNOWN_FIELDS}")
        self.schema = schema
        self.names = list(schema.feature_names)
        self.width = len(self.names)
        self.unknown_fields = unknown_fields
        self.column = {name: i for i, name in enumerate(self.names)}
        # Per column: None for a number, else category text -> index.
        self.codes: list[dict[str, float] | None] = [
            None if f.categories is None else {c: float(i) for i, c in enumerate(f.categories)}
            for f in schema.features
        ]
        self._categorical_columns = [i for i, c in enumerate(self.codes) if c is not None]

    # -- dispatch ------------------------------------------------------------------------------

    def parse(self, body: bytes, kind: str) -> np.ndarray | None:
        """The feature matrix of a body of raw records; None when the body is in the numeric
        form (or of a type raw records never take: libsvm, RecordIO-protobuf)."""
        if kind == CSV:
            return self.parse_csv(body) if self.is_raw_csv(body) else None
        if kind == JSON:
            value = loads(body, "JSON")
            records = self._json_records(value)
            return None if records is None else self.encode(records)
        if kind == JSONLINES:
            return self._parse_jsonlines(body)
        return None

    # -- JSON ----------------------------------------------------------------------------------

    def _json_records(self, value: Any) -> list[Any] | None:
        if isinstance(value, dict):
            instances = value.get("instances")
            if isinstance(instances, list):
                value = instances
            elif "instances" in value:
                raise ClientError(400, '"instances" must be a list of records')
            elif _is_numeric_form(value):
                return None
            else:
                return [value]  # one bare record
        if not isinstance(value, list):
            raise ClientError(400, "JSON request must be an object or a list of records")
        if not any(isinstance(v, dict) and not _is_numeric_form(v) for v in value):
            return None  # numeric rows: the numeric codecs read them
        return value

    def _parse_jsonlines(self, body: bytes) -> np.ndarray | None:
        records = []
        for lineno, line in enumerate(body.splitlines(), start=1):
            if line.strip():
                records.append(loads(line, f"JSON on line {lineno}"))
        if not any(isinstance(v, dict) and not _is_numeric_form(v) for v in records):
            return None
        return self.encode(records)

    def encode(self, records: list[Any]) -> np.ndarray:
        """Rows of objects (``name: value``) as a float32 matrix in the schema's order."""
        if not records:
            raise ClientError(400, "the request holds no records")
        rows = np.full((len(records), self.width), np.nan, dtype=np.float32)
        for i, record in enumerate(records):
            if not isinstance(record, dict) or _is_numeric_form(record):
                raise ClientError(
                    400,
                    f'record {i}: expected an object of fields ({{"name": value, ...}}), got '
                    f"{_kind(record)}; do not mix raw records with numeric rows in one request",
                )
            self._encode_record(record, i, rows[i])
        return rows

    def _encode_record(self, record: dict[str, Any], i: int, out: np.ndarray) -> None:
        duplicate = getattr(record, "duplicate", None)
        if duplicate is not None:
            raise ClientError(400, f"record {i}: field {shown(duplicate)} appears more than once")
        for name, value in record.items():
            col = self.column.get(name)
            if col is None:
                self._unknown(name, i)
                continue
            codes = self.codes[col]
            if value is None:
                continue
            if codes is None:
                if type(value) is float or (type(value) is int and _fits(value)):
                    with np.errstate(over="ignore"):
                        out[col] = value  # NaN stays missing; 1e300 is inf, as in CSV
                    continue
                want = "a number or null"
            else:
                if type(value) is str:
                    out[col] = codes.get(value, math.nan)  # an unknown category: missing
                    continue
                want = "a category as text (a string) or null"
            raise ClientError(
                400,
                f"record {i}: field {shown(name)} must be {want}, got {_kind(value)} "
                f"{shown(value)}",
            )

    def _unknown(self, name: str, i: int) -> None:
        if self.unknown_fields == "ignore":
            return
        if name == self.schema.label.name:
            reason = "is the label; leave it out of the records"
        else:
            reason = "is not a feature of this model"
        raise ClientError(
            400,
            f"record {i}: field {shown(name)} {reason} (features: {self._feature_list()}; "
            "MLSTACK_UNKNOWN_FIELDS=ignore drops unknown fields)",
        )

    def _feature_list(self) -> str:
        text = ", ".join(self.names)
        return text if len(text) <= 200 else text[:200] + ", ..."

    # -- CSV -----------------------------------------------------------------------------------

    def is_raw_csv(self, body: bytes) -> bool:
        """Whether a CSV body holds raw rows: its first line is the header, or a field of it
        is not a number. A body whose first line is all numbers is in the encoded form, unless
        that line leaves every categorical feature empty: such a line reads the same either
        way, so the first line that gives a category decides (a raw table's first row may lack
        its categories)."""
        line = _first_line(body)
        if line is None:
            return False
        try:
            fields = next(csv.reader([line.decode("utf-8")]), [])
        except (UnicodeDecodeError, csv.Error):
            return True  # the raw parser says what is wrong with it
        if self._is_header(fields):
            return True
        if not all(_is_number(f) for f in fields):
            return True
        if self._gives_a_category(fields):
            return False
        try:
            for row in csv.reader(io.StringIO(body.decode("utf-8"))):
                if self._gives_a_category(row):
                    return not all(_is_number(f) for f in row)
        except (UnicodeDecodeError, csv.Error):
            return True
        return False  # no line gives a category: both forms read the same matrix

    def _gives_a_category(self, fields: list[str]) -> bool:
        """Whether a row has a value in a categorical column (always, for a model without
        categorical features: its rows read the same in both forms)."""
        columns = self._categorical_columns
        return not columns or any(i < len(fields) and fields[i].strip() for i in columns)

    def _is_header(self, fields: list[str]) -> bool:
        label = self.schema.label.name
        if fields == self.names or fields == [label, *self.names]:
            return True
        names = set(self.names) | {label}
        return len(fields) > 1 and sum(f in names for f in fields) > len(fields) // 2

    def parse_csv(self, body: bytes) -> np.ndarray:
        """CSV rows of raw values in the schema's feature order, an optional header first."""
        body = self._skip_header(body)
        fast = self._parse_csv_pandas(body) if len(body) >= PANDAS_MIN_BYTES else None
        return fast if fast is not None else self._parse_csv_reference(body)

    def _skip_header(self, body: bytes) -> bytes:
        line = _first_line(body)
        if line is None:
            return body
        try:
            fields = next(csv.reader([line.decode("utf-8")]), [])
        except (UnicodeDecodeError, csv.Error):
            return body
        if not self._is_header(fields):
            return body
        if fields != self.names:
            label = self.schema.label.name
            if label in fields:
                raise ClientError(
                    400,
                    f"the header row names the label {shown(label)}; send the features only, "
                    f"in this order: {self._feature_list()}",
                )
            raise ClientError(
                400,
                "the header row must name the features in the dataset's order: "
                f"{self._feature_list()}",
            )
        start = body.find(line) + len(line)
        return body[start:]

    def _parse_csv_reference(self, body: bytes) -> np.ndarray:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClientError(400, f"invalid CSV: not UTF-8 text ({exc.reason})") from None
        rows: list[np.ndarray] = []
        try:
            for fields in csv.reader(io.StringIO(text, newline="")):
                if not fields:
                    continue  # a blank line
                rows.append(self._csv_row(fields, len(rows)))
        except csv.Error as exc:
            raise ClientError(400, f"record {len(rows)}: invalid CSV ({exc})") from None
        if not rows:
            raise ClientError(400, "the request holds no records")
        return np.vstack(rows)

    def _csv_row(self, fields: list[str], i: int) -> np.ndarray:
        if len(fields) != self.width:
            raise ClientError(
                400,
                f"record {i} has {len(fields)} fields; the model takes {self.width}, in this "
                f"order: {self._feature_list()}",
            )
        row = np.full(self.width, np.nan, dtype=np.float32)
        for col, (field, codes) in enumerate(zip(fields, self.codes, strict=True)):
            if codes is not None:
                row[col] = codes.get(field, math.nan)
            elif field.strip():
                number = _number(field)
                if number is None:
                    raise ClientError(
                        400,
                        f"record {i}: field {shown(self.names[col])} must be a number or empty, "
                        f"got {shown(field)}",
                    )
                with np.errstate(over="ignore"):
                    row[col] = number
        return row

    def _parse_csv_pandas(self, body: bytes) -> np.ndarray | None:
        """pandas' C parser, each categorical column looked up in its categories; None
        (the reference parser decides) on anything it might read differently: quotes, a lone
        CR, a field it cannot convert, a short or long row."""
        if _pandas is None or b'"' in body:
            return None
        if b"\r" in body and body.count(b"\r") != body.count(b"\r\n"):
            return None
        # A categorical column is read as pandas' own categories (text, hashed while parsing),
        # which are then looked up in the schema's: no per-row Python, and no reliance on
        # pandas turning values outside a fixed CategoricalDtype into NaN (deprecated in 3.x).
        dtypes = {
            col: np.float32 if feature.categories is None else "category"
            for col, feature in enumerate(self.schema.features)
        }
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frame = _pandas.read_csv(
                    io.BytesIO(body),
                    header=None,
                    dtype=dtypes,
                    engine="c",
                    keep_default_na=False,
                    na_values=[""],
                    skip_blank_lines=True,
                    quoting=csv.QUOTE_NONE,
                )
        except Exception:  # any doubt: the reference parser reads it or says what is wrong
            return None
        rows, width = frame.shape
        if width != self.width or rows == 0:
            return None
        matrix = np.empty((rows, width), dtype=np.float32)
        for col in range(width):
            series = frame.iloc[:, col]
            if self.codes[col] is None:
                matrix[:, col] = series.to_numpy(np.float32)
            else:
                categories = self.schema.features[col].categories
                seen = _pandas.Index(series.cat.categories.astype(str))
                index = _pandas.Index(categories).get_indexer(seen).astype(np.float32)
                index[index < 0] = np.nan  # a category the model never saw: missing
                # A missing field has code -1: the NaN appended last.
                matrix[:, col] = np.append(index, np.float32(np.nan))[series.cat.codes.to_numpy()]
        # pandas fills a short row with missing values: a rectangle has (width - 1) commas a
        # row (no quotes here), which is checked only when the last column has a gap.
        if np.isnan(matrix[:, -1]).any() and body.count(b",") != rows * (width - 1):
            return None
        return matrix


def _first_line(body: bytes) -> bytes | None:
    """The first line with something on it (without splitting a 6 MB body into lines)."""
    start = 0
    while start < len(body):
        end = body.find(b"\n", start)
        end = len(body) if end < 0 else end
        line = body[start:end].rstrip(b"\r")
        if line.strip():
            return line
        start = end + 1
    return None


def _number(field: str) -> float | None:
    """A CSV field as a number, as Python's ``float`` reads it (``nan`` is missing), or None.
    Digit separators (``1_000``) are refused: pandas and most CSV writers do not know them."""
    if "_" in field:
        return None
    try:
        return float(field)
    except ValueError:
        return None


def _is_number(field: str) -> bool:
    return not field.strip() or _number(field) is not None


def _fits(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__

"""``schema.json`` (version 1): what a prepared dataset holds, written once, carried with the model.

``prepare`` writes it beside the shards it writes (``/opt/ml/processing/output/schema/``);
``train`` copies it into the model directory (``/opt/ml/model/schema.json``, so ``model.tar.gz``
describes itself); ``serve``, ``evaluate`` and the monitoring work read it. This module is its one
reader and writer::

    {
      "schema_version": 1,
      "problem_type": "binary" | "multiclass" | "regression",
      "label": {"name": "species", "type": "categorical" | "numeric",
                "classes": ["Adelie", "Chinstrap", "Gentoo"]},
      "features": [
        {"name": "island", "type": "categorical", "categories": ["Biscoe", "Dream", "Torgersen"]},
        {"name": "bill_length_mm", "type": "numeric", "missing": 2}
      ],
      "rows": {"train": 240, "validation": 52, "test": 52, "rejected": 0}
    }

* ``label.classes`` is present for ``binary`` (exactly 2) and ``multiclass`` (2 or more), absent
  for ``regression``; class labels are strings in a fixed order (:func:`class_order`): numeric
  order when the label column is numeric, else by Unicode code point. The encoded label in the
  shards is the 0-based index into ``classes``; a regression label is the number itself.
* ``features`` are in shard column order (train/validation shards: label first, then the
  features; test shards: the features, their labels beside them in ``test-labels/``).
* A categorical feature is written as the 0-based index into its ``categories`` (from the train
  split only, by code point); a missing or unknown value, and a missing number, are an empty field.
* A feature's ``missing`` (optional: schemas written before it have none) counts its missing
  values among the rows written to train, validation and test (the bad rows not counted); it is
  at most their sum.

Validation names the bad key (``label.classes[2]``, ``features[3].categories``) and says what is
allowed; an unknown key is refused too, so a newer schema is never half-read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
SCHEMA_FILE = "schema.json"
PROBLEM_TYPES = ("binary", "multiclass", "regression")
CLASSIFICATION = ("binary", "multiclass")
COLUMN_TYPES = ("categorical", "numeric")
SPLITS = ("train", "validation", "test", "rejected")


class SchemaError(ValueError):
    """A schema document is malformed; the message names the key and what is allowed."""


def class_order(values: Iterable[str], *, numeric: bool) -> list[str]:
    """The documented order of class labels (and of categories, which are never numeric):
    numeric order for a numeric label column, else lexicographic by Unicode code point (Python's
    ``str`` ordering). Duplicates are dropped."""
    unique = set(values)
    if numeric:
        return sorted(unique, key=lambda v: (float(v), v))
    return sorted(unique)


@dataclass(frozen=True)
class Label:
    name: str
    type: str  # "categorical" | "numeric"
    classes: tuple[str, ...] | None = None  # binary and multiclass only


@dataclass(frozen=True)
class Feature:
    name: str
    type: str  # "categorical" | "numeric"
    categories: tuple[str, ...] | None = None  # categorical only
    missing: int | None = None  # missing values in the written rows; None: not counted

    def encode(self, value: str) -> str:
        """A raw value as its shard field: a category's index, a number as given, else empty."""
        if self.categories is None:
            return value
        index = _index(self.categories).get(value)
        return "" if index is None else str(index)


@dataclass(frozen=True)
class Rows:
    train: int
    validation: int
    test: int
    rejected: int = 0


@dataclass(frozen=True)
class Schema:
    """One ``schema.json`` document; construct it through :meth:`from_dict` or validate it with
    :meth:`validate` (``to_json`` validates before writing)."""

    problem_type: str
    label: Label
    features: tuple[Feature, ...]
    rows: Rows
    schema_version: int = SCHEMA_VERSION

    # -- helpers -------------------------------------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        """The class labels (empty for regression)."""
        return self.label.classes or ()

    @property
    def num_class(self) -> int:
        return len(self.classes)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def missing(self) -> dict[str, int] | None:
        """Missing values per feature name, in feature order; None when the schema counts none
        (written before ``missing`` was)."""
        counted = {f.name: f.missing for f in self.features if f.missing is not None}
        return counted or None

    def class_index(self, value: str) -> int | None:
        """The encoded label of a class label, or None when it is not one of ``classes``."""
        return _index(self.classes).get(value)

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        label: dict[str, Any] = {"name": self.label.name, "type": self.label.type}
        if self.label.classes is not None:
            label["classes"] = list(self.label.classes)
        features = []
        for f in self.features:
            item: dict[str, Any] = {"name": f.name, "type": f.type}
            if f.categories is not None:
                item["categories"] = list(f.categories)
            if f.missing is not None:
                item["missing"] = f.missing
            features.append(item)
        return {
            "schema_version": self.schema_version,
            "problem_type": self.problem_type,
            "label": label,
            "features": features,
            "rows": {split: getattr(self.rows, split) for split in SPLITS},
        }

    def to_json(self) -> str:
        self.validate()
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Schema:
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SchemaError(f"schema.json is not JSON: {exc}") from None
        return cls.from_dict(document)

    @classmethod
    def from_dict(cls, document: Any) -> Schema:
        top = _object(document, "schema", _TOP_KEYS, required=_TOP_KEYS)
        version = top["schema_version"]
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise SchemaError(
                f"schema_version: {version!r} is not supported; this reader knows version "
                f"{SCHEMA_VERSION}"
            )
        label = _object(top["label"], "label", ("name", "type", "classes"), ("name", "type"))
        features = top["features"]
        if not isinstance(features, list):
            raise SchemaError(f"features: expected a list of columns, got {_kind(features)}")
        parsed = []
        for i, item in enumerate(features):
            where = f"features[{i}]"
            f = _object(item, where, _FEATURE_KEYS, ("name", "type"))
            categories = f.get("categories")
            parsed.append(
                Feature(
                    name=f["name"],
                    type=f["type"],
                    categories=None if categories is None else _strings(categories, where),
                    missing=f.get("missing"),
                )
            )
        rows = _object(top["rows"], "rows", SPLITS, ("train", "validation", "test"))
        for split in SPLITS:
            value = rows.get(split, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SchemaError(f"rows.{split}: {value!r} is not a row count (an integer >= 0)")
        classes = label.get("classes")
        schema = cls(
            problem_type=top["problem_type"],
            label=Label(
                name=label["name"],
                type=label["type"],
                classes=None if classes is None else _strings(classes, "label.classes"),
            ),
            features=tuple(parsed),
            rows=Rows(**{split: rows.get(split, 0) for split in SPLITS}),
            schema_version=version,
        )
        schema.validate()
        return schema

    # -- files ---------------------------------------------------------------------------------
    @classmethod
    def read(cls, path: Path) -> Schema:
        """Read a ``schema.json`` (or the one in a directory); the error names the file."""
        target = path / SCHEMA_FILE if path.is_dir() else path
        try:
            return cls.from_json(target.read_bytes())
        except SchemaError as exc:
            raise SchemaError(f"{target}: {exc}") from None

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / SCHEMA_FILE
        target.write_text(self.to_json(), encoding="utf-8")
        return target

    # -- validation ----------------------------------------------------------------------------
    def validate(self) -> None:
        """SchemaError naming the first bad key, else nothing."""
        if self.problem_type not in PROBLEM_TYPES:
            raise SchemaError(
                f"problem_type: {self.problem_type!r}; expected one of {', '.join(PROBLEM_TYPES)}"
            )
        _name(self.label.name, "label.name")
        _type(self.label.type, "label.type")
        classes = self.label.classes
        if self.problem_type == "regression":
            if classes is not None:
                raise SchemaError("label.classes: a regression label has no classes; remove it")
            if self.label.type != "numeric":
                raise SchemaError("label.type: a regression label must be 'numeric'")
        else:
            if classes is None:
                raise SchemaError(f"label.classes: required for problem_type {self.problem_type}")
            wanted = "exactly 2" if self.problem_type == "binary" else "at least 2"
            binary = self.problem_type == "binary"
            if (binary and len(classes) != 2) or len(classes) < 2:
                raise SchemaError(
                    f"label.classes: {self.problem_type} needs {wanted} classes, got {len(classes)}"
                )
            numeric = self.label.type == "numeric"
            if numeric:
                for i, value in enumerate(classes):
                    if not _is_number(value):
                        raise SchemaError(
                            f"label.classes[{i}]: {value!r} is not a number (label.type is numeric)"
                        )
            _ordered(classes, "label.classes", numeric=numeric)
        names = {self.label.name}
        written = self.rows.train + self.rows.validation + self.rows.test
        for i, f in enumerate(self.features):
            where = f"features[{i}]"
            _name(f.name, f"{where}.name")
            if f.name in names:
                raise SchemaError(
                    f"{where}.name: {f.name!r} appears twice (or is the label); column names are "
                    "unique"
                )
            names.add(f.name)
            _type(f.type, f"{where}.type")
            if f.type == "categorical" and f.categories is None:
                raise SchemaError(f"{where}.categories: required for a categorical feature")
            if f.type == "numeric" and f.categories is not None:
                raise SchemaError(f"{where}.categories: a numeric feature has no categories")
            if f.categories is not None:
                _ordered(f.categories, f"{where}.categories", numeric=False)
            if f.missing is not None:
                _missing_count(f.missing, f"{where}.missing", written)


_TOP_KEYS = ("schema_version", "problem_type", "label", "features", "rows")
_FEATURE_KEYS = ("name", "type", "categories", "missing")


def _index(values: tuple[str, ...]) -> dict[str, int]:
    return {v: i for i, v in enumerate(values)}


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _object(
    value: Any, where: str, allowed: Iterable[str], required: Iterable[str]
) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: expected an object, got {_kind(value)}")
    allowed = tuple(allowed)
    for key in value:
        if key not in allowed:
            prefix = "" if where == "schema" else f"{where}."
            raise SchemaError(
                f"{prefix}{key}: unknown key; {where} has {', '.join(allowed)} "
                f"(schema_version {SCHEMA_VERSION})"
            )
    for key in required:
        if key not in value:
            prefix = "" if where == "schema" else f"{where}."
            raise SchemaError(f"{prefix}{key}: missing")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    key = where if where == "label.classes" else f"{where}.categories"
    if not isinstance(value, list):
        raise SchemaError(f"{key}: expected a list of strings, got {_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise SchemaError(f"{key}[{i}]: expected a string, got {_kind(item)} {item!r}")
    return tuple(value)


def _name(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value:
        raise SchemaError(f"{where}: expected a non-empty string, got {value!r}")


def _type(value: Any, where: str) -> None:
    if value not in COLUMN_TYPES:
        raise SchemaError(f"{where}: {value!r}; expected one of {', '.join(COLUMN_TYPES)}")


def _missing_count(value: Any, where: str, written: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SchemaError(f"{where}: {value!r} is not a count of missing values (an integer >= 0)")
    if value > written:
        raise SchemaError(
            f"{where}: {value} missing values, but train, validation and test hold {written} "
            "rows together; a column misses at most every written row"
        )


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _ordered(values: tuple[str, ...], where: str, *, numeric: bool) -> None:
    if len(set(values)) != len(values):
        seen: set[str] = set()
        for i, v in enumerate(values):
            if v in seen:
                raise SchemaError(f"{where}[{i}]: {v!r} appears twice")
            seen.add(v)
    expected = class_order(values, numeric=numeric)
    if list(values) != expected:
        rule = "numeric order" if numeric else "Unicode code point order"
        raise SchemaError(f"{where}: not in {rule}; expected {expected}")

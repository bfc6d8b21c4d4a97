"""One batch of rows, checked and keyed: missing values, numbers, bad rows and the split hash.

Both passes go through :func:`parse`, so the rows the first pass learns from are exactly the rows
the second pass writes.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlstack_containers.prepare.read import Batch

# A field is missing when it is empty or one of these (after trimming spaces), as pandas'
# read_csv reads its default NA values; a Parquet null is missing too.
MISSING = ("", "NA", "N/A", "NaN", "nan", "NULL", "null")
_MISSING = pa.array(MISSING, pa.string())
# A number as XGBoost's CSV parser and Python's float() both read it; no inf or nan.
NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
SPLIT_BITS = 12
BINS = 1 << SPLIT_BITS  # a row's split bin: the top SPLIT_BITS bits of its 64-bit hash
SEPARATOR = "\x1f"  # unit separator: joins a row's fields for the hash


@dataclass(frozen=True)
class Layout:
    """The columns prepare reads and what each holds."""

    label: str
    features: tuple[str, ...]
    numeric: frozenset[str]  # the numeric columns among label and features

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.label, *self.features)


@dataclass
class Parsed:
    """A batch's rows: values (trimmed strings, missing as null), which rows are good, the first
    problem of each bad row, and each row's split bin."""

    values: dict[str, pa.Array]
    good: np.ndarray  # bool per row
    bad_rows: np.ndarray  # indices of the bad rows
    bad_columns: list[str]  # the first bad column of each bad row
    bad_reasons: list[str]
    bins: np.ndarray  # int64 per row, 0..BINS-1 (meaningless for a bad row)

    def label_keys(self, label: str) -> pa.Array:
        """The label as a class label: the text, or for a numeric label its canonical number
        (``1``, ``1.0`` and ``1e0`` are one class, written ``1``)."""
        return self.values[label]


def canonical_numbers(values: pa.Array) -> pa.Array:
    """Numbers as the shortest text that reads back as the same float (Arrow's formatting)."""
    return pc.cast(pc.cast(values, pa.float64()), pa.string())


def bad_text(raw: str | None) -> bool:
    """A present value that is not a number (for the reason of a bad row)."""
    if raw is None or raw.strip() in MISSING:
        return False
    return re.fullmatch(NUMBER, raw.strip()) is None


def missing_mask(values: pa.Array) -> pa.Array:
    return pc.fill_null(pc.is_in(values, value_set=_MISSING), True)


def parse(batch: Batch, layout: Layout, seed: int) -> Parsed:
    n = batch.table.num_rows
    first_bad = np.full(n, -1, dtype=np.int64)  # index of each row's first bad column
    values: dict[str, pa.Array] = {}
    for j, name in enumerate(layout.columns):
        column = batch.table.column(name).combine_chunks()
        trimmed = pc.utf8_trim_whitespace(column)
        missing = missing_mask(trimmed)
        values[name] = pc.if_else(missing, pa.scalar(None, pa.string()), trimmed)
        bad = np.zeros(n, dtype=bool)
        if name == layout.label:
            bad |= missing.to_numpy(zero_copy_only=False)
        if name in layout.numeric:
            number = pc.fill_null(pc.match_substring_regex(trimmed, NUMBER), True)
            text = pc.and_(pc.invert(number), pc.invert(missing))
            bad |= text.to_numpy(zero_copy_only=False)
            # the number as Arrow writes it: "93", "93.0" and "9.3e1" are one value (in the
            # split hash, the shards and the class labels), whether CSV text or a Parquet double
            usable = pc.if_else(pc.or_(text, missing), pa.scalar(None, pa.string()), trimmed)
            values[name] = canonical_numbers(usable)
        first_bad[(first_bad < 0) & bad] = j
    bad_rows = np.flatnonzero(first_bad >= 0)
    bad_columns, bad_reasons = [], []
    for row in bad_rows.tolist():
        name = layout.columns[first_bad[row]]
        bad_columns.append(name)
        if (
            name == layout.label
            and values[name][row].as_py() is None
            and not bad_text(batch.table.column(name)[row].as_py())
        ):
            bad_reasons.append("the label is missing")
        else:
            shown = str(batch.table.column(name)[row].as_py())[:40]
            bad_reasons.append(f"{shown!r} is not a number (the column is numeric)")
    good = first_bad < 0
    return Parsed(
        values, good, bad_rows, bad_columns, bad_reasons, split_bins(values, layout, seed)
    )


def split_bins(values: dict[str, pa.Array], layout: Layout, seed: int) -> np.ndarray:
    """Each row's split bin: a hash of the row's fields (label and features, trimmed, missing as
    empty) and the seed. It depends on the row alone, never on which object or batch holds it."""
    fields = [pc.fill_null(values[name], "") for name in layout.columns]
    joined = pc.binary_join_element_wise(*fields, SEPARATOR) if len(fields) > 1 else fields[0]
    start = zlib.crc32(str(seed).encode())
    crc = np.fromiter(
        (zlib.crc32(row, start) for row in pc.cast(joined, pa.binary()).to_pylist()),
        dtype=np.uint64,
        count=len(joined),
    )
    return (_mix(crc, seed) >> np.uint64(64 - SPLIT_BITS)).astype(np.int64)


def _mix(h: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64's finaliser: spreads the 32-bit CRC (and the seed) over 64 bits."""
    h = h ^ np.uint64((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))

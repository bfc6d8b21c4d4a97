"""Reading the input objects in fixed-size Arrow batches of strings, each row with its place
(object, line or row group) so a problem can be reported where the user can find it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

BATCH_ROWS = 65_536  # Parquet batch size; a CSV block is BLOCK_BYTES of text
BLOCK_BYTES = 1 << 20  # Arrow reads ahead about 30 blocks: this bounds memory, not the input
FORMATS = ("csv", "parquet")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".gz", ".txt", ".tsv")


class PrepareError(ValueError):
    """The input cannot be prepared; the message names object, line (or row group) and column."""


@dataclass
class Problem:
    """One bad row: where it is and why."""

    object: str
    where: str  # "line 12" or "row group 3 row 40"
    column: str | None
    reason: str

    def __str__(self) -> str:
        column = f" column {self.column!r}" if self.column is not None else ""
        return f"{self.object} {self.where}{column}: {self.reason}"


@dataclass(frozen=True)
class Source:
    """One input object."""

    index: int  # in key order over every object: names its shards, decides its host
    name: str  # key relative to the input directory
    path: Path
    format: str


@dataclass
class Batch:
    """Up to a block of an object's rows, every column as strings (null: missing)."""

    source: Source
    table: pa.Table
    first: int = 0  # index of the first row among the object's parsed rows (or row group's)
    row_group: int | None = None  # Parquet
    skipped_lines: tuple[int, ...] = ()  # CSV lines the parser refused before this batch
    header: bool = True  # CSV: line 1 is the header

    def place(self, row: int) -> str:
        """Where row ``row`` of the batch is in its object (CSV lines count from 1, the header
        included; a value with a line break inside quotes makes later lines count one less)."""
        if self.row_group is not None:
            return f"row group {self.row_group} row {self.first + row + 1}"
        line = self.first + row + 1 + (1 if self.header else 0)
        for skipped in self.skipped_lines:  # refused lines are not rows but still lines
            if skipped <= line:
                line += 1
        return f"line {line}"


def list_sources(root: Path, fmt: str) -> list[Source]:
    """Every object under ``root`` in key order (code point), hidden and ``_``-prefixed names
    (``_SUCCESS``, ``.crc``) left out as Spark and Hive write them beside the data."""
    if not root.is_dir():
        raise PrepareError(f"input directory {root} does not exist: no objects to prepare")
    files = sorted(
        (p.relative_to(root).as_posix(), p)
        for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )
    if not files:
        raise PrepareError(
            f"no objects under {root}: the dataset prefix is empty (check the source's S3 prefix)"
        )
    return [Source(i, name, path, _format(name, fmt)) for i, (name, path) in enumerate(files)]


def _format(name: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    lower = name.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    raise PrepareError(
        f"{name}: cannot tell its format from the name (expected {', '.join(CSV_SUFFIXES)} or "
        f"{', '.join(PARQUET_SUFFIXES)}); set the source's format to csv or parquet"
    )


def columns(source: Source, column_names: tuple[str, ...] | None) -> tuple[str, ...]:
    """The object's column names: the CSV header (or ``column_names`` for headerless CSV), the
    Parquet schema."""
    if source.format == "parquet":
        try:
            return tuple(pq.ParquetFile(source.path).schema_arrow.names)
        except (pa.ArrowException, OSError) as exc:
            raise PrepareError(f"{source.name}: not a readable Parquet file: {exc}") from None
    if column_names is not None:
        return column_names
    try:
        with pa.input_stream(str(source.path), compression="detect") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            header = next(csv.reader(text), None)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise PrepareError(f"{source.name} line 1: cannot read the CSV header: {exc}") from None
    if not header:
        raise PrepareError(
            f"{source.name} line 1: no header row (a CSV source starts with its column names, or "
            "the source names them: headerless column names)"
        )
    names = tuple(h.strip() for h in header)
    for i, name in enumerate(names):
        if not name:
            raise PrepareError(f"{source.name} line 1: column {i + 1} has no name in the header")
        if name in names[:i]:
            raise PrepareError(f"{source.name} line 1 column {name!r}: appears twice in the header")
    return names


def batches(
    source: Source,
    names: tuple[str, ...],
    wanted: tuple[str, ...],
    headerless: bool,
    problems: list[Problem],
) -> Iterator[Batch]:
    """The object's rows in batches, columns ``wanted`` as strings. CSV rows with the wrong number
    of fields are appended to ``problems`` and left out."""
    if source.format == "parquet":
        yield from _parquet(source, wanted)
    else:
        yield from _csv(source, names, wanted, headerless, problems)


def _csv(
    source: Source,
    names: tuple[str, ...],
    wanted: tuple[str, ...],
    headerless: bool,
    problems: list[Problem],
) -> Iterator[Batch]:
    skipped: list[int] = []

    def invalid(row: pacsv.InvalidRow) -> str:
        line = row.number if row.number is not None else -1
        skipped.append(line)
        problems.append(
            Problem(
                source.name,
                f"line {line}",
                None,
                f"{row.actual_columns} fields, expected {row.expected_columns} "
                f"({', '.join(names)})",
            )
        )
        return "skip"

    read = pacsv.ReadOptions(
        block_size=BLOCK_BYTES,
        column_names=list(names),
        skip_rows=0 if headerless else 1,
        use_threads=False,
    )
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        include_columns=list(wanted),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    parse = pacsv.ParseOptions(invalid_row_handler=invalid)
    first = 0
    try:
        reader = pacsv.open_csv(
            str(source.path), read_options=read, parse_options=parse, convert_options=convert
        )
        for record_batch in reader:
            table = pa.Table.from_batches([record_batch])
            yield Batch(
                source, table, first=first, skipped_lines=tuple(skipped), header=not headerless
            )
            first += table.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise PrepareError(f"{source.name}: cannot read it as CSV: {exc}") from None


def _parquet(source: Source, wanted: tuple[str, ...]) -> Iterator[Batch]:
    try:
        parquet = pq.ParquetFile(source.path)
        for group in range(parquet.num_row_groups):
            first = 0
            for record_batch in parquet.iter_batches(
                batch_size=BATCH_ROWS, row_groups=[group], columns=list(wanted), use_threads=False
            ):
                table = pa.Table.from_batches([record_batch])
                table = pa.table([_as_strings(c) for c in table.columns], names=table.column_names)
                yield Batch(source, table, first=first, row_group=group)
                first += table.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise PrepareError(f"{source.name}: not a readable Parquet file: {exc}") from None


def _as_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_string(column.type):
        return column
    if pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    return column.cast(pa.string())

"""Reading training data: the three content types, from File-mode directories or Pipe-mode FIFOs.

Content types (``ContentType`` of a channel in ``inputdataconfig.json``; parameters after ``;``
are allowed, e.g. ``text/csv; label_size=1``):

* ``text/csv`` — no header; the label in the first column; ``\\n`` or ``\\r\\n`` line ends; an
  empty field is a missing value. With ``csv_weights`` the second column is the instance weight.
* ``text/libsvm`` (also ``text/x-libsvm``) — ``label[:weight] [qid:n] index:value ...``; indices
  are column numbers used as given (0-based, as XGBoost's own loader reads them), so a file with
  1-based indices simply has an empty column 0.
* ``application/x-recordio-protobuf`` — what SageMaker Spark writes; also the type of a channel
  that declares none. Decoded with :mod:`mlstack_containers.recordio`.

Files whose name starts with ``.`` (e.g. Spark's ``.crc``) and empty files (``_SUCCESS``) are
skipped. Gzip-compressed files and streams are decompressed.

Public API: :func:`normalize_content_type`, :func:`parse` (bytes of any type),
:func:`parse_csv`, :func:`parse_libsvm`, :func:`parse_recordio`, :func:`load_files`,
:func:`load_fifo`, :class:`Dataset`, :class:`DataError`.
"""

from __future__ import annotations

import gzip
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scipy is imported lazily: CSV training never needs it.
    import scipy.sparse

CSV = "text/csv"
LIBSVM = "text/libsvm"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"

_ALIASES = {
    "text/csv": CSV,
    "csv": CSV,
    "text/libsvm": LIBSVM,
    "text/x-libsvm": LIBSVM,
    "libsvm": LIBSVM,
    "application/x-recordio-protobuf": RECORDIO_PROTOBUF,
    "application/x-recordio": RECORDIO_PROTOBUF,
    "recordio-protobuf": RECORDIO_PROTOBUF,
}
SUPPORTED_CONTENT_TYPES = (CSV, LIBSVM, RECORDIO_PROTOBUF)
_GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """Input data that cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Dataset:
    """Features (dense float32 array or CSR matrix), labels and optional instance weights."""

    features: np.ndarray | scipy.sparse.csr_matrix
    labels: np.ndarray | None
    weights: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        return int(self.features.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def is_sparse(self) -> bool:
        return not isinstance(self.features, np.ndarray)

    def with_width(self, width: int) -> Dataset:
        """The same rows with ``width`` columns (sparse data only grows; dense must match)."""
        if width == self.num_features:
            return self
        if not self.is_sparse or width < self.num_features:
            raise DataError(f"data has {self.num_features} features, expected {width}")
        features = self.features.copy()
        features.resize((self.num_rows, width))
        return Dataset(features, self.labels, self.weights)


def normalize_content_type(content_type: str | None) -> str:
    """The canonical content type; a channel without one is RecordIO-protobuf (SageMaker Spark).

    Raises :class:`DataError` for an unsupported type or an unsupported ``label_size``.
    """
    if content_type is None or not content_type.strip():
        return RECORDIO_PROTOBUF
    mime, *params = (part.strip() for part in content_type.split(";"))
    canonical = _ALIASES.get(mime.lower())
    if canonical is None:
        raise DataError(
            f"unsupported content type {content_type!r}; supported: "
            + ", ".join(SUPPORTED_CONTENT_TYPES)
        )
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "label_size" and value.strip() != "1":
            raise DataError(f"unsupported label_size {value.strip()!r} in {content_type!r}; use 1")
    return canonical


# ------------------------------------------------------------------------------------------------
# Parsers
# ------------------------------------------------------------------------------------------------


def _csv_array(source: str | Path | io.BytesIO, name: str) -> np.ndarray:
    def load(**kwargs: object) -> np.ndarray:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            return np.loadtxt(source, delimiter=",", dtype=np.float32, ndmin=2, **kwargs)

    try:
        return load()
    except ValueError as fast_error:
        # The C fast path rejects empty fields; read them as missing values instead.
        try:
            return load(converters=lambda s: float(s) if s.strip() else np.nan)
        except ValueError:
            raise DataError(
                f"{name}: invalid CSV ({fast_error}); expected numbers only, "
                "no header row, the label in the first column"
            ) from None


def parse_csv(
    data: bytes | str | os.PathLike[str],
    *,
    has_label: bool = True,
    has_weights: bool = False,
    name: str = "CSV data",
) -> Dataset:
    """Parse CSV from bytes or from a file path (read by numpy's C parser, no extra copy)."""
    source: str | Path | io.BytesIO
    if isinstance(data, bytes | bytearray | memoryview):
        source = io.BytesIO(_gunzip(bytes(data), name))
    else:
        source = Path(data)
        with open(source, "rb") as fh:
            if fh.read(2) == _GZIP_MAGIC:
                source = io.BytesIO(_gunzip(source.read_bytes(), name))
    array = _csv_array(source, name)
    if array.shape[0] == 0:
        return Dataset(np.zeros((0, 0), np.float32), np.zeros(0, np.float32) if has_label else None)
    lead = int(has_label) + int(has_weights)
    if array.shape[1] <= lead:
        expected = ["a label"] * has_label + ["a weight"] * has_weights + ["features"]
        raise DataError(
            f"{name}: rows have {array.shape[1]} column(s), expected " + ", then ".join(expected)
        )
    labels = array[:, 0] if has_label else None
    weights = array[:, 1] if has_weights else None
    return Dataset(array[:, lead:], labels, weights)


def parse_libsvm(data: bytes, *, has_label: bool = True, name: str = "libsvm data") -> Dataset:
    """Parse libsvm text: ``label[:weight] [qid:n] index:value ...`` per line, ``#`` comments."""
    import scipy.sparse

    text = _gunzip(bytes(data), name)
    labels: list[float] = []
    weights: list[float] = []
    indptr = [0]
    cols: list[int] = []
    vals: list[float] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(b"#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        try:
            if has_label:
                label, _, weight = tokens[0].partition(b":")
                labels.append(float(label))
                weights.append(float(weight) if weight else 1.0)
                tokens = tokens[1:]
            for token in tokens:
                index, sep, value = token.partition(b":")
                if index == b"qid":
                    continue
                if not sep:
                    raise ValueError(f"{token.decode(errors='replace')!r} is not index:value")
                col = int(index)
                if col < 0:
                    raise ValueError(f"negative feature index {col}")
                cols.append(col)
                vals.append(float(value))
        except ValueError as exc:
            raise DataError(f"{name}: invalid libsvm at line {lineno}: {exc}") from None
        indptr.append(len(cols))
    width = (max(cols) + 1) if cols else 0
    features = scipy.sparse.csr_matrix(
        (np.asarray(vals, np.float32), np.asarray(cols, np.int64), np.asarray(indptr, np.int64)),
        shape=(len(indptr) - 1, width),
    )
    features.sum_duplicates()
    has_weights = any(w != 1.0 for w in weights)
    return Dataset(
        features,
        np.asarray(labels, np.float32) if has_label else None,
        np.asarray(weights, np.float32) if has_weights else None,
    )


def parse_recordio(data: bytes, *, name: str = "RecordIO-protobuf data") -> Dataset:
    """Decode RecordIO-protobuf records (``features["values"]``, ``label["values"]``)."""
    from mlstack_containers import recordio

    payload = _gunzip(bytes(data), name)
    if not payload:
        return Dataset(np.zeros((0, 0), np.float32), None)
    try:
        features, labels = recordio.to_matrix(payload)
    except recordio.RecordIOError as exc:
        raise DataError(f"{name}: invalid RecordIO-protobuf: {exc}") from None
    if not isinstance(features, np.ndarray):
        features = features.tocsr()
    return Dataset(features, labels)


def parse(
    data: bytes, content_type: str | None, *, has_weights: bool = False, name: str = "data"
) -> Dataset:
    """Parse a byte string of any supported content type (labels expected)."""
    kind = normalize_content_type(content_type)
    if kind == CSV:
        return parse_csv(data, has_weights=has_weights, name=name)
    if kind == LIBSVM:
        return parse_libsvm(data, name=name)
    return parse_recordio(data, name=name)


def _gunzip(data: bytes, name: str) -> bytes:
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise DataError(f"{name}: corrupt gzip data ({exc})") from None


# ------------------------------------------------------------------------------------------------
# Channels
# ------------------------------------------------------------------------------------------------


def channel_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The data files of a File-mode channel: every non-hidden, non-empty file, sorted by path."""
    root = Path(directory)
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = Path(dirpath, filename)
            if not filename.startswith(".") and path.stat().st_size > 0:
                files.append(path)
    return files


def concat(parts: Sequence[Dataset], name: str) -> Dataset:
    """Stack datasets row-wise (widening sparse parts to the widest)."""
    parts = [p for p in parts if p.num_rows]
    if not parts:
        raise DataError(f"{name}: no data rows")
    if len(parts) == 1:
        return parts[0]
    width = max(p.num_features for p in parts)
    if not any(p.is_sparse for p in parts):
        widths = {p.num_features for p in parts}
        if len(widths) > 1:
            raise DataError(f"{name}: files have different numbers of columns {sorted(widths)}")
        features = np.vstack([p.features for p in parts])
    else:
        import scipy.sparse

        features = scipy.sparse.vstack(
            [scipy.sparse.csr_matrix(p.with_width(width).features) for p in parts], format="csr"
        )
    has_labels = {p.labels is not None for p in parts}
    if len(has_labels) > 1:
        raise DataError(f"{name}: some files have labels and some do not")
    labels = np.concatenate([p.labels for p in parts]) if True in has_labels else None
    weights = None
    if any(p.weights is not None for p in parts):
        weights = np.concatenate(
            [p.weights if p.weights is not None else np.ones(p.num_rows, np.float32) for p in parts]
        )
    return Dataset(features, labels, weights)


def load_files(
    directory: str | os.PathLike[str], content_type: str | None, *, has_weights: bool = False
) -> Dataset:
    """Load every file of a File-mode channel directory."""
    kind = normalize_content_type(content_type)
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"channel directory {root} does not exist")
    files = channel_files(root)
    if not files:
        raise DataError(f"channel directory {root} holds no data files")
    parts = []
    for path in files:
        if kind == CSV:
            parts.append(parse_csv(path, has_weights=has_weights, name=str(path)))
        else:
            parts.append(parse(path.read_bytes(), kind, name=str(path)))
    return concat(parts, str(root))


def load_fifo(
    fifo: str | os.PathLike[str],
    content_type: str | None,
    *,
    has_weights: bool = False,
    unwrap_recordio: bool = False,
) -> Dataset:
    """Read one Pipe-mode epoch (the whole FIFO, until its writer closes it) and parse it.

    ``unwrap_recordio``: the channel's ``RecordWrapperType`` is ``RecordIO``, so SageMaker wrapped
    each S3 object in a RecordIO frame; the objects are unwrapped and joined.
    """
    path = Path(fifo)
    if not path.exists():
        raise DataError(f"Pipe-mode FIFO {path} does not exist")
    with open(path, "rb") as fh:  # blocks until SageMaker opens the writing end
        raw = fh.read()
    kind = normalize_content_type(content_type)
    if unwrap_recordio:
        from mlstack_containers import recordio

        try:
            objects = [_gunzip(obj, str(path)) for obj in recordio.read_records(raw)]
        except recordio.RecordIOError as exc:
            raise DataError(f"{path}: invalid RecordIO wrapping: {exc}") from None
        # Text objects may lack a final newline; binary RecordIO streams join as they are.
        raw = (b"" if kind == RECORDIO_PROTOBUF else b"\n").join(objects)
    dataset = parse(raw, kind, has_weights=has_weights, name=str(path))
    return concat([dataset], str(path))

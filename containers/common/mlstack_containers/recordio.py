"""RecordIO-protobuf: the format SageMaker Spark and SageMaker's built-in algorithms exchange.

Two layers, both written here by hand so that neither image needs the ``protobuf`` package:

* **RecordIO framing** (MXNet/dmlc): each frame is the magic ``0xCED7230A`` (little-endian
  uint32), a little-endian uint32 whose low 29 bits are the payload length and top 3 bits the
  continuation flag (``cflag``: 0 a whole record; 1, 2, 3 the first, middle and last part of a
  record split in parts; read and joined, never written), the payload, then zero padding
  to a multiple of 4 bytes.
* **The payload** is an ``aialgs.data.Record`` message of SageMaker's ``record.proto``::

      Record        { map<string, Value> features = 1; map<string, Value> label = 2;
                      optional string uid = 3; optional string metadata = 4;
                      optional string configuration = 5; }
      Value         { oneof value { Float32Tensor float32_tensor = 2;
                      Float64Tensor float64_tensor = 3; Int32Tensor int32_tensor = 7;
                      Bytes bytes = 9; } }
      Float32Tensor { repeated float values = 1 [packed]; repeated uint64 keys = 2 [packed];
                      repeated uint64 shape = 3 [packed]; }   (Float64Tensor: double values,
                      Int32Tensor: int32 values; same keys/shape)
      Bytes         { repeated bytes value = 1; optional string content_type = 2; }

  A tensor with ``keys`` is sparse: ``values[i]`` sits at flat index ``keys[i]`` of ``shape``.
  Both packed and unpacked encodings of repeated fields are decoded (proto2 writers may use
  either); the encoder writes packed fields, as SageMaker's own writers do.

Public API: :func:`read_records`, :func:`stream_records`, :func:`decode_record`,
:func:`to_matrix` (reading); :func:`encode_record`, :func:`write_records`, :func:`from_matrix`,
:func:`encode_scores` (writing); :class:`Record`, :class:`Tensor`, :class:`RecordIOError`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import scipy.sparse

__all__ = [
    "MAGIC",
    "BytesValue",
    "Record",
    "RecordIOError",
    "Tensor",
    "decode_record",
    "encode_record",
    "encode_scores",
    "from_matrix",
    "read_records",
    "stream_records",
    "to_matrix",
    "write_records",
]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_MASK = (1 << 29) - 1
_HEADER = struct.Struct("<II")

# Wire types of the protobuf encoding.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_UINT64_MASK = (1 << 64) - 1


class RecordIOError(ValueError):
    """The bytes are not valid RecordIO framing or not a valid ``Record`` message."""


# --------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tensor:
    """A Float32Tensor, Float64Tensor or Int32Tensor value.

    ``keys`` is ``None`` for a dense tensor; for a sparse one it holds the flat index (uint64)
    of each entry of ``values``. ``shape`` is ``()`` when the writer gave none.
    """

    values: np.ndarray
    keys: np.ndarray | None = None
    shape: tuple[int, ...] = ()

    @property
    def is_sparse(self) -> bool:
        return self.keys is not None

    @property
    def size(self) -> int:
        """Number of elements the tensor stands for (dense length, or the product of shape)."""
        if self.shape:
            return math.prod(self.shape)  # Python ints: a hostile shape cannot overflow
        if self.keys is not None:
            return int(self.keys.max()) + 1 if len(self.keys) else 0
        return len(self.values)

    def to_dense(self, size: int | None = None) -> np.ndarray:
        """The tensor as a flat dense float32 array of ``size`` (default :attr:`size`) elements."""
        n = self.size if size is None else size
        if self.keys is None:
            return np.asarray(self.values, dtype=np.float32)
        _check_keys(self.keys, n, "sparse tensor")
        out = np.zeros(n, dtype=np.float32)
        out[self.keys.astype(np.intp)] = self.values
        return out


@dataclass(frozen=True, slots=True)
class BytesValue:
    """A ``Bytes`` value: opaque blobs with an optional content type."""

    value: tuple[bytes, ...]
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded ``Record``.

    ``values``/``keys``/``shape`` are those of ``features["values"]`` (the feature vector
    SageMaker Spark and the built-in algorithms use); ``label`` is ``label["values"]`` as a float,
    or ``None``. Every named feature and label is in ``features`` and ``labels``.
    """

    values: np.ndarray
    keys: np.ndarray | None = None
    shape: tuple[int, ...] = ()
    label: float | None = None
    features: dict[str, Tensor | BytesValue] = field(default_factory=dict)
    labels: dict[str, Tensor | BytesValue] = field(default_factory=dict)
    uid: str | None = None
    metadata: str | None = None
    configuration: str | None = None

    @property
    def is_sparse(self) -> bool:
        return self.keys is not None

    @property
    def num_features(self) -> int:
        """Width of the feature vector: the product of ``shape``, else the dense length."""
        return Tensor(self.values, self.keys, self.shape).size

    def dense(self, num_features: int | None = None) -> np.ndarray:
        """The feature vector as a dense float32 array."""
        return Tensor(self.values, self.keys, self.shape).to_dense(num_features)


# --------------------------------------------------------------------------------------------
# RecordIO framing
# --------------------------------------------------------------------------------------------


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


def _frames(data: bytes | bytearray | memoryview) -> Iterator[tuple[int, int, bytes]]:
    """Yield (offset, cflag, payload) of each frame of a byte string."""
    view = memoryview(data).cast("B")
    end = len(view)
    pos = 0
    while pos < end:
        if end - pos < 8:
            raise RecordIOError(f"truncated RecordIO header at byte {pos}: {end - pos} bytes left")
        magic, lrec = _HEADER.unpack_from(view, pos)
        if magic != MAGIC:
            raise RecordIOError(
                f"bad RecordIO magic 0x{magic:08X} at byte {pos} (expected 0x{MAGIC:08X})"
            )
        length = lrec & _LENGTH_MASK
        start = pos + 8
        if start + length > end:
            raise RecordIOError(
                f"truncated RecordIO record at byte {pos}: length {length}, "
                f"{end - start} bytes left"
            )
        yield pos, lrec >> 29, bytes(view[start : start + length])
        pos = start + length + _pad(length)


def _stream_frames(stream: BinaryIO) -> Iterator[tuple[int, int, bytes]]:
    """Yield (offset, cflag, payload) of each frame read from a file or FIFO."""

    def read_exact(n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = stream.read(left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    pos = 0
    while header := read_exact(8):
        if len(header) < 8:
            raise RecordIOError(f"truncated RecordIO header at byte {pos}: {len(header)} bytes")
        magic, lrec = _HEADER.unpack(header)
        if magic != MAGIC:
            raise RecordIOError(
                f"bad RecordIO magic 0x{magic:08X} at byte {pos} (expected 0x{MAGIC:08X})"
            )
        length = lrec & _LENGTH_MASK
        body = read_exact(length + _pad(length))
        if len(body) < length:
            raise RecordIOError(
                f"truncated RecordIO record at byte {pos}: length {length}, {len(body)} bytes left"
            )
        yield pos, lrec >> 29, body[:length]
        pos += 8 + len(body)


def _join(frames: Iterator[tuple[int, int, bytes]]) -> Iterator[bytes]:
    # Multi-part records (cflag 1, 2..., 3) are joined with the magic between the parts, as
    # dmlc-core's reader does.
    parts: list[bytes] = []
    for pos, cflag, payload in frames:
        if cflag == 0 and not parts:
            yield payload
        elif cflag == 1 and not parts:
            parts.append(payload)
        elif cflag in (2, 3) and parts:
            parts.append(payload)
            if cflag == 3:
                yield _MAGIC_BYTES.join(parts)
                parts = []
        elif cflag > 3:
            raise RecordIOError(f"unsupported RecordIO continuation flag {cflag} at byte {pos}")
        else:
            state = "inside a multi-part record" if parts else "with no multi-part record open"
            raise RecordIOError(f"RecordIO frame with cflag {cflag} at byte {pos} {state}")
    if parts:
        raise RecordIOError("RecordIO data ends inside a multi-part record (no cflag 3 part)")


def read_records(data: bytes | bytearray | memoryview) -> Iterator[bytes]:
    """Yield the payload of each record of a RecordIO byte string.

    Raises :class:`RecordIOError` on a bad magic, a truncated frame or a bad continuation flag.
    """
    return _join(_frames(data))


def stream_records(stream: BinaryIO) -> Iterator[bytes]:
    """Like :func:`read_records`, reading frame by frame from a file or FIFO (Pipe mode)."""
    return _join(_stream_frames(stream))


def _frame(payload: bytes) -> bytes:
    # Always one whole frame (cflag 0), as SageMaker Spark and the SageMaker Python SDK write:
    # SageMaker Spark's reader does not understand split records.
    n = len(payload)
    if n > _LENGTH_MASK:
        raise RecordIOError(f"record of {n} bytes exceeds the RecordIO limit of {_LENGTH_MASK}")
    return b"".join((_HEADER.pack(MAGIC, n), payload, b"\0" * _pad(n)))


def write_records(payloads: Iterable[bytes]) -> bytes:
    """RecordIO-frame each payload and concatenate them."""
    return b"".join(_frame(p) for p in payloads)


# --------------------------------------------------------------------------------------------
# Protobuf wire format: decoding
# --------------------------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        try:
            b = buf[pos]
        except IndexError:
            raise RecordIOError("truncated varint in Record") from None
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _UINT64_MASK, pos  # protobuf keeps the low 64 bits
        shift += 7
        if shift > 63:
            raise RecordIOError("varint longer than 10 bytes in Record")


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """Yield (field number, wire type, value) of a message; LEN values as bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise RecordIOError("field number 0 in Record")
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _LEN:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise RecordIOError(f"field {number} of length {n} runs past the message end")
            value, pos = buf[pos : pos + n], pos + n
        elif wire == _I32:
            if pos + 4 > end:
                raise RecordIOError(f"truncated fixed32 field {number}")
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire == _I64:
            if pos + 8 > end:
                raise RecordIOError(f"truncated fixed64 field {number}")
            value, pos = buf[pos : pos + 8], pos + 8
        else:
            raise RecordIOError(f"unsupported wire type {wire} (field {number}) in Record")
        yield number, wire, value


def _packed_varints(buf: bytes) -> np.ndarray:
    """Decode a packed run of varints into uint64, vectorised with numpy."""
    b = np.frombuffer(buf, dtype=np.uint8)
    if not len(b):
        return np.zeros(0, dtype=np.uint64)
    if b[-1] & 0x80:
        raise RecordIOError("truncated packed varint field in Record")
    ends = np.flatnonzero(b < 0x80)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise RecordIOError("varint longer than 10 bytes in Record")
    out = (b[starts] & 0x7F).astype(np.uint64)
    for k in range(1, int(lengths.max())):
        sel = np.flatnonzero(lengths > k)
        out[sel] |= (b[starts[sel] + k] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
    return out


_VALUE_DTYPES = {2: np.dtype("<f4"), 3: np.dtype("<f8"), 7: np.dtype(np.int32)}


def _decode_tensor(buf: bytes, kind: int) -> Tensor:
    dtype = _VALUE_DTYPES[kind]
    values: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    shape: list[np.ndarray] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            if kind == 7:  # int32: varints, negative numbers as 10-byte two's complement
                raw = _packed_varints(value) if wire == _LEN else np.array([value], np.uint64)
                values.append(raw.astype(np.int64).astype(np.int32))
            elif wire == _LEN or wire == (_I32 if kind == 2 else _I64):
                if len(value) % dtype.itemsize:
                    raise RecordIOError(f"packed values of {len(value)} bytes is not a multiple")
                values.append(np.frombuffer(value, dtype=dtype))
            else:
                raise RecordIOError(f"tensor values with wire type {wire}")
        elif number in (2, 3):
            if wire == _LEN:
                ints = _packed_varints(value)
            elif wire == _VARINT:
                ints = np.array([value], dtype=np.uint64)
            else:
                raise RecordIOError(f"tensor keys/shape with wire type {wire}")
            (keys if number == 2 else shape).append(ints)
        # Unknown fields are skipped, as protobuf readers do.
    vals = _concat(values, dtype)
    if kind == 2:
        vals = vals.astype(np.float32, copy=False)
    key_arr = _concat(keys, np.dtype(np.uint64)) if keys else None
    if key_arr is None and shape and not len(vals):
        key_arr = np.zeros(0, dtype=np.uint64)  # an all-zero sparse vector: shape alone
    if key_arr is not None and len(key_arr) != len(vals):
        raise RecordIOError(f"sparse tensor has {len(key_arr)} keys but {len(vals)} values")
    shp = tuple(int(s) for s in _concat(shape, np.dtype(np.uint64))) if shape else ()
    return Tensor(vals, key_arr, shp)


def _concat(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=dtype)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


def _decode_value(buf: bytes) -> Tensor | BytesValue | None:
    result: Tensor | BytesValue | None = None
    for number, wire, value in _fields(buf):
        if wire != _LEN:
            continue
        if number in _VALUE_DTYPES:
            result = _decode_tensor(value, number)
        elif number == 9:
            blobs, ctype = [], None
            for n, w, v in _fields(value):
                if n == 1 and w == _LEN:
                    blobs.append(bytes(v))
                elif n == 2 and w == _LEN:
                    ctype = bytes(v).decode("utf-8", "replace")
            result = BytesValue(tuple(blobs), ctype)
    return result


def _decode_entry(buf: bytes) -> tuple[str, Tensor | BytesValue | None]:
    key, val = "", None
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _LEN:
            key = bytes(value).decode("utf-8", "replace")
        elif number == 2 and wire == _LEN:
            val = _decode_value(value)
    return key, val


def decode_record(payload: bytes) -> Record:
    """Decode one ``Record`` payload (as yielded by :func:`read_records`)."""
    features: dict[str, Tensor | BytesValue] = {}
    labels: dict[str, Tensor | BytesValue] = {}
    strings: dict[int, str] = {}
    for number, wire, value in _fields(payload):
        if number in (1, 2) and wire == _LEN:
            key, val = _decode_entry(value)
            if val is not None:
                (features if number == 1 else labels)[key] = val
        elif number in (3, 4, 5) and wire == _LEN:
            strings[number] = bytes(value).decode("utf-8", "replace")
    vec = features.get("values")
    if isinstance(vec, BytesValue):
        raise RecordIOError('features["values"] is a Bytes value, expected a numeric tensor')
    if vec is None:
        vec = Tensor(np.zeros(0, dtype=np.float32))
    label: float | None = None
    lab = labels.get("values")
    if isinstance(lab, Tensor) and len(lab.values):
        label = float(lab.values[0])
    return Record(
        values=vec.values,
        keys=vec.keys,
        shape=vec.shape,
        label=label,
        features=features,
        labels=labels,
        uid=strings.get(3),
        metadata=strings.get(4),
        configuration=strings.get(5),
    )


# The widest feature vector a matrix may have: XGBoost and scipy index columns with int32.
MAX_WIDTH = (1 << 31) - 1


def _check_keys(keys: np.ndarray, size: int, what: str) -> None:
    """Every key must index one of ``size`` values. Checked on the keys as decoded (uint64),
    before any cast: 2**64 - 1 cast to int64 is -1, which numpy and XGBoost index with."""
    if not len(keys):
        return
    if keys.dtype.kind == "i" and int(keys.min()) < 0:
        raise RecordIOError(f"{what} has key {int(keys.min())}: keys must be 0..{size - 1}")
    top = int(keys.max())
    if top >= size:
        raise RecordIOError(f"{what} has key {top}, outside 0..{size - 1}")


def _record_width(index: int, r: Record) -> int:
    """The width a record stands for, after checking its shape against its values and keys."""
    what = f"record {index}"
    if r.keys is None:
        n = len(r.values)
        if r.shape and math.prod(r.shape) != n:
            raise RecordIOError(
                f"{what} has shape {list(r.shape)} ({math.prod(r.shape)} values) "
                f"but carries {n} values"
            )
        return n
    if r.shape:
        size = math.prod(r.shape)
        if size > MAX_WIDTH:
            raise RecordIOError(f"{what} has shape {list(r.shape)}: over {MAX_WIDTH} features")
        _check_keys(r.keys, size, what)
        return size
    top = int(r.keys.max()) if len(r.keys) else -1
    if top >= MAX_WIDTH:
        raise RecordIOError(f"{what} has key {top}, outside 0..{MAX_WIDTH - 1}")
    return top + 1


def to_matrix(
    data: bytes | bytearray | memoryview, num_features: int | None = None
) -> tuple[np.ndarray | scipy.sparse.csr_matrix, np.ndarray | None]:
    """Decode a whole RecordIO-protobuf body into (features, labels), one row per record.

    Features are a dense float32 ``ndarray`` when every record is dense, else a float32 CSR
    matrix. The width is ``num_features`` when given, else the widest record. Labels are a
    float32 array when every record has ``label["values"]``, ``None`` when none has; a mix is
    an error. A record whose features have a rank-2 shape is flattened row-major.

    Every record is checked before any index reaches numpy, scipy or XGBoost: a dense record
    carries exactly the values its shape says, a sparse record's keys lie inside its shape
    and the width, and every dense record has the width. A violation is a
    :class:`RecordIOError` naming the record (0-based) and the key or width.
    """
    uniform = _uniform_dense(data, num_features)
    if uniform is not None:
        return uniform
    records = [decode_record(p) for p in read_records(data)]
    if not records:
        raise RecordIOError("no records in RecordIO-protobuf data")
    widths = [_record_width(i, r) for i, r in enumerate(records)]
    width = max(widths) if num_features is None else num_features
    for i, (r, w) in enumerate(zip(records, widths, strict=True)):
        if (not r.is_sparse and w != width) or w > width:
            raise RecordIOError(f"record {i} has {w} features, expected {width}")
    has_label = [r.label is not None for r in records]
    if all(has_label):
        labels: np.ndarray | None = np.array([r.label for r in records], dtype=np.float32)
    elif not any(has_label):
        labels = None
    else:
        missing = has_label.index(False)
        raise RecordIOError(f'record {missing} has no label["values"] but others have one')
    if not any(r.is_sparse for r in records):
        return np.vstack([r.values.astype(np.float32, copy=False) for r in records]), labels
    indptr = np.zeros(len(records) + 1, dtype=np.int64)
    cols, vals = [], []
    for i, r in enumerate(records):
        if r.keys is None:
            k = np.flatnonzero(r.values).astype(np.int64)
            v = r.values[k]
        else:
            _check_keys(r.keys, width, f"record {i}")  # again, right before the cast
            k, v = r.keys.astype(np.int64), r.values
        cols.append(k)
        vals.append(v.astype(np.float32, copy=False))
        indptr[i + 1] = indptr[i] + len(k)
    matrix = scipy.sparse.csr_matrix(
        (np.concatenate(vals), np.concatenate(cols), indptr), shape=(len(records), width)
    )
    matrix.sum_duplicates()
    return matrix, labels


def _len_spans(buf: bytes, base: int = 0) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each field's value, offsets from ``base``."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        wire = tag & 7
        if wire == _LEN:
            n, pos = _varint(buf, pos)
        elif wire == _VARINT:
            _, after = _varint(buf, pos)
            n = after - pos
        elif wire in (_I32, _I64):
            n = 4 if wire == _I32 else 8
        else:
            raise RecordIOError(f"unsupported wire type {wire}")
        yield tag >> 3, wire, base + pos, base + pos + n
        pos += n


def _tensor_span(payload: bytes, entry: tuple[int, int, int, int]) -> tuple[int, int] | None:
    """Where the packed float32 values of a ``{"values": Float32Tensor}`` map entry lie, when
    the entry holds nothing else (no keys, no shape beyond the dense length)."""
    _, _, lo, hi = entry
    parts = list(_len_spans(payload[lo:hi], lo))
    if [p[:2] for p in parts] != [(1, _LEN), (2, _LEN)] or payload[parts[0][2] : parts[0][3]] != (
        b"values"
    ):
        return None
    value = list(_len_spans(payload[parts[1][2] : parts[1][3]], parts[1][2]))
    if [v[:2] for v in value] != [(2, _LEN)]:
        return None
    tensor = list(_len_spans(payload[value[0][2] : value[0][3]], value[0][2]))
    if not tensor or tensor[0][:2] != (1, _LEN) or any(t[0] != 3 for t in tensor[1:]):
        return None
    return tensor[0][2], tensor[0][3]


def _uniform_dense(
    data: bytes | bytearray | memoryview, num_features: int | None
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """:func:`to_matrix` of a body whose records all share one byte layout, vectorised.

    What SageMaker Spark and the SageMaker SDK write for dense rows: every frame the same
    length, each a ``Record`` with ``features["values"]`` (float32, packed) and optionally a
    one-float ``label["values"]``. The first record is decoded and checked in full; every other
    record must equal it byte for byte outside its float bytes, so it decodes the same way,
    and the floats are then read for all records at once. ``None`` (the general decoder runs)
    for anything else.
    """
    view = np.frombuffer(data, dtype=np.uint8)
    if len(view) < 8:
        return None
    magic, lrec = _HEADER.unpack_from(view, 0)
    length = lrec & _LENGTH_MASK
    frame = 8 + length + _pad(length)
    if magic != MAGIC or lrec >> 29 or len(view) % frame:
        return None
    payload = bytes(view[8 : 8 + length])
    try:
        first = decode_record(payload)
        width = _record_width(0, first)
        entries = list(_len_spans(payload))
    except RecordIOError:
        return None  # the general decoder reports it
    if first.keys is not None or first.values.dtype != np.float32 or first.shape[1:]:
        return None
    if num_features is not None and width != num_features:
        return None
    if [e[:2] for e in entries] not in ([(1, _LEN)], [(1, _LEN), (2, _LEN)]):
        return None
    spans = [_tensor_span(payload, e) for e in entries]
    if any(s is None for s in spans) or spans[0][1] - spans[0][0] != 4 * width:  # type: ignore[index]
        return None
    if len(spans) == 2 and spans[1][1] - spans[1][0] != 4:  # type: ignore[index]
        return None
    rows = view.reshape(-1, frame)
    fixed = np.ones(frame, dtype=bool)
    for lo, hi in spans:  # type: ignore[misc]
        fixed[8 + lo : 8 + hi] = False
    structure = rows[:, fixed]
    if not (structure == structure[0]).all():
        return None
    columns = [np.ascontiguousarray(rows[:, 8 + lo : 8 + hi]) for lo, hi in spans]  # type: ignore[misc]
    floats = [c.view("<f4").astype(np.float32, copy=False) for c in columns]
    return floats[0], floats[1].ravel() if len(floats) == 2 else None


# --------------------------------------------------------------------------------------------
# Protobuf wire format: encoding
# --------------------------------------------------------------------------------------------


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc_varints(arr: np.ndarray) -> bytes:
    return b"".join(_enc_varint(int(x)) for x in arr)


def _len_field(number: int, body: bytes) -> bytes:
    return _enc_varint(number << 3 | _LEN) + _enc_varint(len(body)) + body


def _encode_tensor(t: Tensor) -> bytes:
    """A ``Value`` holding ``t``: float64 → Float64Tensor, int32 → Int32Tensor, else float32."""
    values = np.asarray(t.values)
    if values.dtype == np.float64:
        kind, body = 3, values.astype("<f8").tobytes()
    elif values.dtype == np.int32:
        kind, body = 7, _enc_varints(values.astype(np.int64).astype(np.uint64))
    else:
        kind, body = 2, values.astype("<f4").tobytes()
    msg = _len_field(1, body) if len(values) else b""
    if t.keys is not None and len(t.keys):
        msg += _len_field(2, _enc_varints(np.asarray(t.keys, dtype=np.uint64)))
    if t.shape:
        msg += _len_field(3, _enc_varints(np.asarray(t.shape, dtype=np.uint64)))
    return _len_field(kind, msg)


TensorLike = Tensor | np.ndarray | Iterable[float] | float


def _as_tensor(x: TensorLike) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, float | int | np.floating | np.integer):
        return Tensor(np.array([x], dtype=np.float32))
    arr = np.asarray(x)
    if arr.dtype not in (np.float64, np.int32):
        arr = arr.astype(np.float32)
    return Tensor(arr.ravel(), None, arr.shape if arr.ndim > 1 else ())


def _encode_map(number: int, m: TensorLike | Mapping[str, TensorLike] | None) -> bytes:
    if m is None:
        return b""
    items = m.items() if isinstance(m, Mapping) else [("values", m)]
    return b"".join(
        _len_field(number, _len_field(1, k.encode()) + _len_field(2, _encode_tensor(_as_tensor(v))))
        for k, v in items
    )


def encode_record(
    features: TensorLike | Mapping[str, TensorLike] | None = None,
    label: TensorLike | Mapping[str, TensorLike] | None = None,
    *,
    uid: str | None = None,
    metadata: str | None = None,
    configuration: str | None = None,
) -> bytes:
    """Encode one ``Record`` payload (frame it with :func:`write_records`).

    ``features``/``label``: a mapping of name to tensor, or one tensor, stored under
    ``"values"``. A tensor is a :class:`Tensor` (give ``keys`` and ``shape`` for sparse), an
    array (float64 → Float64Tensor, int32 → Int32Tensor, anything else → Float32Tensor), or a
    number (a one-element Float32Tensor).
    """
    out = _encode_map(1, features) + _encode_map(2, label)
    for number, s in ((3, uid), (4, metadata), (5, configuration)):
        if s is not None:
            out += _len_field(number, s.encode())
    return out


def from_matrix(
    features: np.ndarray | scipy.sparse.spmatrix | scipy.sparse.sparray,
    labels: Iterable[float] | None = None,
) -> bytes:
    """A RecordIO-protobuf body with one record per row (sparse rows keep keys and shape)."""
    label_list = None if labels is None else [float(v) for v in labels]
    payloads = []
    if scipy.sparse.issparse(features):
        csr = scipy.sparse.csr_matrix(features)
        width = csr.shape[1]
        for i in range(csr.shape[0]):
            lo, hi = csr.indptr[i], csr.indptr[i + 1]
            t = Tensor(csr.data[lo:hi].astype(np.float32), csr.indices[lo:hi], (width,))
            label = None if label_list is None else label_list[i]
            payloads.append(encode_record(t, label))
    else:
        matrix = np.asarray(features, dtype=np.float32)
        if matrix.ndim != 2:
            raise ValueError(f"features must be 2-D, got shape {matrix.shape}")
        for i, row in enumerate(matrix):
            label = None if label_list is None else label_list[i]
            payloads.append(encode_record(row, label))
    return write_records(payloads)


def encode_scores(predictions: np.ndarray, key: str = "score") -> bytes:
    """A RecordIO-protobuf response: one record per row, the prediction in ``label[key]``.

    1-D predictions give a one-value Float32Tensor per record; 2-D (e.g. class probabilities)
    a vector per record. This is what SageMaker Spark's ProtobufResponseRowDeserializer reads.
    """
    preds = np.asarray(predictions, dtype="<f4")
    if preds.ndim == 1:
        preds = preds[:, None]
    n, width = preds.shape
    # Every record has the same layout and the floats are its last bytes: encode one template
    # record and splice each row's floats in after its prefix.
    tensor_len = 4 * width
    template = encode_record(label={key: np.zeros(width, dtype=np.float32)})
    prefix = _HEADER.pack(MAGIC, len(template)) + template[: len(template) - tensor_len]
    padding = b"\0" * _pad(len(template))
    rows = preds.tobytes()
    return b"".join(
        prefix + rows[i * tensor_len : (i + 1) * tensor_len] + padding for i in range(n)
    )

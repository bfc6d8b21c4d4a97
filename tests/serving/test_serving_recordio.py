"""The RecordIO-protobuf codec against an independent encoder written here from record.proto."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import scipy.sparse
from mlstack_containers import recordio

MAGIC = 0xCED7230A


# -- an independent, deliberately naive protobuf + RecordIO writer ------------------------------


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = b""
    while n > 0x7F:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def ld(number: int, body: bytes) -> bytes:
    return tag(number, 2) + varint(len(body)) + body


def float32_tensor(values, keys=(), shape=(), packed=True) -> bytes:
    if packed:
        out = ld(1, b"".join(struct.pack("<f", v) for v in values)) if values else b""
        out += ld(2, b"".join(varint(k) for k in keys)) if keys else b""
        out += ld(3, b"".join(varint(s) for s in shape)) if shape else b""
        return out
    out = b"".join(tag(1, 5) + struct.pack("<f", v) for v in values)
    out += b"".join(tag(2, 0) + varint(k) for k in keys)
    out += b"".join(tag(3, 0) + varint(s) for s in shape)
    return out


def value(kind: int, tensor: bytes) -> bytes:
    return ld(kind, tensor)


def entry(number: int, key: str, value_bytes: bytes) -> bytes:
    return ld(number, ld(1, key.encode()) + ld(2, value_bytes))


def frame(payload: bytes, cflag: int = 0) -> bytes:
    pad = (4 - len(payload) % 4) % 4
    return struct.pack("<II", MAGIC, cflag << 29 | len(payload)) + payload + b"\0" * pad


def dense_record(features, label=None, packed=True) -> bytes:
    out = entry(1, "values", value(2, float32_tensor(features, packed=packed)))
    if label is not None:
        out += entry(2, "values", value(2, float32_tensor([label], packed=packed)))
    return out


# -- framing ----------------------------------------------------------------------------------


def test_read_records_yields_payloads_and_skips_padding():
    payloads = [b"", b"a", b"ab", b"abc", b"abcd", b"abcde"]
    data = b"".join(frame(p) for p in payloads)
    assert list(recordio.read_records(data)) == payloads


def test_write_records_matches_independent_framing():
    payloads = [b"x" * n for n in range(9)]
    assert recordio.write_records(payloads) == b"".join(frame(p) for p in payloads)


def test_multipart_records_are_joined_with_the_magic():
    magic = struct.pack("<I", MAGIC)
    data = frame(b"head", 1) + frame(b"mid", 2) + frame(b"tail", 3) + frame(b"next")
    assert list(recordio.read_records(data)) == [
        b"head" + magic + b"mid" + magic + b"tail",
        b"next",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (struct.pack("<II", 0xDEADBEEF, 0), "bad RecordIO magic 0xDEADBEEF at byte 0"),
        (frame(b"abcd")[:-2], "truncated RecordIO record at byte 0: length 4"),
        (frame(b"abcd") + b"\x0a\x23", "truncated RecordIO header at byte 12"),
        (frame(b"a", 5), "unsupported RecordIO continuation flag 5 at byte 0"),
        (frame(b"a", 2), "cflag 2 at byte 0 with no multi-part record open"),
        (frame(b"a", 1) + frame(b"b"), "cflag 0 at byte 12 inside a multi-part record"),
        (frame(b"a", 1), "ends inside a multi-part record"),
    ],
)
def test_bad_framing_is_rejected_with_a_message(data, message):
    with pytest.raises(recordio.RecordIOError, match=message.replace("(", r"\(")):
        list(recordio.read_records(data))


def test_stream_records_reads_a_file_like_a_byte_string():
    magic = struct.pack("<I", MAGIC)
    data = frame(b"one") + frame(b"p1", 1) + frame(b"p2", 3) + frame(b"three!")
    assert list(recordio.stream_records(io.BytesIO(data))) == [
        b"one",
        b"p1" + magic + b"p2",
        b"three!",
    ]
    with pytest.raises(recordio.RecordIOError, match="truncated RecordIO record at byte 12"):
        list(recordio.stream_records(io.BytesIO(frame(b"one") + frame(b"twotwo")[:-4])))


# -- Record messages --------------------------------------------------------------------------


@pytest.mark.parametrize("packed", [True, False])
def test_decode_dense_record_with_label(packed):
    rec = recordio.decode_record(dense_record([1.5, -2.0, 3.25], label=1.0, packed=packed))
    assert rec.values.dtype == np.float32
    np.testing.assert_array_equal(rec.values, [1.5, -2.0, 3.25])
    assert rec.keys is None
    assert not rec.is_sparse
    assert rec.label == 1.0
    assert rec.num_features == 3


@pytest.mark.parametrize("packed", [True, False])
def test_decode_sparse_record_as_sagemaker_spark_writes_it(packed):
    # SparseVector(6, [1, 4], [2.0, 5.0]) -> values, keys, shape = [6]
    tensor = float32_tensor([2.0, 5.0], keys=[1, 4], shape=[6], packed=packed)
    rec = recordio.decode_record(entry(1, "values", value(2, tensor)))
    assert rec.is_sparse
    np.testing.assert_array_equal(rec.keys, [1, 4])
    assert rec.shape == (6,)
    assert rec.label is None
    np.testing.assert_array_equal(rec.dense(), [0, 2, 0, 0, 5, 0])


def test_decode_reads_other_tensor_kinds_strings_and_skips_unknown_fields():
    f64 = ld(1, struct.pack("<2d", 0.5, 1e300))
    i32 = ld(1, varint(7) + varint(-3))
    blob = ld(1, b"\x89PNG") + ld(2, b"image/png")
    payload = (
        entry(1, "values", value(3, f64))
        + entry(1, "counts", value(7, i32))
        + entry(1, "image", value(9, blob))
        + entry(2, "values", value(2, float32_tensor([0.0])))
        + ld(3, b"row-17")
        + ld(4, b'{"src": "s3"}')
        + ld(5, b"{}")
        + tag(15, 0)
        + varint(99)  # an unknown field
    )
    rec = recordio.decode_record(payload)
    assert rec.values.dtype == np.float64
    np.testing.assert_array_equal(rec.values, [0.5, 1e300])
    np.testing.assert_array_equal(rec.features["counts"].values, [7, -3])
    assert rec.features["image"] == recordio.BytesValue((b"\x89PNG",), "image/png")
    assert rec.label == 0.0
    assert (rec.uid, rec.metadata, rec.configuration) == ("row-17", '{"src": "s3"}', "{}")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (entry(1, "values", value(2, ld(1, b"\0\0\0")))[:-1], "runs past the message end"),
        (entry(1, "values", value(2, ld(1, b"\0\0\0"))), "not a multiple"),
        (tag(1, 3) + b"x", "unsupported wire type 3"),
        (b"\xff" * 11, "varint longer than 10 bytes"),
        (entry(1, "values", value(2, float32_tensor([1.0], keys=[0, 1]))), "2 keys but 1 values"),
    ],
)
def test_malformed_records_raise_recordio_error(payload, message):
    with pytest.raises(recordio.RecordIOError, match=message):
        recordio.decode_record(payload)


def test_encode_record_round_trips_through_the_decoder_and_is_packed_like_the_reference():
    payload = recordio.encode_record(np.array([1.0, 2.0], dtype=np.float32), 1.0)
    assert payload == dense_record([1.0, 2.0], label=1.0)
    sparse = recordio.Tensor(np.array([3.0], np.float32), np.array([5], np.uint64), (10,))
    payload = recordio.encode_record(sparse, uid="u1")
    assert payload == entry(1, "values", value(2, float32_tensor([3.0], [5], [10]))) + ld(3, b"u1")
    rec = recordio.decode_record(payload)
    np.testing.assert_array_equal(rec.dense(), [0, 0, 0, 0, 0, 3, 0, 0, 0, 0])


def test_large_keys_decode_exactly():
    keys = [0, 127, 128, 16383, 16384, 2**32 + 5, 2**63 + 1]
    tensor = float32_tensor([1.0] * len(keys), keys=keys, shape=[2**64 - 1])
    rec = recordio.decode_record(entry(1, "values", value(2, tensor)))
    assert [int(k) for k in rec.keys] == keys
    assert rec.shape == (2**64 - 1,)


# -- whole bodies -----------------------------------------------------------------------------


def test_to_matrix_dense_with_labels():
    data = b"".join(frame(dense_record([i, i + 0.5], label=i % 2)) for i in range(5))
    features, labels = recordio.to_matrix(data)
    assert isinstance(features, np.ndarray)
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, [[i, i + 0.5] for i in range(5)])
    np.testing.assert_array_equal(labels, [0, 1, 0, 1, 0])


def test_to_matrix_sparse_rows_give_csr_of_the_declared_width():
    rows = [([1.0], [2], [5]), ([4.0, 6.0], [0, 4], [5]), ([], [], [5])]
    data = b"".join(
        frame(entry(1, "values", value(2, float32_tensor(v, k, s)))) for v, k, s in rows
    )
    features, labels = recordio.to_matrix(data)
    assert scipy.sparse.issparse(features)
    assert labels is None
    np.testing.assert_array_equal(
        features.toarray(), [[0, 0, 1, 0, 0], [4, 0, 0, 0, 6], [0, 0, 0, 0, 0]]
    )
    wide, _ = recordio.to_matrix(data, num_features=8)
    assert wide.shape == (3, 8)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no records"),
        (frame(dense_record([1, 2])) + frame(dense_record([1, 2, 3])), "record 0 has 2 features"),
        (frame(dense_record([1], 1)) + frame(dense_record([2])), "record 1 has no label"),
    ],
)
def test_to_matrix_rejects_inconsistent_bodies(data, message):
    with pytest.raises(recordio.RecordIOError, match=message):
        recordio.to_matrix(data)


def test_from_matrix_round_trips_dense_and_sparse():
    rng = np.random.default_rng(0)
    dense = rng.random((20, 4)).astype(np.float32)
    labels = rng.integers(0, 2, 20)
    features, got_labels = recordio.to_matrix(recordio.from_matrix(dense, labels))
    np.testing.assert_array_equal(features, dense)
    np.testing.assert_array_equal(got_labels, labels)
    sparse = scipy.sparse.random(30, 50, density=0.1, format="csr", dtype=np.float32, rng=rng)
    features, got_labels = recordio.to_matrix(recordio.from_matrix(sparse))
    assert got_labels is None
    np.testing.assert_array_equal(features.toarray(), sparse.toarray())


def test_encode_scores_matches_one_label_record_per_row():
    preds = np.array([0.25, 0.5, 1e-7], dtype=np.float32)
    expected = b"".join(frame(entry(2, "score", value(2, float32_tensor([p])))) for p in preds)
    assert recordio.encode_scores(preds) == expected
    probs = np.array([[0.1, 0.9], [0.7, 0.3]], dtype=np.float32)
    records = [
        recordio.decode_record(p) for p in recordio.read_records(recordio.encode_scores(probs))
    ]
    np.testing.assert_array_equal([r.labels["score"].values for r in records], probs)

"""Property tests of every request codec (hypothesis): any bytes, any header, any record
gives a float32 matrix of the model's width or the one client-error type, never another
exception; and what the server writes reads back to what it wrote."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse
import xgboost as xgb
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from mlstack_containers import recordio
from mlstack_containers.serving import codecs
from pandas._libs.parsers import STR_NA_VALUES

WIDTH = 3
KINDS = [codecs.CSV, codecs.JSON, codecs.JSONLINES, codecs.LIBSVM, codecs.RECORDIO]
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(0)
    X = rng.random((200, WIDTH), dtype=np.float32)
    return xgb.train({"max_depth": 3}, xgb.DMatrix(X, label=X[:, 0]), num_boost_round=3)


def check(body: bytes, kind: str, booster: xgb.Booster | None = None) -> None:
    """The property: a well-formed float32 matrix of WIDTH columns, or a ClientError 4xx."""
    try:
        features = codecs.parse_request(body, kind, WIDTH)
    except codecs.ClientError as exc:
        assert 400 <= exc.status < 500
        assert exc.message
        return
    assert features.shape[1] == WIDTH and features.shape[0] >= 1
    assert features.dtype == np.float32
    if scipy.sparse.issparse(features):
        features.check_format(full_check=True)  # indices inside 0..WIDTH-1, indptr sane
        assert features.indices.min(initial=0) >= 0
        assert features.indices.max(initial=0) < WIDTH
    else:
        assert features.ndim == 2
    if booster is not None:  # what the server does next must not fail
        out = booster.inplace_predict(features, validate_features=False)
        assert len(out) == features.shape[0]


# -- any bytes -------------------------------------------------------------------------------


@FAST
@given(body=st.binary(max_size=300), kind=st.sampled_from(KINDS))
def test_any_bytes_are_a_matrix_or_a_client_error(body, kind):
    check(body, kind)


@FAST
@given(header=st.text(max_size=60))
def test_any_content_type_or_accept_header_is_known_or_a_4xx(header):
    for parse in (codecs.request_type, codecs.response_type):
        try:
            kind = parse(header)
        except codecs.ClientError as exc:
            assert exc.status in (406, 415)
        else:
            assert kind in codecs.REQUEST_TYPES.values() or kind in codecs.RESPONSE_TYPES.values()


# -- text that looks like the formats --------------------------------------------------------

number_text = st.one_of(
    st.integers(-(10**400), 10**400).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "-inf", "1e999", "0x10", "1_0", "\u0661", "+", "-", "e5"]),
)


@FAST
@given(
    rows=st.lists(st.lists(number_text, min_size=0, max_size=5), min_size=0, max_size=6),
    sep=st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_csv_like_text_is_a_matrix_or_a_client_error(rows, sep):
    check(sep.join(",".join(r).encode() for r in rows), codecs.CSV)


@FAST
@given(
    rows=st.lists(
        st.lists(
            st.tuples(st.integers(-(2**70), 2**70), number_text).map(lambda t: f"{t[0]}:{t[1]}"),
            max_size=5,
        ),
        max_size=5,
    )
)
def test_libsvm_like_text_is_a_matrix_or_a_client_error(rows):
    check("\n".join("1 " + " ".join(r) for r in rows).encode(), codecs.LIBSVM)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**400), 10**400)
    | st.floats()
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["instances", "features", "data", "values", "keys", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=20,
)


@FAST
@given(value=json_values)
def test_any_json_document_is_a_matrix_or_a_client_error(value):
    text = json.dumps(value).encode()
    check(text, codecs.JSON)
    check(text, codecs.JSONLINES)


@FAST
@given(lines=st.lists(json_values, max_size=4))
def test_any_json_lines_are_a_matrix_or_a_client_error(lines):
    check(b"\n".join(json.dumps(v).encode() for v in lines), codecs.JSONLINES)


# -- RecordIO-protobuf records of any keys, shapes and values ------------------------------

u64 = st.one_of(st.integers(0, 8), st.integers(0, 2**64 - 1), st.sampled_from([2**63, 2**64 - 1]))
value_arrays = st.one_of(
    st.lists(st.floats(width=32), max_size=6).map(lambda v: np.asarray(v, np.float32)),
    st.lists(st.floats(), max_size=6).map(lambda v: np.asarray(v, np.float64)),
    st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6).map(lambda v: np.asarray(v, np.int32)),
)
tensors = st.builds(
    lambda values, keys, shape: recordio.Tensor(
        values, None if keys is None else np.asarray(keys, np.uint64), tuple(shape)
    ),
    values=value_arrays,
    keys=st.none() | st.lists(u64, max_size=6),
    shape=st.lists(u64, max_size=2),
)


def _encode(tensor: recordio.Tensor) -> bytes:
    return recordio.encode_record(tensor)


@FAST
@given(records=st.lists(tensors, min_size=1, max_size=4))
def test_any_recordio_records_are_a_matrix_or_a_client_error(booster, records):
    check(recordio.write_records([_encode(t) for t in records]), codecs.RECORDIO, booster)


@FAST
@given(
    records=st.lists(tensors, min_size=1, max_size=3),
    cut=st.integers(0, 400),
    flip=st.tuples(st.integers(0, 400), st.integers(0, 255)),
)
def test_truncated_or_corrupted_recordio_is_a_matrix_or_a_client_error(booster, records, cut, flip):
    body = bytearray(recordio.write_records([_encode(t) for t in records]))
    if flip[0] < len(body):
        body[flip[0]] = flip[1]
    check(bytes(body[: len(body) - min(cut, len(body))]), codecs.RECORDIO, booster)


# -- round trips of what we write ------------------------------------------------------------

matrices = st.integers(1, 40).flatmap(
    lambda n: st.integers(1, 8).flatmap(
        lambda w: st.lists(
            st.floats(width=32, allow_nan=False), min_size=n * w, max_size=n * w
        ).map(lambda v: np.asarray(v, np.float32).reshape(n, w))
    )
)


@FAST
@given(matrix=matrices, labelled=st.booleans())
def test_recordio_dense_round_trip_is_bit_exact_on_the_fast_and_the_general_path(matrix, labelled):
    labels = np.arange(len(matrix), dtype=np.float32) if labelled else None
    body = recordio.from_matrix(matrix, labels)
    features, got_labels = recordio.to_matrix(body, num_features=matrix.shape[1])
    assert features.dtype == np.float32
    assert features.tobytes() == matrix.tobytes()
    general = np.vstack([recordio.decode_record(p).values for p in recordio.read_records(body)])
    assert general.tobytes() == matrix.tobytes()
    if labelled:
        assert got_labels is not None and got_labels.tobytes() == labels.tobytes()
    else:
        assert got_labels is None


@FAST
@given(matrix=matrices, density=st.floats(0, 1))
def test_recordio_sparse_round_trip(matrix, density):
    mask = np.random.default_rng(len(matrix)).random(matrix.shape) < density
    sparse = scipy.sparse.csr_matrix(np.where(mask, matrix, 0).astype(np.float32))
    features, _ = recordio.to_matrix(recordio.from_matrix(sparse), num_features=matrix.shape[1])
    np.testing.assert_array_equal(scipy.sparse.csr_matrix(features).toarray(), sparse.toarray())


@FAST
@given(predictions=st.lists(st.floats(width=32), min_size=1, max_size=50))
def test_every_response_type_reads_back_to_the_predictions(predictions):
    preds = np.asarray(predictions, np.float32)
    csv = codecs.format_response(preds, codecs.CSV, batch=False)
    assert_same_floats(np.asarray(csv.split(b","), dtype=np.float32), preds)
    lines = codecs.format_response(preds, codecs.CSV, batch=True)
    assert_same_floats(np.asarray(lines.split(b"\n"), dtype=np.float32), preds)
    # parse_int=float: "-0" is the float -0.0 (JavaScript's reading), not Python's int 0.
    doc = json.loads(codecs.format_response(preds, codecs.JSON, batch=False), parse_int=float)
    got = np.asarray([p["score"] for p in doc["predictions"]], np.float32)
    assert_same_floats(got, preds)
    jsonl = codecs.format_response(preds, codecs.JSONLINES, batch=False).split(b"\n")
    assert_same_floats(
        np.asarray([json.loads(x, parse_int=float)["score"] for x in jsonl], np.float32), preds
    )
    body = codecs.format_response(preds, codecs.RECORDIO, batch=False)
    records = [recordio.decode_record(p) for p in recordio.read_records(body)]
    got = np.concatenate([r.labels["score"].values for r in records])
    assert got.tobytes() == preds.tobytes()


def assert_same_floats(got: np.ndarray, want: np.ndarray) -> None:
    # Text keeps every float32 bit but a NaN's sign and payload (and JSON has no NaN or
    # infinity literal in the standard; Python's json writes and reads NaN and Infinity).
    assert got.dtype == want.dtype == np.float32
    for g, w in zip(got.tolist(), want.tolist(), strict=True):
        assert (math.isnan(g) and math.isnan(w)) or (
            g == w and math.copysign(1, g) == math.copysign(1, w)
        )


@FAST
@given(matrix=matrices)
def test_csv_and_json_requests_of_a_matrix_read_back_exactly(matrix):
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in matrix).encode()
    parsed = codecs.parse_request(text, codecs.CSV, matrix.shape[1])
    assert parsed.tobytes() == matrix.tobytes()
    doc = json.dumps({"instances": matrix.tolist()}).encode()
    assert codecs.parse_request(doc, codecs.JSON, matrix.shape[1]).tobytes() == matrix.tobytes()
    common = {"instances": [{"data": {"features": {"values": r}}} for r in matrix.tolist()]}
    parsed = codecs.parse_request(json.dumps(common).encode(), codecs.JSON, matrix.shape[1])
    assert parsed.tobytes() == matrix.tobytes()


@FAST
@given(
    matrix=matrices,
    fmt=st.sampled_from(["%r", "%.3f", "%d", "%.9g", "%e"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    blanks=st.booleans(),
)
def test_the_pandas_csv_fast_path_reads_exactly_what_np_loadtxt_reads(matrix, fmt, newline, blanks):
    values = matrix.astype(np.float64)
    assume(fmt != "%d" or np.isfinite(values).all())
    lines = [",".join(fmt % (int(v) if fmt == "%d" else float(v)) for v in row) for row in values]
    if blanks:
        lines = ["", *lines, ""]
    body = newline.join(lines).encode()
    fast = codecs._parse_csv_pandas(body)
    assert fast is not None
    assert fast.flags.c_contiguous  # what Predictor.predict's dense path takes
    assert fast.tobytes() == codecs._parse_csv_numpy(body).tobytes()


# Fields pandas' C parser reads by default where np.loadtxt refuses them or reads them
# otherwise: pandas' own list of missing-value words (pandas.io.parsers' STR_NA_VALUES: "NA",
# "NULL", "#N/A", "-nan", ...; np.loadtxt refuses most, and reads "-nan" with its sign bit),
# other spellings of NaN np.loadtxt takes, and quoted numbers (pandas strips the quotes,
# np.loadtxt has no quote character).
pandas_words = st.sampled_from(
    [*sorted(STR_NA_VALUES), "NAN", "+nan", "-NAN", "nAn", '"1.5"', '"-2"', "'3'", '"', '""']
)


@FAST
@given(
    rows=st.lists(
        st.lists(st.one_of(number_text, pandas_words), min_size=0, max_size=4),
        min_size=1,
        max_size=5,
    ),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_the_csv_fast_path_never_accepts_what_np_loadtxt_rejects_or_reads_otherwise(rows, newline):
    """Whatever the pandas fast path reads, np.loadtxt (the reference) reads to the same bits."""
    body = newline.join(",".join(r) for r in rows).encode()
    fast = codecs._parse_csv_pandas(body)
    if fast is None:
        return
    reference = codecs._parse_csv_numpy(body)  # a ClientError here fails the test
    assert fast.shape == reference.shape and fast.tobytes() == reference.tobytes()


@pytest.mark.parametrize("word", [*sorted(STR_NA_VALUES), '"1.5"', "-NAN", "+nan"])
def test_a_large_csv_body_gets_np_loadtxts_answer_for_a_field_pandas_reads_by_default(word):
    """A body large enough for the pandas fast path gets np.loadtxt's answer (the reference,
    with an empty field read as missing) for each field pandas reads by default: the same
    bits, or the same 400 and message."""
    body = b"4,5,6\n" * (codecs.PANDAS_MIN_BYTES // 6) + f"1,{word},3\n".encode()
    assert len(body) >= codecs.PANDAS_MIN_BYTES
    try:
        reference = codecs._parse_csv_numpy(body)
    except codecs.ClientError as exc:
        with pytest.raises(codecs.ClientError) as refused:
            codecs.parse_csv(body)
        assert (refused.value.status, refused.value.message) == (400, exc.message)
        return
    parsed = codecs.parse_csv(body)
    assert parsed.shape == reference.shape and parsed.tobytes() == reference.tobytes()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=st.lists(
        st.one_of(
            st.text(alphabet="0123456789.eE+-", max_size=12),  # anything of the accepted bytes
            st.floats(width=32).map(repr),  # every float32, inf and nan included
            st.floats(allow_nan=False).map(lambda v: f"{v:.17g}"),  # beyond float32's range
        ),
        min_size=1,
        max_size=6,
    ),
    newline=st.sampled_from(["", "\n", "\r\n", " "]),
)
def test_the_one_line_csv_fast_path_reads_exactly_what_np_loadtxt_reads(fields, newline):
    """Whatever one line the fast path takes, np.loadtxt reads it to the same float32 bits;
    where np.loadtxt refuses it (its error message is the answer), the fast path declines."""
    body = (",".join(fields) + newline).encode()
    fast = codecs._parse_csv_line(body)
    try:
        reference = codecs._parse_csv_numpy(body)
    except codecs.ClientError:
        assert fast is None
        return
    if fast is not None:
        assert fast.dtype == reference.dtype and fast.shape == reference.shape
        assert fast.tobytes() == reference.tobytes()
    assert codecs.parse_csv(body).tobytes() == reference.tobytes()

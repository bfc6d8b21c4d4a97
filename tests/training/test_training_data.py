"""The data loaders shared by both images (mlstack_containers.data), on their own."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from mlstack_containers import data

from tests.training.conftest import recordio_protobuf_bytes


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("text/csv", data.CSV),
        ("text/csv; label_size=1", data.CSV),
        ("CSV", data.CSV),
        ("text/x-libsvm", data.LIBSVM),
        ("application/x-recordio-protobuf", data.RECORDIO_PROTOBUF),
        (None, data.RECORDIO_PROTOBUF),
        ("", data.RECORDIO_PROTOBUF),
    ],
)
def test_content_types(given, expected):
    assert data.normalize_content_type(given) == expected


def test_only_one_label_column_is_supported():
    with pytest.raises(data.DataError, match="label_size '2'"):
        data.normalize_content_type("text/csv;label_size=2")


def test_csv_weights_column():
    ds = data.parse_csv(b"1,0.5,10,20\n0,2,30,40\n", has_weights=True)
    np.testing.assert_array_equal(ds.labels, [1, 0])
    np.testing.assert_array_equal(ds.weights, [0.5, 2])
    np.testing.assert_array_equal(ds.features, [[10, 20], [30, 40]])


def test_csv_without_label_for_inference():
    ds = data.parse_csv(b"10,20\r\n30,40\r\n", has_label=False)
    assert ds.labels is None
    assert ds.features.shape == (2, 2)


def test_gzip_compressed_csv(tmp_path):
    path = tmp_path / "train.csv.gz"
    path.write_bytes(gzip.compress(b"1,2,3\n0,4,5\n"))
    ds = data.load_files(tmp_path, "text/csv")
    np.testing.assert_array_equal(ds.features, [[2, 3], [4, 5]])


def test_libsvm_weights_qid_comments_and_column_numbers():
    text = b"# header comment\n1:2 qid:3 0:1.5 4:2\n0 2:-1 # trailing\n\n"
    ds = data.parse_libsvm(text)
    np.testing.assert_array_equal(ds.labels, [1, 0])
    np.testing.assert_array_equal(ds.weights, [2, 1])
    assert ds.features.shape == (2, 5)  # indices are column numbers: 0..4
    np.testing.assert_array_equal(ds.features.toarray(), [[1.5, 0, 0, 0, 2], [0, 0, -1, 0, 0]])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"1 3\n", "line 1: '3' is not index:value"),
        (b"1 0:1\nx 1:1\n", "line 2"),
        (b"1 -1:2\n", "negative feature index"),
    ],
)
def test_bad_libsvm_names_the_line(text, message):
    with pytest.raises(data.DataError, match=message):
        data.parse_libsvm(text, name="train.libsvm")


def test_sparse_data_widens_but_dense_data_must_match():
    sparse = data.parse_libsvm(b"1 0:1\n")
    assert sparse.with_width(4).features.shape == (1, 4)
    dense = data.parse_csv(b"1,2,3\n")
    with pytest.raises(data.DataError, match="has 2 features, expected 4"):
        dense.with_width(4)


def test_recordio_protobuf_dense_and_sparse_decode_alike():
    X = np.array([[1.0, 0.0, 3.0], [0.0, 5.0, 6.0]], dtype=np.float32)
    y = np.array([1.0, 0.0], dtype=np.float32)
    dense = data.parse(recordio_protobuf_bytes(X, y), None)
    sparse = data.parse(recordio_protobuf_bytes(X, y, sparse=True), None)
    np.testing.assert_array_equal(dense.features, X)
    np.testing.assert_array_equal(sparse.features.toarray(), X)
    np.testing.assert_array_equal(dense.labels, y)
    np.testing.assert_array_equal(sparse.labels, y)


def test_files_mixing_dense_widths_are_rejected(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"1,2,3\n")
    (tmp_path / "b.csv").write_bytes(b"1,2\n")
    with pytest.raises(data.DataError, match=r"different numbers of columns \[1, 2\]"):
        data.load_files(tmp_path, "text/csv")

"""Response formatting: the vectorised number writer is byte-identical to ``%.9g``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlstack_containers.serving import codecs

SPECIAL = [0.0, -0.0, 1, 10, 100, 1e6, 1e9, 1e-5, 1e-4, 123456789, 0.5, 99999.9999, 3.4e38]


@pytest.mark.parametrize("seed", [0, 1])
def test_format_joined_matches_percent_g_over_every_magnitude(seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [
            rng.random(5000),
            -rng.random(500) * 1e6,
            rng.random(500) * 1e-7,
            10.0 ** rng.uniform(-38, 38, 5000) * rng.choice([-1, 1], 5000),
            SPECIAL,
        ]
    ).astype(np.float32)
    want = b"\n".join(b"%.9g" % v for v in values.astype(np.float64).tolist())
    assert codecs.format_joined(values, b"\n") == want


def test_format_joined_round_trips_float32_and_handles_non_finite():
    values = np.array([0.1, 1 / 3, np.nan, np.inf, -np.inf], dtype=np.float32)
    text = codecs.format_joined(values, b",")
    assert text == b"0.100000001,0.333333343,nan,inf,-inf"
    np.testing.assert_array_equal(np.array(text.split(b","), dtype=np.float32), values)


def test_csv_rows_of_class_probabilities():
    probs = np.array([[0.25, 0.75], [1.0, 0.0]], dtype=np.float32)
    assert codecs.format_response(probs, codecs.CSV, batch=False) == b"0.25,0.75\n1,0"


def _percent_g(values, sep: bytes) -> bytes:
    return sep.join(b"%.9g" % v for v in np.asarray(values, np.float64).ravel().tolist())


EDGES = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-45, 1e-40, -1e-38, 3.4e38, -3.4e38]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("distinct", [1, 2, 219, 3000, 20_000])
def test_few_distinct_values_path_matches_percent_g(dtype, distinct):
    # A tree ensemble's predictions repeat: each distinct value is formatted once.
    rng = np.random.default_rng(distinct)
    pool = np.concatenate([EDGES, rng.random(distinct)])[:distinct].astype(dtype)
    values = rng.choice(pool, 100_000)
    for sep in (b"\n", b","):
        assert codecs.format_joined(values, sep) == _percent_g(values, sep)


def test_distinct_path_keeps_negative_zero_and_every_nan():
    values = np.array([0.0, -0.0, np.nan, -np.nan, 1.0] * 100, dtype=np.float32)
    text = codecs.format_joined(values, b"\n")
    assert text.split(b"\n")[:5] == [b"0", b"-0", b"nan", b"nan", b"1"]
    assert text == _percent_g(values, b"\n")


def test_distinct_index_falls_back_to_binary_search():
    rng = np.random.default_rng(5)
    distinct = np.unique(rng.integers(0, 2**32, 5000, dtype=np.uint64).astype(np.uint32))
    bits = rng.choice(distinct, 50_000)
    np.testing.assert_array_equal(
        codecs._distinct_index(distinct, bits), np.searchsorted(distinct, bits)
    )


@pytest.mark.parametrize("n", [0, 1, 5, 31, 32, 33, 1000])
def test_every_size_and_per_value_separators(n):
    rng = np.random.default_rng(n)
    values = np.concatenate([rng.random(n // 2), 10.0 ** rng.uniform(-30, 30, n - n // 2)])
    values = values.astype(np.float32)
    assert codecs.format_joined(values, b",") == _percent_g(values, b",")
    seps = rng.choice(np.frombuffer(b",\n", np.uint8), n)
    want = b"".join(
        b"%.9g" % v + bytes([c]) for v, c in zip(values.tolist(), seps.tolist(), strict=True)
    )
    assert codecs.format_joined(values, seps) == want[:-1]


def test_csv_text_round_trips_float32_exactly():
    rng = np.random.default_rng(9)
    values = np.concatenate(
        [
            rng.random(50_000),
            rng.choice(rng.random(100), 50_000),
            10.0 ** rng.uniform(-44, 38, 5000),
        ]
    ).astype(np.float32)
    text = codecs.format_joined(values, b"\n")
    np.testing.assert_array_equal(
        np.array(text.split(b"\n"), dtype=np.float64).astype(np.float32), values
    )


FLOAT32S = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)


def _csv_reference(predictions: np.ndarray, batch: bool) -> bytes:
    """The CSV response as the plain Python formatting the writer must equal byte for byte:
    ``%.9g`` of each float32 (as a float64), a line per row, commas within a row (and for
    realtime single predictions)."""
    rows = np.asarray(predictions, np.float32)
    if rows.ndim == 1:
        return (b"\n" if batch else b",").join(b"%.9g" % v for v in rows.astype(float).tolist())
    return b"\n".join(b",".join(b"%.9g" % v for v in row) for row in rows.astype(float).tolist())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pool=st.lists(FLOAT32S, min_size=1, max_size=40),
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(0, 3000),
    columns=st.sampled_from([None, 1, 3]),
    batch=st.booleans(),
)
def test_csv_responses_equal_percent_g_byte_for_byte(pool, seed, rows, columns, batch):
    """Every path of the writer (a few values, few distinct values, many) against ``%.9g``:
    values drawn from a small pool of any float32 (NaN, infinities, -0.0, subnormals) repeat
    as a tree ensemble's predictions do; mixed with fresh values, most of them differ."""
    rng = np.random.default_rng(seed)
    values = rng.choice(np.array(pool, np.float32), rows)
    if seed % 3 == 0:  # many distinct values: the byte-matrix path
        values = np.where(rng.random(rows) < 0.5, values, rng.standard_normal(rows) * 1e3)
    values = values.astype(np.float32)
    if columns is not None:
        values = values[: rows // columns * columns].reshape(-1, columns)
    text = codecs.format_response(values, codecs.CSV, batch=batch)
    assert text == _csv_reference(values, batch)
    if values.size:  # and the text reads back to the same float32 bits (NaN as NaN)
        back = np.array(text.replace(b"\n", b",").split(b","), np.float64).astype(np.float32)
        np.testing.assert_array_equal(back, values.ravel())

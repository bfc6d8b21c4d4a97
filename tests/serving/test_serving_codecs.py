"""Response formatting: the vectorised number writer is byte-identical to ``%.9g``."""

from __future__ import annotations

import numpy as np
import pytest
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

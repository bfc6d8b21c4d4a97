"""Raw records in-process. The CSV reader: pandas' fast path (bodies from 8 KiB) reads exactly
what the reference reader (Python's ``csv`` + ``float``) reads, or declines; generated rows.
The answer settings are checked at start."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlstack_containers.schema import Schema
from mlstack_containers.serving.answers import Answers
from mlstack_containers.serving.config import ConfigError, ServerConfig
from mlstack_containers.serving.records import PANDAS_MIN_BYTES, RecordCodec

SCHEMA = Schema.from_json(
    json.dumps(
        {
            "schema_version": 1,
            "problem_type": "multiclass",
            "label": {"name": "species", "type": "categorical", "classes": ["A", "B", "C"]},
            "features": [
                {"name": "island", "type": "categorical", "categories": ["Biscoe", "Dream"]},
                {"name": "bill_length_mm", "type": "numeric"},
                {"name": "sex", "type": "categorical", "categories": ["NA", "female", "male"]},
                {"name": "year", "type": "numeric"},
            ],
            "rows": {"train": 3, "validation": 0, "test": 0},
        }
    )
)
CODEC = RecordCodec(SCHEMA)

categories = st.sampled_from(["Biscoe", "Dream", "NA", "female", "male", "", "Atlantis", "x y"])
numbers = st.one_of(
    st.just(""),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: f"{v:.6g}"),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "1_0", " 5", "5 ", "x", "0x10", "1e"]),
)
rows = st.lists(st.tuples(categories, numbers, categories, numbers), min_size=1, max_size=30)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, crlf=st.booleans())
def test_the_pandas_path_reads_what_the_reference_reads_or_declines(rows, crlf):
    line = "\r\n" if crlf else "\n"
    text = line.join(",".join(r) for r in rows)
    body = text.encode()
    repeat = -(-PANDAS_MIN_BYTES // len(body)) + 1
    body = line.encode().join([body] * repeat)
    assert len(body) >= PANDAS_MIN_BYTES
    fast = CODEC._parse_csv_pandas(body)
    try:
        reference = CODEC._parse_csv_reference(body)
    except Exception as exc:  # a ClientError: the fast path must have declined
        assert fast is None, f"pandas read what the reference refuses ({exc})"
        return
    if fast is not None:
        assert same(fast, reference), (fast[:3], reference[:3])


def test_a_plain_batch_takes_the_pandas_path():
    body = b"\n".join([b"Biscoe,45.1,male,2008", b"Dream,,NA,2009", b"Atlantis,40,,2007"] * 500)
    fast = CODEC._parse_csv_pandas(body)
    assert fast is not None
    assert same(fast, CODEC._parse_csv_reference(body))
    # island Atlantis is unknown, sex "NA" is a category here (not pandas' missing marker).
    np.testing.assert_array_equal(fast[1], np.array([1, np.nan, 0, 2009], np.float32))
    assert np.isnan(fast[2, 0]) and np.isnan(fast[2, 2])


def test_sagemaker_inference_output_is_checked_at_start():
    # Autopilot's form ("predicted_label, probability": spaces and case ignored) is read.
    config = ServerConfig.from_env({"SAGEMAKER_INFERENCE_OUTPUT": "Predicted_Label, probability"})
    assert config.inference_output == ("predicted_label", "probability")
    with pytest.raises(ConfigError, match="SAGEMAKER_INFERENCE_OUTPUT: unknown output key 'lable'"):
        ServerConfig.from_env({"SAGEMAKER_INFERENCE_OUTPUT": "lable"})
    with pytest.raises(ConfigError, match="MLSTACK_UNKNOWN_FIELDS='drop' is not one of"):
        ServerConfig.from_env({"MLSTACK_UNKNOWN_FIELDS": "drop"})
    with pytest.raises(ValueError, match="score is not an answer of a multiclass model"):
        Answers(SCHEMA, "multi:softprob", ("score",))

"""Generated hostile raw records against the real ``serve`` of a model with ``schema.json``:
hostile field names, huge strings and numbers, deep nesting, NaN/Infinity, duplicate keys,
wrong types, in JSON, JSON Lines and CSV. The property: a 200 with one answer per record, or a
400 that says which record or what is wrong; never a 5xx, a dropped connection or a dead worker.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import start_serve, stop_serve
from tests.serving.penguins import build
from tests.serving.test_serving_hostile import booted_workers, worker_pids

FEATURES = [
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# What a 400 for a raw request says: the record (or line) and field, or what the body lacks.
NAMED = (
    "record ",
    "invalid JSON",
    "nested too deeply",
    "the request holds no records",
    "empty request body",
    "header row",
    "invalid CSV",
    "JSON request must be",
    '"instances" must be',
    "each record must have",
    "records must be",
    "JSON record object",
    "a number in the records is too large",
    "not UTF-8",
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    base = tmp_path_factory.mktemp("penguins-fuzz")
    model = build(base, "species", "multiclass", "multi:softprob")
    server = start_serve(
        base, model.booster, SAGEMAKER_MODEL_SERVER_WORKERS="2", MLSTACK_ACCESS_LOG="false"
    )
    workers = booted_workers(server.proc.pid)
    yield server
    try:
        assert worker_pids(server.proc.pid) == workers, server.log_text()[-4000:]
        assert server.request("GET", "/ping").status == 200
        assert "Traceback" not in server.log_text(), server.log_text()[-4000:]
    finally:
        stop_serve(server)


hostile_names = st.one_of(
    st.sampled_from([*FEATURES, "species", "", " island", "ISLAND", "__proto__", "\u0000"]),
    st.text(max_size=40),
    st.text(alphabet="\"',\n\r\\{}[]:", max_size=12),
    st.just("n" * 100_000),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),  # beyond float64 from ~1.8e308
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["Biscoe", "Dream", "Torgersen", "male", "female", "NA", "", "nan"]),
    st.text(max_size=30),
    st.just("s" * 200_000),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
records = st.dictionaries(hostile_names, values, max_size=8)


def _check(server, body: bytes, content_type: str, records_sent: int | None) -> None:
    resp = server.invoke(body, content_type, "application/jsonlines", timeout=30)
    assert resp.status < 500, resp.text
    if resp.status == 200:
        if records_sent is not None:
            assert len(resp.body.split(b"\n")) == records_sent, resp.text[:500]
    else:
        assert resp.status in (400, 413), resp.text
        assert any(phrase in resp.text for phrase in NAMED), resp.text[:500]


@FUZZ
@given(rows=st.lists(records, min_size=1, max_size=5), bare=st.booleans())
def test_json_raw_records_are_answered_or_a_400_naming_the_record(fuzzed, rows, bare):
    document = rows[0] if bare and rows[0] else {"instances": rows}
    body = json.dumps(document).encode()  # NaN and Infinity as Python's json writes them
    _check(fuzzed, body, "application/json", None)


@FUZZ
@given(rows=st.lists(records.filter(bool), min_size=1, max_size=5))
def test_json_lines_raw_records_are_answered_or_a_400(fuzzed, rows):
    body = "\n".join(json.dumps(r) for r in rows).encode()
    _check(fuzzed, body, "application/jsonlines", len(rows))


@FUZZ
@given(
    key=st.sampled_from(FEATURES),
    first=scalars,
    second=scalars,
    depth=st.integers(min_value=1, max_value=200_000),
)
def test_duplicate_keys_and_deep_nesting_are_a_400(fuzzed, key, first, second, depth):
    duplicate = f'{{"{key}": {json.dumps(first)}, "{key}": {json.dumps(second)}}}'.encode()
    resp = fuzzed.invoke(duplicate, "application/json")
    assert resp.status == 400, resp.text
    assert f"record 0: field '{key}' appears more than once" in resp.text
    nested = b'{"island": ' + b"[" * depth + b"]" * depth + b"}"
    resp = fuzzed.invoke(nested, "application/json")
    assert resp.status == 400, resp.text
    assert "record 0: field 'island'" in resp.text or "nested too deeply" in resp.text


csv_fields = st.one_of(
    st.sampled_from(["Biscoe", "Dream", "male", "", "nan", "inf", "-1e400", "45.1", "1_0"]),
    st.text(max_size=20),
    st.text(alphabet='",\r\n x', max_size=8),
    st.just("q" * 50_000),
)


@FUZZ
@given(
    rows=st.lists(st.lists(csv_fields, min_size=1, max_size=9), min_size=1, max_size=6),
    header=st.booleans(),
    crlf=st.booleans(),
)
def test_csv_raw_rows_are_answered_or_a_400(fuzzed, rows, header, crlf):
    lines = [",".join(r) for r in rows]
    if header:
        lines.insert(0, ",".join(FEATURES))
    body = ("\r\n" if crlf else "\n").join(lines).encode()
    _check(fuzzed, body, "text/csv", None)

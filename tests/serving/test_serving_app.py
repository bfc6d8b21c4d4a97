"""Predictor: the dense fast path gives exactly what ``Booster.inplace_predict`` gives."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import xgboost as xgb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlstack_containers.serving import app as app_module
from mlstack_containers.serving import codecs
from mlstack_containers.serving.app import Predictor

from tests.serving.conftest import reference_data


def _booster(params: dict, rounds: int = 6) -> xgb.Booster:
    features, labels = reference_data(800, seed=11)
    if params.get("num_class"):
        labels = labels + (features[:, 0] > 50)
    return xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=rounds)


MODELS = {
    "logistic": {"objective": "reg:logistic", "max_depth": 4},
    "softprob": {"objective": "multi:softprob", "num_class": 3, "max_depth": 3},
    "softmax": {"objective": "multi:softmax", "num_class": 3, "max_depth": 3},
}


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("rows", [0, 1, 7, 5000])
@pytest.mark.parametrize("iteration_range", [(0, 0), (0, 3)])
def test_dense_fast_path_equals_inplace_predict(model, rows, iteration_range):
    booster = _booster(MODELS[model])
    predictor = Predictor(booster, 2, iteration_range)
    rng = np.random.default_rng(rows)
    features = rng.uniform(-10, 110, size=(rows, 2)).astype(np.float32)
    features[rng.random(features.shape) < 0.1] = np.nan  # missing values
    want = booster.inplace_predict(features, iteration_range=iteration_range)
    got = predictor.predict(features)
    assert got.dtype == np.float32
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_fast_path_result_is_a_copy_not_xgboosts_buffer():
    predictor = Predictor(_booster(MODELS["logistic"]), 2)
    first = predictor.predict(np.array([[10, 90]], np.float32))
    kept = first.copy()
    predictor.predict(np.array([[90, 10]], np.float32))
    np.testing.assert_array_equal(first, kept)


def test_other_inputs_take_the_public_api(monkeypatch):
    booster = _booster(MODELS["logistic"])
    predictor = Predictor(booster, 2)
    features = np.array([[10, 90], [30, 40], [50, 60]], np.float64)
    calls = []
    monkeypatch.setattr(
        predictor, "_predict_dense", lambda x: calls.append(x) or pytest.fail("fast path")
    )
    strided = np.asfortranarray(features.astype(np.float32))
    for x in (features, strided):
        np.testing.assert_array_equal(predictor.predict(x), booster.inplace_predict(x))
    assert not calls
    assert app_module._XGB_PREDICT_DENSE is not None  # the pinned XGBoost has the C entry point


# -- many rows of one or two features: each distinct row predicted once -----------------------

# Values XGBoost splits on differently or that share a text but not their bits: NaN (two
# payloads: both missing), -0.0 and 0.0, infinities, the float32 extremes, subnormals.
_EDGE = [np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf, 3.4028235e38, -3.4028235e38, 1e-45]
_POOL = st.lists(
    st.one_of(st.sampled_from(_EDGE), st.floats(-200, 200, width=32)), min_size=1, max_size=40
)


@contextlib.contextmanager
def _distinct_from(rows: int):
    """The distinct-row path for matrices from ``rows`` rows (a sample of 64 rows)."""
    saved = app_module.DISTINCT_MIN_ROWS, app_module._SAMPLE_ROWS
    app_module.DISTINCT_MIN_ROWS, app_module._SAMPLE_ROWS = rows, 64
    try:
        yield
    finally:
        app_module.DISTINCT_MIN_ROWS, app_module._SAMPLE_ROWS = saved


def _one_feature_booster() -> xgb.Booster:
    features, labels = reference_data(800, seed=3)
    return xgb.train(
        {"objective": "reg:squarederror", "max_depth": 4}, xgb.DMatrix(features[:, :1], labels), 6
    )


_BOOSTERS = {
    "logistic": _booster(MODELS["logistic"]),
    "softprob": _booster(MODELS["softprob"]),
    "one feature": _one_feature_booster(),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(sorted(_BOOSTERS)),
    pool=_POOL,
    rows=st.integers(1, 3000),
    seed=st.integers(0, 2**32 - 1),
)
def test_distinct_row_prediction_equals_xgboosts_own(model, pool, rows, seed):
    """Any matrix of repeated rows (hypothesis: values from a small pool, edge values among
    them): the same float32 bits as ``Booster.inplace_predict`` on every row, XGBoost's own."""
    booster = _BOOSTERS[model]
    width = booster.num_features()
    rng = np.random.default_rng(seed)
    features = np.asarray(pool, np.float32)[rng.integers(0, len(pool), (rows, width))]
    predictor = Predictor(booster, width)
    with _distinct_from(1):
        got = predictor.predict(features)
    want = booster.inplace_predict(features)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def test_repeated_rows_are_predicted_once_each(monkeypatch):
    booster = _BOOSTERS["logistic"]
    features, _ = reference_data(200_000, seed=5)  # at most 101 x 101 distinct rows
    predictor = Predictor(booster, 2)
    predicted = []
    dense = predictor._predict_dense
    monkeypatch.setattr(predictor, "_predict_dense", lambda x: predicted.append(len(x)) or dense(x))
    got = predictor.predict(features)
    assert predicted == [len(np.unique(features, axis=0))]  # 10,201 or a few fewer
    assert got.tobytes() == booster.inplace_predict(features).tobytes()


@pytest.mark.parametrize(
    ("case", "rounds"),
    [("rows that seldom repeat", 6), ("a one-round model", 1), ("three features", 6)],
)
def test_rows_are_predicted_as_they_are_where_finding_the_distinct_ones_costs_more(
    monkeypatch, case, rounds
):
    rng = np.random.default_rng(7)
    width = 3 if case == "three features" else 2
    if case == "rows that seldom repeat":
        features = rng.uniform(0, 100, (100_000, width)).astype(np.float32)
    else:
        features = rng.integers(0, 5, (100_000, width)).astype(np.float32)
    labels = (features[:, 0] > 2).astype(np.float32)
    booster = xgb.train({"objective": "reg:logistic"}, xgb.DMatrix(features, labels), rounds)
    predictor = Predictor(booster, width)
    predicted = []
    dense = predictor._predict_dense
    monkeypatch.setattr(predictor, "_predict_dense", lambda x: predicted.append(len(x)) or dense(x))
    got = predictor.predict(features)
    assert predicted == [len(features)]
    assert got.tobytes() == booster.inplace_predict(features).tobytes()


# -- large CSV bodies: parsed, predicted and written piece by piece -----------------------------


def _app(booster: xgb.Booster, batch: bool) -> app_module.InferenceApp:
    from mlstack_containers.serving.config import ServerConfig

    return app_module.InferenceApp(Predictor(booster, 2), ServerConfig(batch=batch))


def _invoke(app, body: bytes, accept: str = "text/csv") -> tuple[str, bytes]:
    import io

    seen = {}
    environ = {
        "PATH_INFO": "/invocations",
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "text/csv",
        "HTTP_ACCEPT": accept,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    parts = app(environ, lambda status, headers: seen.update(status=status, headers=headers))
    out = b"".join(parts)
    assert dict(seen["headers"])["Content-Length"] == str(len(out))
    return seen["status"], out


def _large_csv(rows: int, seed: int = 0) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(seed)
    features = rng.integers(0, 101, size=(rows, 2)).astype(np.float32)
    return features, "\n".join(f"{a:.0f},{b:.0f}" for a, b in features.tolist()).encode()


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(app_module, "PIECE_BYTES", 4096)  # many pieces from a small body


@pytest.mark.parametrize("model", ["logistic", "softprob"])
@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize(
    "accept",
    ["text/csv", "application/json", "application/jsonlines", "application/x-recordio-protobuf"],
)
def test_pipelined_csv_answers_exactly_as_the_whole_body(small_pieces, model, batch, accept):
    booster = _booster(MODELS[model])
    app = _app(booster, batch)
    features, body = _large_csv(20_000)
    body = body + b"\n\n"  # trailing blank lines: a piece may hold nothing
    status, got = _invoke(app, body, accept)
    assert status == "200 OK", got[:300]
    want = codecs.format_response(booster.inplace_predict(features), accept, batch=batch)
    assert got == want


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [(b"1,2,3", "number of columns changed from 2 to 3 at row"), (b"1,x", "invalid CSV")],
)
def test_error_in_a_late_piece_is_the_whole_body_error(small_pieces, bad_line, message):
    app = _app(_booster(MODELS["logistic"]), True)
    _, body = _large_csv(20_000)
    lines = body.split(b"\n")
    lines[-10] = bad_line
    bad = b"\n".join(lines)
    status, got = _invoke(app, bad)
    assert status.startswith("400"), got[:300]
    assert message in got.decode()
    with pytest.raises(codecs.ClientError) as whole:
        codecs.parse_request(bad, codecs.CSV, 2)
    assert got.decode() == whole.value.message  # same text, e.g. the same line number


def test_line_pieces_keep_whole_lines():
    body = b"1,2\n3,4\n55,66\n7,8"
    for size in (1, 3, 5, 100):
        pieces = app_module._line_pieces(body, size)
        assert b"".join(pieces) == body
        assert all(p.endswith(b"\n") for p in pieces[:-1])


def test_wrong_width_in_pieces_is_the_whole_body_error(small_pieces):
    app = _app(_booster(MODELS["logistic"]), True)
    body = b"\n".join([b"1,2,3"] * 5000)
    status, got = _invoke(app, body)
    assert status.startswith("400")
    assert got == b"each record must have 2 features, the request has 3"


class ScriptedCpus:
    """A :class:`~app_module.SpareCpus` answering ``spare()`` from a script (then its last)."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers, self.asked, self.held, self.entered = answers, 0, 0, 0

    @contextlib.contextmanager
    def running(self):
        self.held += 1
        self.entered += 1
        try:
            yield
        finally:
            self.held -= 1

    def spare(self) -> bool:
        assert self.held == 1, "asked outside the large request"
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return answer


@pytest.mark.parametrize(
    ("answers", "parsed"),
    [
        ([True], "every piece"),
        ([False], "the whole body"),
        ([True, True, False], "two pieces, then the rest"),
    ],
)
@pytest.mark.parametrize("accept", ["text/csv", "application/json"])
def test_a_large_body_is_parsed_in_pieces_only_while_a_cpu_is_spare(
    small_pieces, monkeypatch, answers, parsed, accept
):
    """Pieces only while the server says a CPU is spare; once the other CPUs are busy, the rest
    of the body is parsed in one call (and a body that starts then, whole). Same answer,
    XGBoost's own predictions."""
    booster = _BOOSTERS["logistic"]
    app = _app(booster, True)
    app.cpus = cpus = ScriptedCpus(answers)
    features, body = _large_csv(20_000)
    calls = []
    parse_csv = codecs.parse_csv
    monkeypatch.setattr(codecs, "parse_csv", lambda b: calls.append(b) or parse_csv(b))
    status, got = _invoke(app, body, accept)
    assert status == "200 OK", got[:300]
    assert got == codecs.format_response(booster.inplace_predict(features), accept, batch=True)
    assert b"".join(calls) == body  # every line parsed once
    pieces = app_module._line_pieces(body, app_module.PIECE_BYTES)
    want = {
        "every piece": pieces,
        "the whole body": [body],
        "two pieces, then the rest": [*pieces[:2], b"".join(pieces[2:])],
    }[parsed]
    assert calls == want
    assert (cpus.entered, cpus.held) == (1, 0)


@pytest.mark.parametrize(("rows", "counted"), [(20_000, True), (500, False)])
def test_a_large_body_counts_as_a_large_request_while_it_is_read(small_pieces, rows, counted):
    """A body announced large enough for pieces counts against the CPUs from its first byte:
    while this worker reads it, another worker must not take this CPU for a spare one. A body
    under the size is read without counting."""
    app = _app(_BOOSTERS["logistic"], True)
    app.cpus = cpus = ScriptedCpus([False])
    _, body = _large_csv(rows)
    assert (len(body) >= 2 * app_module.PIECE_BYTES) == counted
    held_while_read = []

    class Input(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            held_while_read.append(cpus.held)
            return super().read(size)

    environ = {
        "PATH_INFO": "/invocations",
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "text/csv",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": Input(body),
    }
    assert b"".join(app(environ, lambda status, headers: None))
    assert held_while_read == [int(counted)]
    assert (cpus.entered, cpus.held) == (int(counted), 0)


def test_a_small_body_does_not_count_as_a_large_request():
    app = _app(_BOOSTERS["logistic"], True)
    app.cpus = cpus = ScriptedCpus([True])
    status, _ = _invoke(app, b"1,2\n3,4")
    assert status == "200 OK"
    assert (cpus.entered, cpus.asked) == (0, 0)

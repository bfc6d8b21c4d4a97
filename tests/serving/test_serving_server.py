"""The real ``serve`` process over real HTTP: formats, status codes, logging, concurrency."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import xgboost as xgb
from mlstack_containers import recordio

from tests.serving.conftest import (
    SERVE,
    expected,
    free_port,
    reference_data,
    start_serve,
    stop_serve,
)

ROWS, _ = reference_data(7, seed=1)
CSV_BODY = "\n".join(",".join(str(int(v)) for v in row) for row in ROWS).encode()


def csv_scores(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.strip().split(",")], dtype=np.float32)


def assert_close(got, want) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float32), want, rtol=1e-6, atol=1e-7)


# -- health and parameters --------------------------------------------------------------------


def test_ping_is_ok_and_fast(server):
    started = time.monotonic()
    resp = server.request("GET", "/ping")
    assert resp.status == 200
    assert time.monotonic() - started < 2


def test_execution_parameters_for_batch_transform(server):
    resp = server.request("GET", "/execution-parameters")
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    assert json.loads(resp.body) == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


# -- request content types --------------------------------------------------------------------


def test_csv_realtime_answer_is_one_comma_separated_line(server):
    resp = server.invoke(CSV_BODY, "text/csv")
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/csv"
    assert "\n" not in resp.text
    assert_close(csv_scores(resp.text), expected(server, ROWS))


def test_csv_with_crlf_charset_parameter_and_missing_value(server):
    body = b"1,50\r\n,20\r\n"
    resp = server.invoke(body, "text/csv; charset=utf-8")
    assert resp.status == 200, resp.text
    want = expected(server, np.array([[1, 50], [np.nan, 20]], dtype=np.float32))
    assert_close(csv_scores(resp.text), want)


@pytest.mark.parametrize(
    "payload",
    [
        {"instances": ROWS.tolist()},
        {"instances": [{"features": row} for row in ROWS.tolist()]},
        ROWS.tolist(),
    ],
    ids=["instances", "instances-features", "bare-list"],
)
def test_json_request_shapes(server, payload):
    resp = server.invoke(json.dumps(payload).encode(), "application/json", "application/json")
    assert resp.status == 200, resp.text
    got = [p["score"] for p in json.loads(resp.body)["predictions"]]
    assert_close(got, expected(server, ROWS))


def test_json_single_record(server):
    resp = server.invoke(b'{"features": [10, 90]}', "application/json", "text/csv")
    assert resp.status == 200, resp.text
    assert_close(csv_scores(resp.text), expected(server, np.array([[10, 90]], np.float32)))


def test_jsonlines_request_arrays_and_objects(server):
    lines = [
        json.dumps(r) if i % 2 else json.dumps({"features": r}) for i, r in enumerate(ROWS.tolist())
    ]
    resp = server.invoke("\n".join(lines).encode() + b"\n", "application/jsonlines", "text/csv")
    assert resp.status == 200, resp.text
    assert_close(csv_scores(resp.text), expected(server, ROWS))


@pytest.mark.parametrize("content_type", ["text/libsvm", "text/x-libsvm"])
def test_libsvm_request_with_and_without_labels(server, content_type):
    body = b"1 0:10 1:90\n0:30\n1:70 # only y\n"
    resp = server.invoke(body, content_type, "text/csv")
    assert resp.status == 200, resp.text
    want_rows = np.array([[10, 90], [30, np.nan], [np.nan, 70]], dtype=np.float32)
    assert_close(csv_scores(resp.text), expected(server, want_rows))


def test_recordio_protobuf_request_dense_and_sparse_as_sagemaker_spark_sends(server):
    dense = recordio.encode_record(ROWS[0])
    sparse = recordio.encode_record(
        recordio.Tensor(np.array([60.0], np.float32), np.array([1], np.uint64), (2,))
    )
    body = recordio.write_records([dense, sparse])
    resp = server.invoke(body, "application/x-recordio-protobuf", "text/csv")
    assert resp.status == 200, resp.text
    # XGBoost reads an absent sparse entry as a missing value, in training and here alike.
    want = expected(server, np.array([ROWS[0], [np.nan, 60]], dtype=np.float32))
    assert_close(csv_scores(resp.text), want)


# -- response types ---------------------------------------------------------------------------


def test_jsonlines_response(server):
    resp = server.invoke(CSV_BODY, "text/csv", "application/jsonlines")
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/jsonlines"
    got = [json.loads(line)["score"] for line in resp.text.splitlines()]
    assert_close(got, expected(server, ROWS))


def test_recordio_protobuf_response_has_score_label_per_row(server):
    resp = server.invoke(CSV_BODY, "text/csv", "application/x-recordio-protobuf")
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/x-recordio-protobuf"
    records = [recordio.decode_record(p) for p in recordio.read_records(resp.body)]
    assert len(records) == len(ROWS)
    got = [r.labels["score"].values[0] for r in records]
    assert_close(got, expected(server, ROWS))


@pytest.mark.parametrize("accept", [None, "*/*", "text/html, text/csv;q=0.9"])
def test_default_and_negotiated_accept_give_csv(server, accept):
    resp = server.invoke(CSV_BODY, "text/csv", accept)
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/csv"


def test_custom_attributes_are_passed_through(server):
    attrs = "trace=abc-123,mode=shadow"
    resp = server.invoke(
        CSV_BODY, "text/csv", headers={"X-Amzn-SageMaker-Custom-Attributes": attrs}
    )
    assert resp.status == 200
    assert resp.headers["x-amzn-sagemaker-custom-attributes"] == attrs


# -- client mistakes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        (CSV_BODY, "image/png", None, 415, "unsupported Content-Type 'image/png'"),
        (CSV_BODY, "text/csv", "application/xml", 406, "unsupported Accept 'application/xml'"),
        (b"1,2,3\n4,5,6", "text/csv", None, 400, "must have 2 features, the request has 3"),
        (b"x,y\n1,2", "text/csv", None, 400, "invalid CSV"),
        (b"1,2\n3", "text/csv", None, 400, "invalid CSV"),
        (b"", "text/csv", None, 400, "empty request body"),
        (b"{not json", "application/json", None, 400, "invalid JSON"),
        (b'{"rows": []}', "application/json", None, 400, '"instances"'),
        (b"[[1, 2], [3]]", "application/json", None, 400, "lists of numbers of one length"),
        (b"[1, 2]\n[oops", "application/jsonlines", None, 400, "invalid JSON on line 2"),
        (b"0:1 5:2", "text/libsvm", None, 400, "feature index 5 is out of range"),
        (b"0:1 a:b", "text/libsvm", None, 400, "'a:b' is not index:value"),
        (
            b"\x00\x01\x02\x03garbage!",
            "application/x-recordio-protobuf",
            None,
            400,
            "bad RecordIO magic",
        ),
    ],
)
def test_client_mistakes_get_4xx_with_a_message(
    server, body, content_type, accept, status, message
):
    resp = server.invoke(body, content_type, accept)
    assert resp.status == status
    assert message in resp.text


def test_payload_over_the_limit_is_413(server):
    body = b"1,2\n" * (6 * 1024 * 1024 // 4 + 1)
    resp = server.invoke(body, "text/csv")
    assert resp.status == 413
    assert "exceeds the limit of 6 MB" in resp.text


def test_chunked_payload_over_the_limit_is_413(server):
    chunk = b"1,2\n" * 65536
    resp = server.request(
        "POST",
        "/invocations",
        iter([chunk] * 26),  # 6.5 MiB without a Content-Length
        {"Content-Type": "text/csv"},
        chunked=True,
    )
    assert resp.status == 413
    assert "more than 6291456 bytes" in resp.text


def test_unknown_path_and_wrong_method(server):
    assert server.request("GET", "/nope").status == 404
    resp = server.request("GET", "/invocations")
    assert resp.status == 405
    assert "use POST" in resp.text


def test_malformed_burst_kills_no_worker(server):
    workers_before = _worker_pids(server.proc.pid)
    bad = [
        (b"\xff\xfe\x00garbage", "text/csv"),
        (b"[[[1]]]", "application/json"),
        (b"[" * 100_000, "application/json"),
        (struct.pack("<II", 0xCED7230A, 0xFFFFFF) + b"x", "application/x-recordio-protobuf"),
        (recordio.write_records([b"\x0a\xff\xff\xff\xff\x0f"]), "application/x-recordio-protobuf"),
        (b"1:" + b"9" * 400, "text/libsvm"),
        (b"nan,inf\n1e999,-0", "text/csv"),
    ]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda args: server.invoke(*args), bad * 10))
    assert {r.status for r in results} <= {200, 400}, [(r.status, r.text) for r in results]
    # A raw connection that sends half a request and hangs up.
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nContent-Length: 100\r\n\r\n1,2")
    assert _worker_pids(server.proc.pid) == workers_before
    resp = server.invoke(CSV_BODY, "text/csv")
    assert resp.status == 200
    assert_close(csv_scores(resp.text), expected(server, ROWS))


def _worker_pids(master: int) -> set[int]:
    children = f"/proc/{master}/task/{master}/children"
    with open(children) as fh:
        return {int(p) for p in fh.read().split()}


# -- concurrency and logging ------------------------------------------------------------------


def test_concurrent_requests_all_succeed_with_correct_predictions(server):
    features, _ = reference_data(200, seed=7)
    want = expected(server, features)

    def one(i: int) -> tuple[int, float]:
        body = f"{int(features[i, 0])},{int(features[i, 1])}".encode()
        resp = server.invoke(body, "text/csv")
        return resp.status, float(resp.text)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(200)))
    assert [s for s, _ in results] == [200] * 200
    assert_close([p for _, p in results], want)


def test_ping_is_not_access_logged_but_invocations_are(server):
    for _ in range(5):
        assert server.request("GET", "/ping").status == 200
    server.request("GET", "/execution-parameters")
    deadline = time.monotonic() + 5
    while "GET /execution-parameters" not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log_text()
    assert "GET /execution-parameters" in log
    assert "POST /invocations" in log
    assert "/ping" not in log


# -- other modes and models -------------------------------------------------------------------


def test_batch_mode_answers_one_csv_line_per_record(trained):
    base, booster = trained
    srv = start_serve(base, booster, SAGEMAKER_BATCH="true", SAGEMAKER_MODEL_SERVER_WORKERS="1")
    try:
        resp = srv.invoke(CSV_BODY, "text/csv", "text/csv")
        assert resp.status == 200
        lines = resp.text.split("\n")
        assert len(lines) == len(ROWS)
        assert_close([float(v) for v in lines], expected(srv, ROWS))
        params = json.loads(srv.request("GET", "/execution-parameters").body)
        assert params["MaxConcurrentTransforms"] == 1
    finally:
        stop_serve(srv)


def test_multiclass_model_without_metadata_serves_probability_vectors(tmp_path):
    features, labels = reference_data(600, seed=3)
    classes = labels + (features[:, 0] > 50)  # 0, 1 or 2
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3}
    booster = xgb.train(params, xgb.DMatrix(features, label=classes), num_boost_round=3)
    (tmp_path / "model").mkdir()
    # Only the booster file, as SageMaker's built-in XGBoost leaves it.
    (tmp_path / "model" / "xgboost-model").write_bytes(booster.save_raw("ubj"))
    srv = start_serve(tmp_path, booster, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    try:
        want = expected(srv, ROWS)
        assert want.shape == (len(ROWS), 3)
        csv = srv.invoke(CSV_BODY, "text/csv", "text/csv")
        assert csv.status == 200, csv.text
        assert_close([[float(v) for v in line.split(",")] for line in csv.text.split("\n")], want)
        js = srv.invoke(CSV_BODY, "text/csv", "application/json")
        assert_close([p["score"] for p in json.loads(js.body)["predictions"]], want)
        jl = srv.invoke(CSV_BODY, "text/csv", "application/jsonlines")
        assert_close([json.loads(line)["score"] for line in jl.text.splitlines()], want)
        pb = srv.invoke(CSV_BODY, "text/csv", "application/x-recordio-protobuf")
        records = [recordio.decode_record(p) for p in recordio.read_records(pb.body)]
        assert_close([r.labels["score"].values for r in records], want)
    finally:
        stop_serve(srv)


@pytest.mark.parametrize(
    ("model_file", "message"),
    [
        (None, b"cannot load the model: model directory not found"),
        (b"not a model", b"cannot load the model: "),
    ],
)
def test_unloadable_model_fails_the_start_with_the_reason(tmp_path, model_file, message):
    if model_file is not None:
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "xgboost-model").write_bytes(model_file)
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "SAGEMAKER_BIND_TO_PORT": str(free_port()),
        "MLSTACK_BIND_HOST": "127.0.0.1",
    }
    done = subprocess.run([str(SERVE)], env=env, capture_output=True, timeout=60)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr.decode()


def test_sigterm_drains_in_flight_requests_and_exits(trained):
    base, booster = trained
    srv = start_serve(base, booster, SAGEMAKER_MODEL_SERVER_WORKERS="2")
    features, _ = reference_data(300_000, seed=5)
    body = "\n".join(f"{int(a)},{int(b)}" for a, b in features).encode()
    with ThreadPoolExecutor(2) as pool:
        in_flight = pool.submit(srv.invoke, body, "text/csv")
        time.sleep(0.2)  # the request is being read or parsed
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(30)
        elapsed = time.monotonic() - started
        resp = in_flight.result(timeout=30)
    assert srv.proc.returncode == 0
    assert elapsed < 30
    assert resp.status == 200  # drained, not dropped
    assert len(csv_scores(resp.text)) == len(features)


def test_access_log_line_format(server):
    # h "r" s B Mms: the fields of server.ACCESS_LOG_FORMAT, written without gunicorn's atoms.
    assert server.request("GET", "/execution-parameters?x=1").status == 200
    pattern = re.compile(r'127\.0\.0\.1 "GET /execution-parameters\?x=1 HTTP/1\.1" 200 (\d+) \d+ms')
    deadline = time.monotonic() + 5
    while not pattern.search(server.log_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    match = pattern.search(server.log_text())
    assert match, server.log_text()[-2000:]
    assert int(match.group(1)) == len(server.request("GET", "/execution-parameters").body)


def test_sigterm_drains_a_pipelined_batch_and_the_worker_exits(trained):
    # A CSV body of 2 MiB or more runs through each worker's prediction thread: that thread
    # must neither lose the in-flight answer nor keep the worker from exiting.
    base, booster = trained
    srv = start_serve(base, booster, SAGEMAKER_MODEL_SERVER_WORKERS="1", SAGEMAKER_BATCH="true")
    features, _ = reference_data(600_000, seed=6)
    body = "\n".join(f"{int(a)},{int(b)}" for a, b in features).encode()
    assert len(body) > 2 * 1024 * 1024
    warm = srv.invoke(body, "text/csv")  # the prediction thread now exists
    assert warm.status == 200
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(srv.invoke, body, "text/csv")
        time.sleep(0.2)
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(30)
        elapsed = time.monotonic() - started
        resp = in_flight.result(timeout=30)
    assert srv.proc.returncode == 0
    assert elapsed < 10
    assert resp.status == 200
    assert resp.body == warm.body
    assert_close([float(v) for v in resp.text.split("\n")], expected(srv, features))

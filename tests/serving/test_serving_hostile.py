"""Issue 8's findings, each reproduced against the real ``serve``: crafted bodies and framings
get a 4xx naming the problem, never a 5xx, a dropped connection or a dead worker."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from mlstack_containers import model_io, recordio
from mlstack_containers.serving import codecs

from tests.serving.conftest import free_port, start_serve, stop_serve
from tests.training.test_training_model_permissions import drop_to_image_user, serve_command

RECORDIO = "application/x-recordio-protobuf"
CSV_LINE = b"37,82"
UINT64_MAX = (1 << 64) - 1


def worker_pids(master: int) -> set[int]:
    with open(f"/proc/{master}/task/{master}/children") as fh:
        return {int(p) for p in fh.read().split()}


def booted_workers(master: int, count: int = 2) -> set[int]:
    """The worker PIDs once all ``count`` have started (the first answers /ping before)."""
    deadline = time.monotonic() + 30
    while len(pids := worker_pids(master)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


@pytest.fixture
def pids_unchanged(server):
    """Every test here must leave the same workers alive and /ping answering."""
    before = booted_workers(server.proc.pid)
    yield
    assert server.request("GET", "/ping").status == 200
    assert worker_pids(server.proc.pid) == before, server.log_text()[-3000:]


def read_response(sock: socket.socket, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    resp = http.client.HTTPResponse(sock, method=method)
    resp.begin()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def post_raw(port: int, head: str, body: bytes, *, shut_wr: bool = False, timeout: float = 15):
    """Send ``head`` (request line and headers, no blank line) and ``body`` verbatim."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        if shut_wr:
            sock.shutdown(socket.SHUT_WR)
        return read_response(sock)


def sparse(keys: list[int], values: list[float], shape: tuple[int, ...]) -> bytes:
    tensor = recordio.Tensor(np.asarray(values, np.float32), np.asarray(keys, np.uint64), shape)
    return recordio.encode_record(tensor)


# -- 1. sparse RecordIO keys never reach XGBoost ---------------------------------------------


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([sparse([UINT64_MAX], [1.0], (2,))], f"record 0 has key {UINT64_MAX}"),
        ([sparse([1 << 63], [1.0], (2,))], f"record 0 has key {1 << 63}"),
        ([sparse([UINT64_MAX], [1.0], ())], f"record 0 has key {UINT64_MAX}"),
        ([sparse([0], [1.0], (2,)), sparse([5], [1.0], (2,))], "record 1 has key 5"),
        ([sparse([0], [1.0], (2,)), sparse([1], [1.0], (9,))], "record 1 has 9 features"),
        ([sparse([2], [1.0], ())], "record 0 has 3 features, expected 2"),
    ],
)
def test_out_of_range_sparse_keys_are_a_400_naming_record_and_key(
    server, pids_unchanged, records, message
):
    body = recordio.write_records(records)
    with pytest.raises(codecs.ClientError) as err:
        codecs.parse_request(body, codecs.RECORDIO, 2)
    assert message in err.value.message
    for _ in range(3):  # a corrupted worker would fail the requests after
        resp = server.invoke(body, RECORDIO)
        assert resp.status == 400, resp.text
        assert message in resp.text
    assert server.invoke(CSV_LINE, "text/csv").status == 200


def test_a_shape_whose_product_overflows_int64_is_rejected():
    body = recordio.write_records([sparse([1], [1.0], (1 << 32, 1 << 32))])
    with pytest.raises(codecs.ClientError, match="record 0"):
        codecs.parse_request(body, codecs.RECORDIO, 2)


# -- 2. integers beyond any float ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"instances": [[1' + b"0" * 400 + b", 1]]}", "application/json"),
        (b"[1, 2]\n[-1" + b"0" * 400 + b", 1]", "application/jsonlines"),
        (b'{"features": [1' + b"0" * 400 + b", 1]}", "application/json"),
    ],
)
def test_huge_json_integers_are_a_400(server, pids_unchanged, body, content_type):
    resp = server.invoke(body, content_type)
    assert resp.status == 400, resp.text
    assert "too large" in resp.text
    assert "401 digits" in resp.text or "402 digits" in resp.text


# -- 3. ragged dense RecordIO ------------------------------------------------------------------


def test_dense_records_carrying_more_values_than_their_shape_are_a_400(server, pids_unchanged):
    four = recordio.encode_record(recordio.Tensor(np.ones(2, np.float32), None, (2,)))
    five = recordio.encode_record(recordio.Tensor(np.ones(3, np.float32), None, (2,)))
    resp = server.invoke(recordio.write_records([four, five]), RECORDIO)
    assert resp.status == 400, resp.text
    assert "record 1 has shape [2] (2 values) but carries 3 values" in resp.text


# -- 4. chunked framing ----------------------------------------------------------------------

CHUNKED = "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n" + (
    "Transfer-Encoding: chunked"
)


@pytest.mark.parametrize(
    ("body", "shut_wr", "status"),
    [
        (b"zz\r\n37,82\r\n0\r\n\r\n", False, 400),
        (b"-1\r\n37,82\r\n0\r\n\r\n", False, 400),
        (b"a\r\n37,82\r\n0\r\n\r\n", True, 400),  # 10 bytes announced, 5 + the end sent
        (b"5\r\n37,82\r\n0\r\nTrailer: x\r\n", True, 400),  # trailer section never ends
        (b"5\r\n37,82\r\n0\r\nbad trailer\r\n\r\n", False, 400),
        (b"5\r\n37,82\r\n0\r\nTrailer: x\r\n\r\n", False, 400),  # a forbidden trailer field
        (b"5\r\n37,82XX0\r\n\r\n", False, 400),  # no CRLF after the chunk
        (b"ffffffffffffffff\r\n37,82", False, 413),
        (b"7fffffff\r\n37,82", False, 413),
    ],
)
def test_bad_chunked_framing_is_answered_promptly_with_a_4xx(
    server, pids_unchanged, body, shut_wr, status
):
    started = time.monotonic()
    got, headers, text = post_raw(server.port, CHUNKED, body, shut_wr=shut_wr)
    assert time.monotonic() - started < 5
    assert got == status, text
    assert headers.get("connection") == "close"
    assert text


# -- 5. keep-alive after an error answered before the body was read --------------------------


@pytest.mark.parametrize(
    ("path", "content_type", "accept", "status"),
    [
        ("/invocations", "image/png", "text/csv", 415),
        ("/invocations", "text/csv", "application/xml", 406),
        ("/nope", "text/csv", "text/csv", 404),
        ("/ping", "text/csv", "text/csv", 405),
        ("/execution-parameters", "text/csv", "text/csv", 200),
    ],
)
@pytest.mark.parametrize("size", [100 * 1024, 5 * 1024 * 1024])
def test_keep_alive_survives_an_early_error_with_a_large_unread_body(
    server, pids_unchanged, path, content_type, accept, status, size
):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        big = b"1,2\n" * (size // 4)
        headers = {"Content-Type": content_type, "Accept": accept}
        conn.request("POST", path, body=big, headers=headers)
        first = conn.getresponse()
        assert first.status == status
        first.read()
        assert first.getheader("Connection") != "close"
        conn.request("POST", "/invocations", body=CSV_LINE, headers={"Content-Type": "text/csv"})
        second = conn.getresponse()
        assert second.status == 200
        assert 0 < float(second.read()) < 0.5  # (37, 82) is below y = 3x + 5
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/nope", "/ping", "/invocations"])
def test_an_early_answer_to_a_body_over_the_limit_arrives_before_the_close(
    server, pids_unchanged, path
):
    # The server reads what the client sends (up to 4x the limit) before it closes: the
    # client, still sending, gets the answer instead of a broken pipe.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        body = b"1,2\n" * (7 * 1024 * 1024 // 4)
        conn.request("POST", path, body=body, headers={"Content-Type": "image/png"})
        resp = conn.getresponse()
        assert resp.status in (404, 405, 415)
        assert resp.getheader("Connection") == "close"
        assert resp.read()
    finally:
        conn.close()


def test_a_body_over_the_limit_is_413_with_connection_close(server, pids_unchanged):
    head = "POST /invocations HTTP/1.1\r\nContent-Type: text/csv\r\nContent-Length: 99999999999"
    status, headers, text = post_raw(server.port, head, b"1,2\n" * 1000, shut_wr=True)
    assert status == 413 and headers.get("connection") == "close"
    assert b"exceeds the limit of 6 MB" in text


# -- 6. a body shorter than its Content-Length -----------------------------------------------


def test_a_short_body_with_the_send_side_closed_is_a_400_not_a_prediction(server, pids_unchanged):
    head = "POST /invocations HTTP/1.1\r\nContent-Type: text/csv\r\nContent-Length: 1000"
    status, headers, text = post_raw(server.port, head, b"1,2,3,4", shut_wr=True)
    assert status == 400, text
    assert b"ended after 7 of the 1000 bytes" in text
    assert headers.get("connection") == "close"


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "+5"])
def test_a_malformed_content_length_is_a_400(server, pids_unchanged, value):
    head = f"POST /invocations HTTP/1.1\r\nContent-Type: text/csv\r\nContent-Length: {value}"
    status, _, _ = post_raw(server.port, head, CSV_LINE, shut_wr=True)
    assert status == 400


@pytest.mark.parametrize("value", ["abc", "-1"])
def test_gunicorns_own_400_for_a_malformed_content_length_reaches_a_client_still_sending(
    server, pids_unchanged, value
):
    head = f"POST /invocations HTTP/1.1\r\nContent-Type: text/csv\r\nContent-Length: {value}"
    status, headers, _ = post_raw(server.port, head, b"1,2\n" * (2 * 1024 * 1024), shut_wr=True)
    assert status == 400
    assert headers.get("connection") == "close"


# -- SageMaker's common JSON format ------------------------------------------------------------


def test_sagemaker_common_json_dense_format_is_accepted(server):
    # "Common Data Formats for Inference" (SageMaker Developer Guide), JSON request, dense.
    body = {
        "instances": [
            {"data": {"features": {"values": [37, 82]}}},
            {"data": {"features": {"values": [60, 10]}}},
        ]
    }
    resp = server.invoke(json.dumps(body).encode(), "application/json", "application/json")
    assert resp.status == 200, resp.text
    scores = [p["score"] for p in json.loads(resp.body)["predictions"]]
    want = server.booster.inplace_predict(np.array([[37, 82], [60, 10]], np.float32))
    np.testing.assert_allclose(scores, want, rtol=1e-6)


def test_sparse_keys_in_the_common_json_format_get_a_400_saying_what_to_send(server):
    body = {"instances": [{"data": {"features": {"keys": [1], "shape": [2], "values": [3]}}}]}
    resp = server.invoke(json.dumps(body).encode(), "application/json")
    assert resp.status == 400
    assert "text/libsvm" in resp.text


# -- 7. a model the server cannot read -------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unreadable_model_stops_the_server_with_one_line_naming_file_and_reason(
    trained, workers
):
    _, booster = trained
    base = Path(tempfile.mkdtemp(prefix="mlstack-unreadable-"))
    try:
        base.chmod(0o755)
        model_io.save_model(booster, base / "model")
        (base / "model" / model_io.MODEL_FILENAME).chmod(0o600)  # root's only
        env = {
            **os.environ,
            "SAGEMAKER_BASE_DIR": str(base),
            "SAGEMAKER_BIND_TO_PORT": str(free_port()),
            "MLSTACK_BIND_HOST": "127.0.0.1",
            "MLSTACK_PYTHON": sys.executable,
            "SAGEMAKER_MODEL_SERVER_WORKERS": workers,
        }
        done = subprocess.run(
            [*drop_to_image_user(), *serve_command()], env=env, capture_output=True, timeout=60
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).decode().strip().splitlines()
    model_file = base / "model" / model_io.MODEL_FILENAME
    assert lines == [
        f"serve: cannot load the model: cannot read model file {model_file}: Permission denied"
    ]


# -- a client that stops sending -------------------------------------------------------------


def test_a_client_that_stops_sending_its_body_gets_a_408_and_frees_the_thread(trained):
    base, booster = trained
    server = start_serve(
        base, booster, SAGEMAKER_MODEL_SERVER_WORKERS="1", MLSTACK_BODY_TIMEOUT="1"
    )
    try:
        for head, body in (
            ("POST /invocations HTTP/1.1\r\nContent-Type: text/csv\r\nContent-Length: 100", b"1,2"),
            (CHUNKED, b"a\r\n37,82\r\n0\r\n\r\n"),  # 10 bytes announced: waits for 1 more
        ):
            started = time.monotonic()
            status, headers, text = post_raw(server.port, head, body)  # the socket stays open
            assert status == 408, text
            assert headers.get("connection") == "close"
            assert time.monotonic() - started < 5
        assert server.invoke(CSV_LINE, "text/csv").status == 200
    finally:
        stop_serve(server)


def test_clients_that_stop_sending_their_request_head_get_a_408_and_free_the_threads(trained):
    """gunicorn reads a request's head with no timeout: before issue 26, two clients that sent
    part of a head and stopped held a one-worker server's two threads, and nobody else was
    answered until they hung up. RFC 9110 section 15.5.9: 408, the server closes."""
    base, booster = trained
    server = start_serve(
        base, booster, SAGEMAKER_MODEL_SERVER_WORKERS="1", MLSTACK_BODY_TIMEOUT="1"
    )
    hogs = []
    try:
        started = time.monotonic()
        for sent in (b"POST /invocations HTTP/1.1\r\nHost: x\r\n", b"P", b"GET /ping HTTP/1.1\r\n"):
            hog = socket.create_connection(("127.0.0.1", server.port), timeout=15)
            hog.sendall(sent)  # more of them than the worker has threads; the socket stays open
            hogs.append(hog)
        assert server.invoke(CSV_LINE, "text/csv", timeout=15).status == 200
        for hog in hogs:
            status, headers, text = read_response(hog)
            assert status == 408, text
            assert headers.get("connection") == "close"
        assert time.monotonic() - started < 10
        assert "request line and headers" in server.log_text()
    finally:
        for hog in hogs:
            hog.close()
        stop_serve(server)


def test_a_client_that_stalls_while_an_over_limit_body_is_drained_gets_a_413_not_a_500(trained):
    """A body announced over the limit is read and dropped before the 413; a client that stops
    sending meanwhile timed out inside the drain, which answered 500 ("server error: timed
    out") before issue 26. The body is too large whatever happens: 413, and the server closes."""
    base, booster = trained
    server = start_serve(
        base, booster, SAGEMAKER_MODEL_SERVER_WORKERS="1", MLSTACK_BODY_TIMEOUT="1"
    )
    try:
        head = "POST /invocations HTTP/1.1\r\nContent-Type: text/csv\r\nContent-Length: 7340032"
        status, headers, text = post_raw(server.port, head, b"1,2\n" * 256)  # 1 KiB of 7 MiB
        assert status == 413, text
        assert headers.get("connection") == "close"
        assert server.invoke(CSV_LINE, "text/csv").status == 200
        assert "Traceback" not in server.log_text(), server.log_text()[-3000:]
    finally:
        stop_serve(server)

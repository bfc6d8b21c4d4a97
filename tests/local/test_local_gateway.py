"""`mlstack local serve`: a run's model behind the InvokeEndpoint gateway, called by unchanged
boto3 code; and the gateway's SageMaker-shaped errors."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.config
import botocore.session
import pytest
from botocore.exceptions import ClientError

from mlstack.local.gateway import Gateway, Target
from mlstack.local.runner import RunReport
from mlstack.local.sagemaker import free_port


@pytest.fixture(scope="module")
def gateway(local_run: RunReport) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlstack.cli",
            "local",
            "serve",
            "--from-run",
            str(local_run.run_dir),
            "--port",
            str(port),
            "--endpoint-name",
            "mlstack-dev",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
    yield url
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def runtime(url: str) -> object:
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1")


def test_boto3_invoke_endpoint_gets_predictions(gateway: str) -> None:
    answer = runtime(gateway).invoke_endpoint(  # type: ignore[attr-defined]
        EndpointName="mlstack-dev",
        ContentType="text/csv",
        Body=b"5,90\n60,10",
        CustomAttributes="trace=1",
    )
    scores = [float(v) for v in answer["Body"].read().decode().split(",")]
    assert scores[0] > 0.5 > scores[1]  # (5, 90) is above y = 3x + 5, (60, 10) below
    assert answer["ContentType"].startswith("text/csv")
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert answer["CustomAttributes"] == "trace=1"


def test_json_accept_is_forwarded(gateway: str) -> None:
    answer = runtime(gateway).invoke_endpoint(  # type: ignore[attr-defined]
        EndpointName="mlstack-dev",
        ContentType="text/csv",
        Accept="application/json",
        Body=b"5,90",
    )
    assert b'"predictions"' in answer["Body"].read()


def test_unknown_endpoint_is_a_validation_error(gateway: str) -> None:
    with pytest.raises(ClientError) as err:
        runtime(gateway).invoke_endpoint(EndpointName="nope", Body=b"1,2")  # type: ignore[attr-defined]
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert "nope" in str(err.value)


def test_a_model_error_carries_the_models_status(gateway: str) -> None:
    with pytest.raises(ClientError) as err:
        runtime(gateway).invoke_endpoint(  # type: ignore[attr-defined]
            EndpointName="mlstack-dev", ContentType="text/x-unknown", Body=b"1,2"
        )
    assert err.value.response["Error"]["Code"] == "ModelError"
    assert err.value.response["OriginalStatusCode"] == 415


# -- the gateway alone, in front of a stand-in model server ----------------------------------


class _StandIn(BaseHTTPRequestHandler):
    """A model server answering /invocations with the status named by the body."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = int(body)
        answer = f"model says {status}".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture(scope="module")
def standalone() -> Iterator[Gateway]:
    model = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    threading.Thread(target=model.serve_forever, daemon=True).start()
    gateway = Gateway({"up": Target(model.server_address[1]), "down": Target(free_port())}).start()
    yield gateway
    gateway.stop()
    model.shutdown()


def _status_of(error_code: str) -> int:
    """The HTTP status botocore's SageMaker Runtime model gives an InvokeEndpoint error."""
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shapes = model.operation_model("InvokeEndpoint").error_shapes
    return next(s.metadata["error"]["httpStatusCode"] for s in shapes if s.name == error_code)


@pytest.mark.parametrize(("status", "kind"), [(500, "server"), (503, "server"), (400, "client")])
def test_a_model_error_is_worded_as_sagemaker_words_it(standalone, status, kind):
    with pytest.raises(ClientError) as err:
        runtime(standalone.url).invoke_endpoint(  # type: ignore[attr-defined]
            EndpointName="up", ContentType="text/csv", Body=str(status).encode()
        )
    response = err.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == _status_of("ModelError") == 424
    assert response["OriginalStatusCode"] == status
    assert response["OriginalMessage"] == f"model says {status}"
    assert response["Error"]["Message"].startswith(
        f'Received {kind} error ({status}) from primary with message "model says {status}".'
    )


def test_an_unreachable_model_server_is_service_unavailable(standalone):
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=standalone.url,
        region_name="us-east-1",
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as err:
        client.invoke_endpoint(EndpointName="down", ContentType="text/csv", Body=b"1,2")
    assert err.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == _status_of(
        "ServiceUnavailable"
    )


def _raw(gateway: Gateway, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        resp = http.client.HTTPResponse(sock, method="POST")
        resp.begin()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


@pytest.mark.parametrize("value", ["abc", "-1", "1e3", "12 34"])
def test_a_malformed_content_length_is_a_validation_error(standalone, value):
    head = f"POST /endpoints/up/invocations HTTP/1.1\r\nContent-Length: {value}"
    status, headers, body = _raw(standalone, head, b"1,2")
    assert status == _status_of("ValidationError")
    assert headers["x-amzn-errortype"] == "ValidationError"
    assert headers["connection"] == "close"
    assert b"invalid Content-Length" in body


@pytest.mark.parametrize(
    ("path", "length", "status"),
    [("/nowhere", 1000, 404), ("/endpoints/up/invocations", 7 * 1024 * 1024, 413)],
)
def test_404_and_413_are_answered_from_the_headers_before_any_body_arrives(
    standalone, path, length, status
):
    # Only the headers are sent: an answer proves the gateway did not wait for the body.
    head = f"POST {path} HTTP/1.1\r\nContent-Type: text/csv\r\nContent-Length: {length}"
    got, headers, _ = _raw(standalone, head)
    assert got == status
    assert headers["connection"] == "close"


def test_a_short_body_is_a_validation_error_not_a_prediction(standalone):
    with socket.create_connection(("127.0.0.1", standalone.port), timeout=10) as sock:
        sock.sendall(b"POST /endpoints/up/invocations HTTP/1.1\r\nContent-Length: 100\r\n\r\n200")
        sock.shutdown(socket.SHUT_WR)
        resp = http.client.HTTPResponse(sock, method="POST")
        resp.begin()
        assert resp.status == 400
        assert b"ended after 3 of 100 bytes" in resp.read()

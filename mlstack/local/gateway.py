"""A small HTTP gateway that speaks the SageMaker Runtime ``InvokeEndpoint`` API in front of
local ``serve`` processes, so unchanged boto3 code gets predictions from them::

    boto3.client("sagemaker-runtime", endpoint_url="http://127.0.0.1:8080").invoke_endpoint(
        EndpointName="mlstack-dev", Body=b"37,82", ContentType="text/csv")

``POST /endpoints/<name>/invocations`` forwards the body with ``Content-Type``, ``Accept`` and
``X-Amzn-SageMaker-Custom-Attributes`` to the model's ``/invocations`` and answers as SageMaker
does: 200 with the model's body and ``Content-Type`` plus ``x-Amzn-Invoked-Production-Variant``.
Errors use the shapes and status codes of the SageMaker Runtime API (InvokeEndpoint, "Errors";
the same in botocore's ``sagemaker-runtime`` service model):

* an unknown endpoint or a malformed request: 400 ``ValidationError``; a body over 6 MB: 413;
  both decided from the headers, before the body is read (the connection is then closed);
* the model answered 4xx or 5xx: 424 ``ModelError`` with ``OriginalStatusCode`` and
  ``OriginalMessage``, worded as SageMaker words it: "Received client error (4xx) from primary
  with message ..." or "Received server error (5xx) from primary with message ..." (the
  wording boto3 users see, e.g. aws/amazon-sagemaker-examples issues 407 and 4324);
* the model server cannot be reached: 503 ``ServiceUnavailable``.

Before an endpoint is looked up, the request is checked against botocore's model of
InvokeEndpoint (:mod:`mlstack.local.validation`): an endpoint name, content type, accept or
custom attributes the service refuses is a 400 ``ValidationError`` with the service's message.

With ``capture`` (:class:`mlstack.local.capture.DataCapture`), each answered request is sampled
into the endpoint's data capture, its ``InferenceId`` (the ``X-Amzn-SageMaker-Inference-Id``
header, botocore's ``InferenceId`` member) kept in ``eventMetadata.inferenceId``; the buffered
capture is written when the gateway stops.

Signatures are not checked.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlstack.local import loopback
from mlstack.local.capture import DataCapture
from mlstack.local.validation import ServiceRefusal, rules

MAX_BODY = 6 * 1024 * 1024  # InvokeEndpoint's payload limit
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"  # botocore: InvokeEndpoint's InferenceId header


@dataclass(frozen=True)
class Target:
    port: int  # the serve process on 127.0.0.1
    variant: str = "AllTraffic"


class Gateway:
    """The gateway on ``127.0.0.1:port`` (0: a free port) for ``endpoints`` (name -> Target)."""

    def __init__(
        self,
        endpoints: Mapping[str, Target],
        port: int = 0,
        host: str = "127.0.0.1",
        capture: DataCapture | None = None,
    ):
        self.endpoints = dict(endpoints)
        self.capture = capture
        gateway = self

        class Handler(_Handler):
            owner = gateway

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> Gateway:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self.capture is not None:
            self.capture.flush()


class _Handler(BaseHTTPRequestHandler):
    owner: Gateway
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a client may stay silent (mid-body, or idle between requests)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self, status: int, body: bytes, headers: Mapping[str, str], close: bool = False
    ) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(
        self, status: int, error_type: str, message: str, close: bool = False, **extra: Any
    ) -> None:
        body = json.dumps({"message": message, **extra}).encode()
        self._send(
            status,
            body,
            {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": error_type},
            close,
        )

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(200, b"", {})
            return
        self._error(404, "UnknownOperationException", f"no operation at GET {self.path}")

    def do_POST(self) -> None:
        parts = urllib.parse.urlsplit(self.path).path.split("/")
        if len(parts) != 4 or parts[1] != "endpoints" or parts[3] != "invocations":
            self._refuse(404, "UnknownOperationException", f"no operation at POST {self.path}")
            return
        raw_length = (self.headers.get("Content-Length") or "0").strip()
        if not (raw_length.isascii() and raw_length.isdigit()):
            self._refuse(400, "ValidationError", f"invalid Content-Length {raw_length!r}")
            return
        length = int(raw_length)
        if length > MAX_BODY:
            self._refuse(413, "ValidationError", "Request payload exceeds 6 MB")
            return
        name = urllib.parse.unquote(parts[2])
        target = self.owner.endpoints.get(name)
        try:
            body = self.rfile.read(length) if length else b""
        except TimeoutError:
            self._refuse(408, "ValidationError", "the client stopped sending the request body")
            return
        if len(body) < length:
            self._refuse(
                400, "ValidationError", f"the body ended after {len(body)} of {length} bytes"
            )
            return
        headers = {"Content-Type": self.headers.get("Content-Type", "application/octet-stream")}
        for header in ("Accept", "X-Amzn-SageMaker-Custom-Attributes"):
            if self.headers.get(header):
                headers[header] = self.headers[header]
        inference_id = self.headers.get(INFERENCE_ID)
        try:
            rules("sagemaker-runtime").check_request(
                "InvokeEndpoint", _request(name, body, headers, inference_id)
            )
        except ServiceRefusal as err:
            self._error(400, err.code, err.message)
            return
        if target is None:
            self._error(400, "ValidationError", f"Endpoint {name} of account local not found.")
            return
        try:
            status, answer_headers, answer = loopback.request(
                target.port, "POST", "/invocations", body, headers
            )
        except OSError as err:
            self._error(
                503,
                "ServiceUnavailable",
                f"The service is unavailable: the model server of {name} is not reachable ({err}).",
            )
            return
        if not 200 <= status < 300:
            text = answer.decode(errors="replace")
            kind = "server" if status >= 500 else "client"
            self._error(
                424,
                "ModelError",
                f'Received {kind} error ({status}) from primary with message "{text}". '
                f"See the log of the endpoint's model server for more information.",
                OriginalStatusCode=status,
                OriginalMessage=text,
            )
            return
        out = {
            "Content-Type": answer_headers.get("content-type", "application/octet-stream"),
            "x-Amzn-Invoked-Production-Variant": target.variant,
        }
        if "x-amzn-sagemaker-custom-attributes" in answer_headers:
            out["X-Amzn-SageMaker-Custom-Attributes"] = answer_headers[
                "x-amzn-sagemaker-custom-attributes"
            ]
        self._send(200, answer, out)
        capture = self.owner.capture
        if capture is not None:
            capture.record(name, target.variant, body, headers["Content-Type"], answer,
                           out["Content-Type"], inference_id)  # fmt: skip

    def _refuse(self, status: int, error_type: str, message: str) -> None:
        """An error decided before the body was read: the connection closes after it (what
        the client still sends would be taken for the next request)."""
        self.close_connection = True
        self._error(status, error_type, message, close=True)


def _request(
    name: str, body: bytes, headers: Mapping[str, str], inference_id: str | None = None
) -> dict[str, Any]:
    """The InvokeEndpoint request the HTTP request carries (its members' names)."""
    request: dict[str, Any] = {"EndpointName": name, "Body": body}
    if inference_id is not None:
        request["InferenceId"] = inference_id
    for member, header in (
        ("ContentType", "Content-Type"),
        ("Accept", "Accept"),
        ("CustomAttributes", "X-Amzn-SageMaker-Custom-Attributes"),
    ):
        if header in headers:
            request[member] = headers[header]
    return request

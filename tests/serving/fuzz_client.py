"""A hostile HTTP client for ``serve``: generated requests across content types, framings and
sizes, sent over raw sockets on keep-alive connections. Shared by the fuzz test
(``test_serving_fuzz.py``) and the longer fuzz + load run (``bench/serving_fuzz.py``).

Every answer is checked: a status below 500, and a connection the server closes only after
saying ``Connection: close``. What went wrong is counted in :class:`Tally`.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from mlstack_containers import recordio

MB = 1024 * 1024
CONTENT_TYPES = [
    "text/csv",
    "text/csv; charset=utf-8",
    "application/json",
    "application/jsonlines",
    "text/libsvm",
    "application/x-recordio-protobuf",
    "image/png",
    "",
    "text/csv; charset=\xff",
]
ACCEPTS = [
    None,
    "text/csv",
    "application/json",
    "application/jsonlines",
    "application/x-recordio-protobuf",
    "*/*",
    "application/xml",
    "text/csv;q=0.1, */*",
]


@dataclass
class Request:
    head: bytes
    body: bytes
    shut_wr: bool = False  # close the sending side after the body (a short body)
    label: str = ""


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # 5xx, resets, silent closes
    sent: int = 0

    def fail(self, what: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(what)


# -- bodies ------------------------------------------------------------------------------------


def _number(rng: random.Random) -> str:
    return rng.choice(
        [
            str(rng.randint(0, 100)),
            repr(rng.uniform(-1e6, 1e6)),
            "",
            "nan",
            "1e999",
            "1" + "0" * rng.randint(300, 500),
            "x",
            "-",
        ]
    )


def _csv(rng: random.Random, width: int) -> bytes:
    rows = rng.randint(1, 20)
    cols = width if rng.random() < 0.7 else rng.randint(0, 5)
    good = rng.random() < 0.6
    lines = [
        ",".join(str(rng.randint(0, 100)) if good else _number(rng) for _ in range(cols))
        for _ in range(rows)
    ]
    return rng.choice(["\n", "\r\n"]).join(lines).encode()


def _json(rng: random.Random, width: int) -> bytes:
    rows = [[rng.randint(0, 100) for _ in range(width)] for _ in range(rng.randint(1, 5))]
    shapes = [
        {"instances": rows},
        {"instances": [{"features": r} for r in rows]},
        {"instances": [{"data": {"features": {"values": r}}} for r in rows]},
        {"features": rows[0]},
        rows,
        {"instances": [[10**400, 1]]},
        {"instances": [{"data": {"features": {"keys": [1], "values": [1]}}}]},
        {"instances": [[[1, 2]]]},
        {"instances": "x"},
        [None, True, "a"],
    ]
    return json.dumps(rng.choice(shapes)).encode()


def _jsonlines(rng: random.Random, width: int) -> bytes:
    return b"\n".join(
        json.dumps([rng.randint(0, 100) for _ in range(rng.choice([width, width, 1]))]).encode()
        for _ in range(rng.randint(1, 5))
    )


def _libsvm(rng: random.Random, width: int) -> bytes:
    return b"\n".join(
        b"1 "
        + b" ".join(
            b"%d:%s" % (rng.choice([0, 1, width, -1, 2**63, 2**64 + 3]), _number(rng).encode())
            for _ in range(rng.randint(0, 4))
        )
        for _ in range(rng.randint(1, 4))
    )


HOSTILE_KEYS = [0, 1, 2, 5, 2**31, 2**63, 2**64 - 1]


def _recordio(rng: random.Random, width: int) -> bytes:
    payloads = []
    for _ in range(rng.randint(1, 6)):
        n = rng.choice([width, width, width + 1, 0])
        values = np.asarray([rng.uniform(0, 100) for _ in range(n)], np.float32)
        if rng.random() < 0.5:
            keys = np.asarray([rng.choice(HOSTILE_KEYS) for _ in range(n)], np.uint64)
            shape = rng.choice([(), (width,), (rng.choice(HOSTILE_KEYS),), (2**32, 2**32)])
            tensor = recordio.Tensor(values, keys, shape)
        else:
            tensor = recordio.Tensor(values, None, rng.choice([(), (width,), (n,), (4,)]))
        payloads.append(recordio.encode_record(tensor, rng.choice([None, 1.0])))
    body = recordio.write_records(payloads)
    if rng.random() < 0.2:
        body = body[: rng.randint(0, len(body))]
    if rng.random() < 0.2:
        body += struct.pack("<II", recordio.MAGIC, rng.randint(0, 2**32 - 1))
    return body


def _bitflip(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def body_for(rng: random.Random, content_type: str, width: int) -> bytes:
    kind = content_type.split(";")[0]
    makers = {
        "text/csv": _csv,
        "application/json": _json,
        "application/jsonlines": _jsonlines,
        "text/libsvm": _libsvm,
        "application/x-recordio-protobuf": _recordio,
    }
    roll = rng.random()
    if roll < 0.05:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    if roll < 0.08:  # large: 64 KiB .. 2 MiB of valid CSV, sometimes over the 6 MB limit
        size = 7 * MB if rng.random() < 0.05 else rng.randint(64 * 1024, 2 * MB)
        line = b"37,82\n"
        return line * (size // len(line))
    body = makers.get(kind, _csv)(rng, width)
    return _bitflip(rng, body) if rng.random() < 0.1 else body


# -- framings ----------------------------------------------------------------------------------


def _chunks(rng: random.Random, body: bytes) -> bytes:
    out, pos = [], 0
    while pos < len(body):
        n = min(rng.randint(1, max(1, len(body) // 3 + 1)), len(body) - pos)
        out.append(b"%x\r\n%s\r\n" % (n, body[pos : pos + n]))
        pos += n
    return b"".join(out) + b"0\r\n\r\n"


BAD_CHUNKED = [
    b"zz\r\n37,82\r\n0\r\n\r\n",
    b"-1\r\n37,82\r\n0\r\n\r\n",
    b"ffffffffffffffff\r\n37,82",
    b"5\r\n37,82XX0\r\n\r\n",
    b"5\r\n37,82\r\n0\r\nbad trailer\r\n\r\n",
    b"5;ext=\x01\r\n37,82\r\n0\r\n\r\n",
]


def request_for(rng: random.Random, width: int) -> Request:
    content_type = rng.choice(CONTENT_TYPES)
    accept = rng.choice(ACCEPTS)
    body = body_for(rng, content_type, width)
    method, path = "POST", "/invocations"
    roll = rng.random()
    if roll < 0.03:
        method = rng.choice(["GET", "PUT", "DELETE"])
    elif roll < 0.06:
        path = rng.choice(["/nope", "/ping", "/execution-parameters", "/invocations?x=1"])
    headers = [f"{method} {path} HTTP/1.1", "Host: fuzz"]
    if content_type:
        headers.append(f"Content-Type: {content_type}")
    if accept is not None:
        headers.append(f"Accept: {accept}")
    framing = rng.random()
    shut_wr = False
    if framing < 0.15:
        headers.append("Transfer-Encoding: chunked")
        body, label = _chunks(rng, body), "chunked"
    elif framing < 0.2:
        headers.append("Transfer-Encoding: chunked")
        body, label, shut_wr = rng.choice(BAD_CHUNKED), "bad-chunked", True
    elif framing < 0.25:
        headers.append(f"Content-Length: {len(body) + rng.randint(1, 1000)}")
        label, shut_wr = "short", True
    elif framing < 0.27:
        headers.append(f"Content-Length: {rng.choice(['-1', 'abc', '1e3', '99999999999'])}")
        label, shut_wr = "bad-length", True
    else:
        headers.append(f"Content-Length: {len(body)}")
        label = "length"
    head = ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1")
    return Request(head, body, shut_wr, f"{method} {path} {content_type!r} {label} {len(body)}B")


# -- sending -----------------------------------------------------------------------------------


class Connection:
    """One keep-alive connection; reopened after the server says ``Connection: close``."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.previous = ""  # the request before, on this connection

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, request: Request, tally: Tally) -> int | None:
        if request.shut_wr:
            self.close()  # a half-closed connection serves one request
        if self.sock is None:
            self.previous = "(new connection)"
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        tally.sent += 1
        try:
            self.sock.sendall(request.head + request.body)
            if request.shut_wr:
                self.sock.shutdown(socket.SHUT_WR)
            resp = http.client.HTTPResponse(self.sock, method="POST")
            resp.begin()
            resp.read()
        except (OSError, http.client.HTTPException) as exc:
            tally.fail(f"{type(exc).__name__}: {exc} on {request.label} after {self.previous}")
            self.close()
            return None
        tally.statuses[resp.status] += 1
        self.previous = f"{request.label} answered {resp.status}"
        if resp.status >= 500:
            tally.fail(f"{resp.status} on {request.label}")
        if request.shut_wr or (resp.getheader("Connection") or "").lower() == "close":
            self.close()
        return resp.status

"""Valid requests under pressure: a mix of clients against the real ``serve`` in which every
valid request must get its 200 and the right answer, whatever else the server is doing.

Shared by the stress test (``test_serving_stress.py``, a few bounded rounds in ``make test``)
and ``bench/serving_stress.py`` (longer runs). Each round runs, at once:

* **small**: keep-alive connections sending one-record CSV and JSON requests back to back (the
  requests a worker answers on its event loop);
* **chunked**: keep-alive connections sending valid CSV bodies in ``Transfer-Encoding:
  chunked`` framing, in random chunk sizes, sometimes a chunk per TCP send with pauses between;
* **large**: multi-MB valid bodies (a 4 MB one-row CSV, a ~5 MB batch), with a
  ``Content-Length`` or chunked, sent in pieces;
* **trickle**: valid bodies sent slowly, in pieces with pauses under the server's body timeout
  (a slow but live client: 200);
* **stall**: clients that stop sending their body part way (must get a 408);
* **head stall**: clients that send part of a request's head (request line and some headers)
  and stop (must get a 408; more of them than the server has threads);
* **hostile**: generated requests from :mod:`tests.serving.fuzz_client` (every content type,
  broken bodies and framings, bodies over the limit): any status below 500.

A valid request fails on a reset, a close without an answer, a timeout, a status other than
200 or a wrong answer; a hostile one on a 5xx. What failed is counted in :class:`Outcome`.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tests.serving.fuzz_client import Connection, Tally, request_for

MB = 1024 * 1024
ROW = b"37,82"
FEATURES = np.array([[37, 82]], np.float32)


@dataclass
class Outcome:
    """What every client saw: valid requests answered, and each failure in words."""

    valid: Counter[str] = field(default_factory=Counter)  # kind -> valid requests answered 200
    stalls: Counter[int] = field(default_factory=Counter)  # status a stalled client got
    hostile: Tally = field(default_factory=Tally)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, kind: str) -> None:
        with self.lock:
            self.valid[kind] += 1

    def fail(self, what: str) -> None:
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(what)


Check = Callable[[bytes], bool]


def csv_check(predict: Callable[[np.ndarray], np.ndarray], rows: int) -> Check:
    """An answer of ``rows`` predictions for :data:`ROW`: comma-separated (realtime) decimal
    text that reads back as XGBoost's own float32 prediction (``Booster.predict``)."""
    want = np.float32(predict(FEATURES)[0])

    def check(body: bytes) -> bool:
        values = body.split(b",")
        return len(values) == rows and all(np.float32(float(v)) == want for v in set(values))

    return check


def json_check(predict: Callable[[np.ndarray], np.ndarray]) -> Check:
    """SageMaker's XGBoost JSON answer, ``{"predictions": [{"score": p}]}``, for one row."""
    want = np.float32(predict(FEATURES)[0])

    def check(body: bytes) -> bool:
        answer = json.loads(body)
        return (
            len(answer["predictions"]) == 1
            and np.float32(answer["predictions"][0]["score"]) == want
        )

    return check


def _chunked(rng: random.Random, body: bytes) -> list[bytes]:
    """``body`` in chunked framing, one list item per chunk (sent one after the other)."""
    out, pos = [], 0
    while pos < len(body):
        n = min(rng.choice([1, 7, 100, 4096, 65536, 1 << 20]), len(body) - pos)
        out.append(b"%x\r\n%s\r\n" % (n, body[pos : pos + n]))
        pos += n
    out.append(b"0\r\n\r\n")
    return out


def _head(length: int | None, content_type: str = "text/csv") -> bytes:
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (
        f"POST /invocations HTTP/1.1\r\nHost: stress\r\nContent-Type: {content_type}\r\n"
        f"Accept: {content_type}\r\n{framing}\r\n\r\n"
    ).encode()


class ValidConnection:
    """A keep-alive connection for valid requests; reopened only after ``Connection: close``
    (which a valid request's answer should never carry: it is counted as a failure)."""

    def __init__(self, port: int, outcome: Outcome, timeout: float) -> None:
        self.port = port
        self.outcome = outcome
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.previous = "(new connection)"

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self, kind: str, pieces: list[bytes], check: Check, pause: float = 0.0) -> None:
        """Send ``pieces`` (``pause`` seconds apart), read the answer, ``check`` it."""
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self.previous = "(new connection)"
        size = sum(map(len, pieces))
        label = f"{kind} request ({size:,} bytes sent) after {self.previous}"
        try:
            for i, piece in enumerate(pieces):
                if i and pause:
                    time.sleep(pause)
                self.sock.sendall(piece)
            resp = http.client.HTTPResponse(self.sock, method="POST")
            resp.begin()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.outcome.fail(f"{type(exc).__name__}: {exc} on a valid {label}")
            self.close()
            return
        if resp.status != 200 or not check(body):
            self.outcome.fail(f"{resp.status} {body[:200]!r} on a valid {label}")
        else:
            self.outcome.ok(kind)
        self.previous = f"{kind} answered {resp.status}"
        if (resp.getheader("Connection") or "").lower() == "close":
            if resp.status == 200:
                self.outcome.fail(f"Connection: close on a valid {label}")
            self.close()


@dataclass
class Mix:
    """One round's clients; the sizes are kept small enough for a shared 2-core machine."""

    small: int = 2
    chunked: int = 1
    large: int = 2
    trickle: int = 1
    stall: int = 1
    head_stall: int = 4
    hostile: int = 2
    large_bytes: int = 4 * MB
    body_timeout: float = 5.0  # the server's MLSTACK_BODY_TIMEOUT
    client_timeout: float = 30.0


def run_round(
    port: int,
    predict: Callable[[np.ndarray], np.ndarray],
    seconds: float,
    seed: int,
    mix: Mix | None = None,
    outcome: Outcome | None = None,
) -> Outcome:
    """Run every client of ``mix`` at once for ``seconds`` (each finishes the request it is
    on) and return what they saw."""
    mix = mix or Mix()
    outcome = outcome or Outcome()
    one = csv_check(predict, 1)
    deadline = time.monotonic() + seconds

    def small(rng: random.Random) -> None:
        conn = ValidConnection(port, outcome, mix.client_timeout)
        json_body = json.dumps({"instances": [[37, 82]]}).encode()
        while time.monotonic() < deadline:
            if rng.random() < 0.8:
                conn.exchange("small CSV", [_head(len(ROW)) + ROW], one)
            else:
                head = _head(len(json_body), "application/json")
                conn.exchange("small JSON", [head + json_body], json_check(predict))
        conn.close()

    def chunked(rng: random.Random) -> None:
        conn = ValidConnection(port, outcome, mix.client_timeout)
        while time.monotonic() < deadline:
            rows = rng.randint(1, 2000)
            body = b"\n".join([ROW] * rows)
            pieces = _chunked(rng, body)
            pause = 0.01 if rng.random() < 0.2 else 0.0
            if not pause:
                pieces = [_head(None) + b"".join(pieces)]
            else:
                pieces = [_head(None), *pieces[:50], b"".join(pieces[50:])]
            conn.exchange("chunked CSV", pieces, csv_check(predict, rows), pause)
        conn.close()

    def large(rng: random.Random) -> None:
        conn = ValidConnection(port, outcome, mix.client_timeout)
        while time.monotonic() < deadline:
            if rng.random() < 0.5:  # one row, made long by leading zeros: the same value
                body = b"0" * (mix.large_bytes - len(ROW)) + ROW
                want = one
            else:
                rows = (mix.large_bytes + MB) // (len(ROW) + 1)
                body = b"\n".join([ROW] * rows)
                want = csv_check(predict, rows)
            if rng.random() < 0.5:
                head = _head(len(body))
                pieces = [head] + [body[i : i + MB] for i in range(0, len(body), MB)]
            else:
                pieces = [_head(None), *_chunked(rng, body)]
            conn.exchange("large CSV", pieces, want)
        conn.close()

    def trickle(rng: random.Random) -> None:
        conn = ValidConnection(port, outcome, mix.client_timeout)
        while time.monotonic() < deadline:
            rows = rng.randint(1, 50)
            body = b"\n".join([ROW] * rows)
            cut = sorted(rng.sample(range(1, len(body)), min(3, len(body) - 1)))
            pieces = [body[a:b] for a, b in zip([0, *cut], [*cut, len(body)], strict=True)]
            pause = mix.body_timeout / 20
            conn.exchange(
                "trickled CSV", [_head(len(body)), *pieces], csv_check(predict, rows), pause
            )
        conn.close()

    def stall(rng: random.Random) -> None:
        while time.monotonic() < deadline:
            stalled(_head(100) + ROW, "its body")  # 100 bytes announced, 5 sent

    def head_stall(rng: random.Random) -> None:
        head = b"POST /invocations HTTP/1.1\r\nHost: stress\r\nContent-Type: text/csv\r\n"
        while time.monotonic() < deadline:
            stalled(head[: rng.randint(1, len(head))], "its request's head")
            time.sleep(mix.body_timeout)  # then again, as a slow client would

    def stalled(sent: bytes, what: str) -> None:
        """Send ``sent`` and nothing more: the server must answer 408."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=mix.client_timeout)
        try:
            sock.sendall(sent)
            resp = http.client.HTTPResponse(sock, method="POST")
            resp.begin()
            resp.read()
            with outcome.lock:
                outcome.stalls[resp.status] += 1
            if resp.status != 408:
                outcome.fail(f"{resp.status} for a client that stopped sending {what}")
        except (OSError, http.client.HTTPException) as exc:
            outcome.fail(f"{type(exc).__name__}: {exc} for a client that stopped sending {what}")
        finally:
            sock.close()

    def hostile(rng: random.Random) -> None:
        conn = Connection(port, timeout=mix.client_timeout)
        follow = ValidConnection(port, outcome, mix.client_timeout)
        try:
            while time.monotonic() < deadline:
                request = request_for(rng, width=2)
                conn.send(request, outcome.hostile)
                if conn.sock is None:
                    continue  # the server said Connection: close
                # The connection stays open: a valid request on it must be answered as if the
                # hostile one had never been sent.
                follow.sock, follow.previous = conn.sock, f"hostile {request.label}"
                roll = rng.random()
                if roll < 0.6:
                    follow.exchange("valid after hostile", [_head(len(ROW)) + ROW], one)
                elif roll < 0.9:
                    rows = rng.randint(1, 300)
                    body = b"".join(_chunked(rng, b"\n".join([ROW] * rows)))
                    check = csv_check(predict, rows)
                    follow.exchange("valid after hostile", [_head(None) + body], check)
                else:
                    body = b"0" * (mix.large_bytes - len(ROW)) + ROW
                    follow.exchange("valid after hostile", [_head(len(body)), body], one)
                conn.sock = follow.sock
        finally:
            conn.close()

    clients = [
        (small, mix.small),
        (chunked, mix.chunked),
        (large, mix.large),
        (trickle, mix.trickle),
        (stall, mix.stall),
        (head_stall, mix.head_stall),
        (hostile, mix.hostile),
    ]
    threads = []
    for n, (target, count) in enumerate(clients):
        for i in range(count):
            rng = random.Random(seed * 1000 + n * 100 + i)
            threads.append(threading.Thread(target=target, args=(rng,), daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 4 * mix.client_timeout)
    if any(t.is_alive() for t in threads):
        outcome.fail("a client thread did not finish")
    return outcome

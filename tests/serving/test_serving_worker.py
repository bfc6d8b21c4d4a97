"""The gthread worker's accept: the worker holding fewer connections takes a new one."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest
from gunicorn.workers.gthread import ThreadWorker
from mlstack_containers.serving import server
from mlstack_containers.serving.config import ServerConfig

from tests.serving.conftest import start_serve, stop_serve
from tests.serving.test_serving_hostile import booted_workers, worker_pids


@pytest.mark.parametrize(("held", "delay"), [(0, None), (1, 0.0002), (3, 0.0006), (50, 0.002)])
def test_accept_waits_in_proportion_to_held_connections(monkeypatch, held, delay):
    sleeps, accepted = [], []
    monkeypatch.setattr(server.time, "sleep", sleeps.append)
    monkeypatch.setattr(ThreadWorker, "accept", lambda self, listener: accepted.append(listener))
    worker = object.__new__(server.BalancedThreadWorker)
    worker.nr_conns = held
    worker.accept("listener")
    assert accepted == ["listener"]
    assert sleeps == ([] if delay is None else [pytest.approx(delay)])


@pytest.mark.parametrize(
    ("worker_class", "want"),
    [("gthread", "mlstack_containers.serving.server.BalancedThreadWorker"), ("sync", "sync")],
)
def test_worker_class_setting(worker_class, want):
    app = server.Server(ServerConfig(worker_class=worker_class))
    assert app.cfg.settings["worker_class"].value == want
    if worker_class == "gthread":
        assert app.cfg.worker_class is server.BalancedThreadWorker


class FakeArbiter:
    def __init__(self) -> None:
        self.WORKERS: dict[int, object] = {}

    def fork(self, loads: server.WorkerLoads, pid: int) -> server.BalancedThreadWorker:
        worker = object.__new__(server.BalancedThreadWorker)
        worker.nr_conns = 0
        loads.pre_fork(self, worker)
        self.WORKERS[pid] = worker
        return worker


def test_the_master_gives_each_worker_its_own_slot_and_frees_a_dead_workers():
    loads, arbiter = server.WorkerLoads(2), FakeArbiter()
    first, second = arbiter.fork(loads, 1), arbiter.fork(loads, 2)
    assert (first.slot, second.slot) == (0, 1)
    assert loads.least_other(0) == 0  # the second is alive and holds nothing
    loads.child_exit(arbiter, arbiter.WORKERS.pop(2))
    assert loads.least_other(0) == server.WorkerLoads.EMPTY  # a dead worker never looks idle
    assert arbiter.fork(loads, 3).slot == 1
    extra = arbiter.fork(loads, 4)  # more workers than slots (gunicorn's TTIN): no slot
    assert extra.slot is None and extra.loads is None


def test_a_worker_holding_more_leaves_a_new_connection_to_the_other_for_a_while(monkeypatch):
    clock = [100.0]
    sleeps, accepted = [], []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(server.time, "sleep", sleep)

    def accept(self: server.BalancedThreadWorker, listener: str) -> None:  # gunicorn's
        accepted.append(listener)
        self.nr_conns += 1

    monkeypatch.setattr(server.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(ThreadWorker, "accept", accept)
    loads, arbiter = server.WorkerLoads(2), FakeArbiter()
    busy, idle = arbiter.fork(loads, 1), arbiter.fork(loads, 2)
    busy.nr_conns = 2
    turns = 0
    while not accepted:  # the worker's event loop: the listener stays readable
        busy.accept("listener")
        turns += 1
    assert turns == pytest.approx(server.BalancedThreadWorker.MAX_DEFER / 0.001, abs=2)
    assert set(sleeps) == {server.BalancedThreadWorker.DEFER_STEP}
    assert loads.least_other(idle.slot) == 3  # the busy worker published what it holds now
    # Holding as many or fewer: accept at once, no wait.
    sleeps.clear()
    idle.nr_conns = 3
    idle.accept("listener")
    assert accepted == ["listener", "listener"] and sleeps == []
    assert loads.least_other(busy.slot) == 4


def test_large_requests_of_all_workers_are_counted_against_the_cpus():
    """A worker pipelines a large request only while the workers together answer fewer large
    requests than there are CPUs; a worker that dies answering one no longer counts."""
    loads, arbiter = server.WorkerLoads(2, cpus=2), FakeArbiter()
    first, second = arbiter.fork(loads, 1), arbiter.fork(loads, 2)
    one, two = loads.batch_count(first.slot), loads.batch_count(second.slot)
    assert one.spare() and two.spare()
    with one.running():
        assert one.spare() and two.spare()  # a lone batch: the second CPU is free
        with two.running():
            assert not one.spare() and not two.spare()  # both CPUs busy
            assert loads.batches() == 2
        assert two.spare()
    held = [one.running(), one.running()]  # both threads of the first worker, then killed
    for request in held:
        request.__enter__()
    assert not two.spare()
    loads.child_exit(arbiter, arbiter.WORKERS.pop(1))
    assert two.spare() and loads.batches() == 0
    replacement = arbiter.fork(loads, 3)
    assert replacement.slot == first.slot and loads.batches() == 0


def test_a_gthread_worker_wires_the_shared_count_into_its_app():
    import xgboost as xgb
    from mlstack_containers.serving.app import AlwaysSpare, InferenceApp, Predictor

    from tests.serving.conftest import reference_data

    features, labels = reference_data(200)
    booster = xgb.train({"objective": "reg:logistic"}, xgb.DMatrix(features, labels), 2)
    loads, arbiter = server.WorkerLoads(2, cpus=2), FakeArbiter()
    worker = arbiter.fork(loads, 1)
    worker.wsgi = InferenceApp(Predictor(booster, 2), ServerConfig())
    assert isinstance(worker.wsgi.cpus, AlwaysSpare)  # an app on its own
    server._warm_up(worker)  # gunicorn's post_worker_init
    assert isinstance(worker.wsgi.cpus, server.BatchCount)
    with worker.wsgi.cpus.running():
        assert loads.batches() == 1


def _server_side_inode(client: socket.socket, port: int) -> str:
    """The inode of the server's end of a loopback TCP connection (/proc/net/tcp)."""
    local = f":{port:04X}"
    remote = f":{client.getsockname()[1]:04X}"
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(local) and fields[2].endswith(remote):
                return fields[9]
    raise AssertionError("connection not found in /proc/net/tcp")


def _holder(inode: str, workers: set[int]) -> int:
    for pid in workers:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
    raise AssertionError(f"no worker holds socket {inode}")


@pytest.fixture(scope="module")
def own_server(trained):
    """A server no other test has used: a connection another test left open stays with its
    worker until its keep-alive ends (60 s), and the workers would start out unequal."""
    base, booster = trained
    proc = start_serve(base, booster, SAGEMAKER_MODEL_SERVER_WORKERS="2")
    yield proc
    stop_serve(proc)


ROUNDS = 3
ROUNDS_TRIED = 20


def test_keep_alive_connections_are_spread_over_the_workers(own_server):
    """Four connections opened one after the other (each used, then kept open) end up two on
    each worker, whichever worker served the last request; three times over.

    By design a worker holding more takes a new connection itself when the other has not
    within ``MAX_DEFER`` (stuck, or starved of CPU on a loaded machine), and the first answer
    on that connection then comes at least ``MAX_DEFER`` after the connect. So a round in
    which an answer came that late proves nothing either way and is done again; every round
    whose answers all came sooner must split two and two."""
    workers = booted_workers(own_server.proc.pid)
    patience = server.BalancedThreadWorker.MAX_DEFER
    checked, late = 0, []
    for _ in range(ROUNDS_TRIED):
        conns, slowest = [], 0.0
        try:
            for _ in range(4):
                started = time.monotonic()
                conn = http.client.HTTPConnection("127.0.0.1", own_server.port, timeout=10)
                conn.request("POST", "/invocations", b"37,82", {"Content-Type": "text/csv"})
                resp = conn.getresponse()
                slowest = max(slowest, time.monotonic() - started)
                assert resp.status == 200
                resp.read()
                conns.append(conn)
            port = own_server.port
            holders = [_holder(_server_side_inode(c.sock, port), workers) for c in conns]
            if slowest < patience:
                assert sorted(Counter(holders).values()) == [2, 2], holders
                checked += 1
            else:
                late.append(f"{slowest:.3f} s")
        finally:
            for conn in conns:
                conn.close()
        if checked == ROUNDS:
            return
        _wait_until_released(own_server.port, workers)
    pytest.fail(f"fewer than {ROUNDS} rounds answered within {patience} s; slowest: {late}")


def _wait_until_released(port: int, workers: set[int]) -> None:
    """Until no worker holds a connection to ``port`` (each saw its client close it), then a
    moment for each worker's event loop to publish its count."""
    deadline = time.monotonic() + 10
    while _held_connections(port, workers):
        assert time.monotonic() < deadline, "the workers did not close the test's connections"
        time.sleep(0.02)
    time.sleep(0.2)


def _held_connections(port: int, workers: set[int]) -> set[str]:
    """The inodes of the TCP connections (not the listener) to ``port`` that a worker holds."""
    local, listen = f":{port:04X}", "0A"
    with open("/proc/net/tcp") as fh:
        inodes = {
            f"socket:[{fields[9]}]"
            for fields in (line.split() for line in fh.readlines()[1:])
            if fields[1].endswith(local) and fields[3] != listen
        }
    held = set()
    for pid in workers:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if (target := os.readlink(f"/proc/{pid}/fd/{fd}")) in inodes:
                    held.add(target)
    return held


_FAULTS = """
import resource, sys, threading
from mlstack_containers.serving import server
if sys.argv[1] == "reuse":
    assert server.reuse_freed_memory()

def request():  # a 6 MB batch's buffers (body, matrices, response text), together, then freed
    held = [bytearray(mib << 20) for mib in (6, 9, 4, 14, 14)]
    del held

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def handler(out):  # in a thread, as gunicorn's gthread worker runs a request
    request()
    before = faults()
    for _ in range(10):
        request()
    out.append(faults() - before)

out = []
thread = threading.Thread(target=handler, args=(out,))
thread.start()
thread.join()
print(out[0])
"""


def _faults(script: str, mode: str) -> int:
    """The page-fault count ``script`` prints, run in a python of its own with ``mode``."""
    out = subprocess.run(
        [sys.executable, "-c", script, mode], capture_output=True, check=True, text=True
    )
    return int(out.stdout)


def test_workers_reuse_freed_buffers_instead_of_faulting_in_fresh_pages():
    """glibc gives a large buffer its own mmap and returns it on free: every request's buffers
    are fresh, zeroed pages again (47 MiB here, ~12,000 page faults). After
    ``reuse_freed_memory`` (what ``serve`` calls before forking its workers) the next requests
    reuse the freed heap."""

    default, reused = _faults(_FAULTS, "default"), _faults(_FAULTS, "reuse")
    assert default >= 10 * 8000  # the machine's glibc behaves as described
    assert reused < default / 20


_ARENA_FAULTS = """
import resource, sys, threading
if sys.argv[1] == "serve":
    import mlstack_containers.serving.__main__  # what `serve` runs first (main() not called)
import numpy  # the server's imports start numpy's threads

def request():  # a 6 MB batch of two-feature rows answered whole: ~80 MiB of buffers
    held = [bytearray(mib << 20) for mib in (6, 17, 17, 9, 14, 14)]
    del held

def handler(out):  # in a thread, as gunicorn's gthread worker runs a request
    request()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        request()
    out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

out = []
for _ in range(2):  # a worker's two pool threads, one after the other
    thread = threading.Thread(target=handler, args=(out,))
    thread.start()
    thread.join()
print(max(out))
"""


def test_a_workers_threads_share_one_arena_and_reuse_its_freed_heap():
    """glibc gives each thread that allocates an arena of its own, made of 64 MiB heaps that it
    unmaps whole once they are empty (the trim threshold does not apply), so a batch answered
    on a pool thread faulted in fresh pages on every request even with the mmap threshold
    and trim threshold raised (~3,600 faults a request, before issue 26). ``serve`` now keeps
    one arena: the kernel's page-fault count of the next requests is near zero."""

    default, served = _faults(_ARENA_FAULTS, "default"), _faults(_ARENA_FAULTS, "serve")
    assert default >= 10 * 5000  # the machine's glibc behaves as described
    assert served < default / 20


class RecordingSocket:
    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))


def _respond(response_class, method: str, parts: list[bytes]) -> list[bytes]:
    from types import SimpleNamespace

    from gunicorn.config import Config

    req = SimpleNamespace(version=(1, 1), method=method, should_close=lambda: False, headers=[])
    sock = RecordingSocket()
    resp = response_class(req, sock, Config())
    length = str(sum(map(len, parts)))
    resp.start_response("200 OK", [("Content-Type", "text/csv"), ("Content-Length", length)])
    for part in parts:
        resp.write(part)
    resp.close()
    return sock.sends


@pytest.mark.parametrize(
    ("method", "parts", "sends"),
    [
        ("POST", [b"0.714285731"], 1),  # a one-record answer: one send
        ("POST", [b"a" * 100, b"b" * 200], 2),  # headers with the first piece, then the next
        ("POST", [b"c" * (1 << 20)], 2),  # a large piece is not copied to join the headers
        ("POST", [], 1),  # no body (GET /ping)
        ("HEAD", [b"ignored"], 1),  # HEAD: the headers only
    ],
)
def test_one_write_response_sends_gunicorns_bytes_with_the_headers_in_the_first_send(
    monkeypatch, method, parts, sends
):
    import gunicorn.http.wsgi
    import gunicorn.util

    monkeypatch.setattr(gunicorn.util, "http_date", lambda timestamp=None: "Sun, 29 Nov 2026")
    want = _respond(gunicorn.http.wsgi.Response, method, parts)
    got = _respond(server.OneWriteResponse, method, parts)
    assert b"".join(got) == b"".join(want)
    assert len(got) == sends
    assert got[0].startswith(b"HTTP/1.1 200 OK\r\n")


def test_the_cached_date_header_is_gunicorns_text():
    import gunicorn.util

    for _ in range(3):  # a second may turn between the two calls: then try again
        second = int(time.time())
        cached, formatted = server._cached_http_date(), gunicorn.util.http_date()
        if int(time.time()) == second:
            break
    assert cached == formatted
    assert server._cached_http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


def test_the_direct_access_line_is_what_the_logging_handler_writes():
    import datetime
    import io
    import logging
    from types import SimpleNamespace

    from gunicorn.config import Config

    cfg = Config()
    cfg.set("accesslog", "-")
    logger = server.QuietPingLogger(cfg)
    (handler,) = logger.access_log.handlers
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/invocations",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    resp = SimpleNamespace(status="200 OK", sent=11)
    took = datetime.timedelta(milliseconds=3)

    def line(direct: bool) -> str:
        handler.setStream(io.StringIO())
        if not direct:  # a filter: only the logging module may apply it
            handler.addFilter(logging.Filter())
        assert (logger._plain_access_stream() is handler) is direct
        logger.access(resp, None, environ, took)
        handler.filters.clear()
        return handler.stream.getvalue()

    assert (
        line(direct=True)
        == line(direct=False)
        == '127.0.0.1 "POST /invocations HTTP/1.1" 200 11 3ms\n'
    )


@pytest.mark.parametrize(
    ("sent", "inline"),
    [
        (b"POST /invocations HTTP/1.1\r\nContent-Length: 5\r\n\r\n37,82", True),
        (b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"POST /invocations HTTP/1.1\r\nContent-Length: 6\r\n\r\n37,82", False),  # incomplete
        (b"POST /invocations HTTP/1.1\r\nContent-Length: 5\r\n", False),  # headers incomplete
        (b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n37,82\r\n", False),
        (b"POST /invocations HTTP/1.1\r\n\r\n", False),  # a body without a length
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", False),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", False),  # gunicorn's 400, in the pool
        (b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + b"1" * 5000, False),  # large
        (b"POST /invocations HTTP/1.1\r\nContent-Length: 1\r\n\r\n1GET /ping HTTP/1.1\r\n", True),
    ],
)
def test_only_a_small_request_already_complete_in_the_socket_is_answered_inline(sent, inline):
    client, worker_end = socket.socketpair()
    try:
        client.sendall(sent)
        assert server._complete_small_request(worker_end, 4096) is inline
        assert worker_end.recv(65536) == sent  # only peeked: everything still there
    finally:
        client.close()
        worker_end.close()


def test_a_client_that_never_reads_its_answers_cannot_stall_the_worker(trained):
    """Small requests are answered on the worker's event loop: a client that keeps sending them
    without reading the answers fills its buffers, and the worker must close it (after
    INLINE_IO_TIMEOUT) rather than wait, so a one-worker server still answers others."""
    base, booster = trained
    srv = start_serve(base, booster, SAGEMAKER_MODEL_SERVER_WORKERS="1", SAGEMAKER_BATCH="true")
    try:
        (worker,) = booted_workers(srv.proc.pid, 1)
        body = b"1,1\n" * 1000  # a 4 KB request, a ~12 KB answer
        request = (
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        hog = socket.socket()
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.settimeout(5)
        hog.connect(("127.0.0.1", srv.port))
        started = time.monotonic()
        with contextlib.suppress(OSError):
            for _ in range(3000):  # stops when the server closes it (or stops reading)
                hog.sendall(request)
                time.sleep(0.001)
        assert time.monotonic() - started < 30
        assert srv.request("GET", "/ping", timeout=10).status == 200
        assert srv.invoke(b"37,82", "text/csv").status == 200
        assert worker_pids(srv.proc.pid) == {worker}
        hog.close()
    finally:
        stop_serve(srv)

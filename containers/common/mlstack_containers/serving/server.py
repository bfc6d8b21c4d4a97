"""``serve``: gunicorn, pre-forked, running :class:`~mlstack_containers.serving.app.InferenceApp`.

Why gunicorn with ``gthread`` workers (measurements in ``bench/README.md``):

* one process per CPU, so predictions and parsing run in parallel despite the GIL;
* each worker loads the model itself after the fork: XGBoost's OpenMP thread pool does not
  survive a fork, so the master never calls XGBoost; a worker that cannot load the model exits
  with gunicorn's boot-error status, which stops the whole server with the reason on stderr;
* two threads per worker, so ``/ping`` is answered in milliseconds while the other thread
  parses a 6 MB batch, and keep-alive connections (SageMaker's front end reuses them); a new
  connection goes to the worker holding fewest (:class:`BalancedThreadWorker`);
* SIGTERM: the master stops accepting, lets in-flight requests finish within
  ``MLSTACK_GRACEFUL_TIMEOUT`` seconds, then exits; a crashed or stuck worker is replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import gunicorn.http.message
import gunicorn.http.parser
import gunicorn.http.wsgi
import gunicorn.util
import numpy as np
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from gunicorn.http.body import ChunkedReader
from gunicorn.http.message import Request
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import ThreadWorker

from mlstack_containers import model_io
from mlstack_containers.serving.app import BodyTooLarge, InferenceApp, Predictor
from mlstack_containers.serving.config import ConfigError, ServerConfig, cpu_count
from mlstack_containers.serving.memory import reuse_freed_memory

log = logging.getLogger("mlstack.serving")

WORKER_BOOT_ERROR = 3  # gunicorn's Arbiter.WORKER_BOOT_ERROR: halt instead of respawning

ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'


class QuietPingLogger(Logger):
    """gunicorn's logger without an access-log line per health check, and a cheaper line.

    gunicorn's own ``access`` builds a dictionary of every request header, response header
    and environ variable (and a timestamp) for any format, ~17 µs a request; this writes the
    fields of :data:`ACCESS_LOG_FORMAT` directly, the same text. Where the access log is
    gunicorn's own plain stream (``accesslog="-"``: one handler, format ``%(message)s``, no
    filters), the line is written to that stream under the handler's lock, as the handler
    would write it, without a ``LogRecord`` (~3 µs instead of ~16).
    """

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if environ.get("PATH_INFO") == "/ping" or not self.access_log_enabled:
            return
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        try:
            fields = (
                environ.get("REMOTE_ADDR", "-"),
                environ["REQUEST_METHOD"],
                environ["RAW_URI"],
                environ["SERVER_PROTOCOL"],
                status,
                getattr(resp, "sent", None),
                request_time.seconds * 1000 + request_time.microseconds // 1000,
            )
            handler = self._plain_access_stream()
            if handler is None:
                self.access_log.info(_ACCESS_LINE, *fields)
                return
            line = _ACCESS_LINE % fields + handler.terminator
            with handler.lock:
                handler.stream.write(line)
                handler.stream.flush()
        except Exception:
            self.error(traceback.format_exc())

    def _plain_access_stream(self) -> logging.StreamHandler[Any] | None:
        """The access log's one plain stream handler, when writing to it directly is what
        ``access_log.info`` would do; else None."""
        log = self.access_log
        handlers = log.handlers
        if len(handlers) != 1 or log.filters or log.propagate:
            return None
        handler = handlers[0]
        if (
            type(handler) is not logging.StreamHandler
            or handler.filters
            or handler.lock is None
            or handler.formatter is None
            or handler.formatter._fmt != "%(message)s"
            or not log.isEnabledFor(logging.INFO)
            or handler.level > logging.INFO
        ):
            return None
        return handler


_ACCESS_LINE = '%s "%s %s %s" %s %s %dms'


class BalancedThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's ``gthread`` worker that leaves a new connection to a less loaded worker.

    Every worker is woken for a new connection and the first to call ``accept`` gets it; a
    keep-alive connection then stays with that worker. The worker that just served the last
    requests tends to be first, so four new connections often all went to one worker (one
    CPU) while the other idled: 3,100 instead of 5,800 requests/s in bench/serving.py, and two
    6 MB batch clients on one worker half the rows/s.

    The workers publish how many connections each holds in a small shared array
    (:class:`WorkerLoads`, filled in by the master before it forks each worker). A worker that
    holds more than another live worker does not accept: it leaves the connection pending for
    up to ``MAX_DEFER`` seconds, checking every millisecond, so that the less loaded worker
    takes it, and accepts it itself after that (the other may be stuck or starved of CPU).
    Without the array (a worker beyond the slots) it waits ``ACCEPT_DELAY`` seconds per
    connection it holds, at most ``MAX_DELAY``, before accepting.
    """

    ACCEPT_DELAY = 0.0002
    INLINE_MAX_BYTES = 4096
    INLINE_IO_TIMEOUT = 1.0
    MAX_DELAY = 0.002
    MAX_DEFER = 0.05
    DEFER_STEP = 0.001

    loads: WorkerLoads | None = None
    slot: int | None = None
    _defer_start = 0.0
    _defer_last = -1.0

    def notify(self) -> None:  # every turn of the worker's event loop
        super().notify()
        self._publish()

    def _publish(self) -> None:
        if self.loads is not None and self.slot is not None:
            self.loads.set(self.slot, self.nr_conns)

    def accept(self, listener: Any) -> None:
        if self.loads is not None and self.slot is not None:
            self._publish()
            if self.nr_conns > self.loads.least_other(self.slot) and self._defer():
                return
        elif self.nr_conns:
            time.sleep(min(self.MAX_DELAY, self.nr_conns * self.ACCEPT_DELAY))
        super().accept(listener)
        self._publish()

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection has a request: a small one already complete in the socket
        (a one-record request) is answered right here, on the event loop's thread.

        gunicorn hands every request to a pool thread and the connection back through a pipe:
        two thread switches, a pipe write and read, and two ``epoll`` rounds, as much CPU as
        the one-record request itself. A request whose headers and body (at most
        ``INLINE_MAX_BYTES``, a ``Content-Length`` and no chunked framing) are all in the
        socket's buffer reads without waiting and is answered in well under a millisecond;
        anything else (a new connection, a large or incomplete body) goes to the pool as
        before, so a batch never holds up ``/ping``. Each request is handled exactly as
        gunicorn handles it (``handle``, then ``finish_request``).
        """
        if not self.alive or not _complete_small_request(client, self.INLINE_MAX_BYTES):
            super().on_client_socket_readable(conn, client)
            return
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        done: Future[Any] = Future()
        try:
            # The event loop must never wait on one client: a client that stopped reading
            # its answers (its buffers full) gets its connection closed after
            # INLINE_IO_TIMEOUT instead of holding the worker until gunicorn kills it.
            _io_timeout(client, self.INLINE_IO_TIMEOUT)
            done.set_result(self.handle(conn))
        except Exception as exc:  # as the pool's future would carry it: the connection closes
            done.set_exception(exc)
        finally:
            _io_timeout(client, 0)
        self.finish_request(conn, done)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """A client that did not send a request's head in time (:class:`HeadTimeout`) gets
        408 and the connection closes; anything else as gunicorn answers it."""
        if not isinstance(exc, HeadTimeout):
            super().handle_error(req, client, addr, exc)
            return
        self.log.warning("Request timeout from ip=%s: %s", (addr or ("",))[0], exc)
        with contextlib.suppress(OSError):
            gunicorn.util.write_error(client, 408, "Request Timeout", str(exc))

    def _defer(self) -> bool:
        """True while this pending connection is left to another worker (not too long)."""
        now = time.monotonic()
        if now - self._defer_last > 10 * self.DEFER_STEP:  # a new pending connection
            self._defer_start = now
        self._defer_last = now
        if now - self._defer_start >= self.MAX_DEFER:
            return False
        time.sleep(self.DEFER_STEP)  # the listener stays readable: back here next turn
        return True


def _io_timeout(sock: Any, seconds: float) -> None:
    """Kernel send and receive timeouts (``SO_SNDTIMEO``/``SO_RCVTIMEO``; 0: none) on a socket
    that Python treats as blocking: a send or receive that would wait longer fails with
    ``EAGAIN``, which gunicorn's ``handle`` answers by closing the connection."""
    whole = int(seconds)
    value = struct.pack("ll", whole, int((seconds - whole) * 1e6))  # struct timeval
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)


_HEADERS_END = b"\r\n\r\n"


def _complete_small_request(sock: Any, limit: int) -> bool:
    """Whether the socket's buffer already holds one whole request of at most ``limit``
    bytes: the header block and a body of the ``Content-Length`` it announces (no chunked
    framing). Looked at with ``MSG_PEEK``: nothing is consumed."""
    try:
        data = sock.recv(limit + 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return False
    end = data.find(_HEADERS_END)
    if end < 0 or len(data) > limit:
        return False
    head = data[:end].lower()
    if b"transfer-encoding" in head or head.count(b"content-length:") > 1:
        return False
    found = head.find(b"content-length:")
    if found < 0:
        return not head.startswith((b"post", b"put", b"patch"))  # no body: GET /ping
    value = head[found + 15 :].split(b"\r\n", 1)[0].strip()
    if not value.isdigit():
        return False  # gunicorn decides what is wrong with it (in a pool thread)
    return len(data) >= end + len(_HEADERS_END) + int(value)


class WorkerLoads:
    """Connections held by each worker, and large requests each is answering, in memory
    shared by the master and its workers.

    One slot per worker; the master gives each new worker a free slot before forking it
    (gunicorn's ``pre_fork`` hook) and marks the slot of a worker that exited as empty
    (``child_exit``), so a dead worker never looks idle, nor busy.
    """

    EMPTY = 2**31 - 1

    def __init__(self, slots: int, cpus: int = 1) -> None:
        self.cpus = cpus
        # An anonymous shared mapping (no file, not even in /dev/shm), inherited by the forks.
        size = ctypes.sizeof(ctypes.c_int) * slots
        self._memory = mmap.mmap(-1, 2 * size)
        self._counts = (ctypes.c_int * slots).from_buffer(self._memory)
        self._counts[:] = [self.EMPTY] * slots
        self._batches = (ctypes.c_int * slots).from_buffer(self._memory, size)

    def set(self, slot: int, count: int) -> None:
        self._counts[slot] = count

    def least_other(self, slot: int) -> int:
        return min((c for i, c in enumerate(self._counts) if i != slot), default=self.EMPTY)

    def batches(self) -> int:
        """Large requests in progress in all workers."""
        return sum(self._batches)

    def batch_count(self, slot: int) -> BatchCount:
        """The :class:`~.app.SpareCpus` of the worker in ``slot``."""
        return BatchCount(self, slot)

    def pre_fork(self, arbiter: Any, worker: Any) -> None:
        taken = {getattr(w, "slot", None) for w in arbiter.WORKERS.values()}
        free = [i for i in range(len(self._counts)) if i not in taken]
        if free and isinstance(worker, BalancedThreadWorker):
            worker.loads, worker.slot = self, free[0]
            self._counts[free[0]] = 0
            self._batches[free[0]] = 0

    def child_exit(self, arbiter: Any, worker: Any) -> None:
        slot = getattr(worker, "slot", None)
        if slot is not None:
            self._counts[slot] = self.EMPTY
            self._batches[slot] = 0  # it died answering one: not busy any more


class BatchCount:
    """One worker's :class:`~.app.SpareCpus`: its large requests in progress, counted in its
    slot of :class:`WorkerLoads`, and whether all workers together answer fewer than there
    are CPUs. Only this worker writes its slot (its threads under a lock)."""

    def __init__(self, loads: WorkerLoads, slot: int) -> None:
        self._loads, self._slot = loads, slot
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self._add(1)
        try:
            yield
        finally:
            self._add(-1)

    def _add(self, step: int) -> None:
        with self._lock:
            self._loads._batches[self._slot] += step

    def spare(self) -> bool:
        return self._loads.batches() < self._loads.cpus


class HeadTimeout(Exception):
    """A client stopped sending a request's head (request line and headers) part way."""


class DeadlineUnreader(SocketUnreader):  # type: ignore[misc]
    """gunicorn's socket reader with a deadline while a request's head is read.

    gunicorn reads the head in a pool thread with no timeout: a client that sends part of the
    head and stops holds that thread until it hangs up, and two such clients per worker (its
    two threads) stop the server answering anyone (a new connection waits for a thread
    forever). While ``deadline`` is set (by :class:`TimedHeadRequest`), each read waits at
    most until then and a head not complete by then raises :class:`HeadTimeout` (answered
    408). The body keeps the application's own per-read timeout (``MLSTACK_BODY_TIMEOUT``).
    """

    deadline: float | None = None

    def chunk(self, size_hint: int | None = None) -> bytes:
        if self.deadline is None:
            return bytes(super().chunk(size_hint))
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise HeadTimeout("the client did not send the request line and headers in time")
        previous = self.sock.gettimeout()
        self.sock.settimeout(remaining)
        try:
            return bytes(super().chunk(size_hint))
        except TimeoutError:
            raise HeadTimeout("the client stopped sending the request line and headers") from None
        finally:
            with contextlib.suppress(OSError):
                self.sock.settimeout(previous)


class TimedHeadRequest(Request):  # type: ignore[misc]
    """gunicorn's request, whose head must arrive within ``head_timeout`` seconds of its
    first byte (the connection is only handed to a thread once it is readable)."""

    head_timeout = 10.0

    def __init__(self, cfg: Any, unreader: Any, peer_addr: Any, req_number: int = 1) -> None:
        timed = isinstance(unreader, DeadlineUnreader)
        if timed:
            unreader.deadline = time.monotonic() + self.head_timeout
        try:
            super().__init__(cfg, unreader, peer_addr, req_number)
        finally:
            if timed:
                unreader.deadline = None


def bound_head_time(seconds: float) -> None:
    """Make gunicorn's request parser (in this process) give a request's head ``seconds``
    in all (:class:`TimedHeadRequest`); gunicorn has no setting for it. Only for
    :class:`BalancedThreadWorker`, which answers :class:`HeadTimeout` with a 408."""
    TimedHeadRequest.head_timeout = seconds
    gunicorn.http.parser.SocketUnreader = DeadlineUnreader  # type: ignore[attr-defined]
    gunicorn.http.parser.RequestParser.mesg_class = TimedHeadRequest


class BoundedChunkedReader(ChunkedReader):  # type: ignore[misc]
    """gunicorn's chunked-body reader that refuses a chunk larger than the payload limit.

    gunicorn accepts any chunk size (``ffffffffffffffff`` included) and waits for that many
    bytes; a client that announces a huge chunk and sends a few bytes would hold a thread
    until it hangs up. Here the announced size alone decides: over the limit, the request is
    answered 413 at once (:class:`~.app.BodyTooLarge`).
    """

    max_chunk = 6 * 1024 * 1024

    def parse_chunk_size(self, unreader: Any, data: Any = None) -> tuple[int, Any]:
        size, rest = super().parse_chunk_size(unreader, data)
        if size > self.max_chunk:
            raise BodyTooLarge(
                f"a chunk of {size} bytes exceeds the payload limit of {self.max_chunk} bytes"
            )
        return size, rest


def bound_chunks(limit: int) -> None:
    """Make gunicorn's request parser (in this process) read chunked bodies with
    :class:`BoundedChunkedReader`. gunicorn has no setting for its body readers; its
    ``Request.set_body_reader`` looks the class up in ``gunicorn.http.message``."""
    BoundedChunkedReader.max_chunk = limit
    gunicorn.http.message.ChunkedReader = BoundedChunkedReader  # type: ignore[attr-defined]


_close_graceful = gunicorn.util.close_graceful


def linger_on_close(limit: int) -> None:
    """Let gunicorn's lingering close read up to ``limit`` bytes (its default: 64 KiB).

    gunicorn answers a request it cannot parse (a malformed ``Content-Length``, a bad header)
    itself, then half-closes and reads what the client still sends before closing, so that the
    client gets the 400 rather than a reset; past 64 KiB it closes with unread data, which
    resets the connection. Here it reads up to the payload limit's drain (within its own 2 s).

    The lingering itself (up to 2 s for a client that neither sends nor closes) runs in a
    closing thread when gunicorn calls it on the worker's event loop (its ``finish_request``):
    the loop answers other connections meanwhile instead of stalling for each slow client.
    """
    closer: list[ThreadPoolExecutor] = []

    def close_graceful(sock: Any, timeout: float = 2.0, max_drain: int = 65536) -> None:
        drain = max(max_drain, limit)
        if threading.current_thread() is not threading.main_thread():
            _close_graceful(sock, timeout=timeout, max_drain=drain)
            return
        if not closer:
            closer.append(ThreadPoolExecutor(LINGER_THREADS, thread_name_prefix="linger"))
        closer[0].submit(_close_graceful, sock, timeout=timeout, max_drain=drain)

    gunicorn.util.close_graceful = close_graceful


LINGER_THREADS = 4


class OneWriteResponse(gunicorn.http.wsgi.Response):  # type: ignore[misc]
    """gunicorn's response writer that sends the header block with the first piece of the body.

    gunicorn sends the headers and then each piece of the body with a ``sendall`` of its own:
    two sends, two TCP segments and two trips through the kernel's TCP stack for every
    one-record answer. Here the headers are held until the first piece of the body (or the end
    of the response) and go out in the same send; a piece over ``JOIN_LIMIT`` bytes is sent on
    its own after them rather than copied. Nothing else changes: the same bytes, in order.
    """

    JOIN_LIMIT = 64 * 1024
    _held = b""

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        lines = self.default_headers()
        lines.extend(f"{k}: {v}\r\n" for k, v in self.headers)
        self._held = ("".join(lines) + "\r\n").encode("latin-1")
        self.headers_sent = True

    def _flush_headers(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            gunicorn.util.write(self.sock, held)

    def _emit_body(self, data: bytes) -> None:
        if self._held and not self.chunked and len(data) <= self.JOIN_LIMIT:
            data, self._held = self._held + data, b""
        self._flush_headers()
        super()._emit_body(data)

    def sendfile(self, respiter: Any) -> bool:
        return False  # the app never answers with a file; write() sends what it iterates

    def close(self) -> None:
        if not self.headers_sent:
            self.send_headers()
        self._flush_headers()  # a response without a body (HEAD, an empty answer)
        super().close()


_http_date = gunicorn.util.http_date


def _cached_http_date(timestamp: float | None = None) -> str:
    """gunicorn's ``Date`` header value, formatted once a second instead of per response
    (``email.utils.formatdate``: a few µs of each one-record request); the same text."""
    global _date
    if timestamp is not None:
        return str(_http_date(timestamp))
    now = int(time.time())
    second, text = _date  # one tuple: threads see the old pair or the new one, never a mix
    if second != now:
        second, text = _date = (now, str(_http_date(now)))
    return text


_date: tuple[int | None, str] = (None, "")


def lighter_responses() -> None:
    """Make gunicorn (in this process) write responses with :class:`OneWriteResponse` and a
    cached ``Date``. gunicorn has no settings for either; ``gunicorn.http.wsgi.create`` looks
    its response class up in that module, and the headers call ``gunicorn.util.http_date``."""
    gunicorn.http.wsgi.Response = OneWriteResponse
    gunicorn.util.http_date = _cached_http_date


WORKER_CLASSES = {"gthread": f"{__name__}.BalancedThreadWorker", "sync": "sync"}


class Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.loads = WorkerLoads(config.workers, cpus=cpu_count())
        super().__init__()

    def load_config(self) -> None:
        c = self.config
        settings = {
            "bind": [f"{c.host}:{c.port}"],
            "workers": c.workers,
            "worker_class": WORKER_CLASSES[c.worker_class],
            "threads": c.threads,
            "timeout": c.timeout,
            "graceful_timeout": c.graceful_timeout,
            "keepalive": 60,  # longer than SageMaker's front end idles a connection
            "loglevel": c.log_level,
            "errorlog": "-",
            "accesslog": "-" if c.access_log else None,
            "access_log_format": ACCESS_LOG_FORMAT,
            "logger_class": QuietPingLogger,
            "proc_name": "mlstack-serve",
            "post_worker_init": _warm_up,
            "pre_fork": self.loads.pre_fork,
            "child_exit": self.loads.child_exit,
            "control_socket_disable": True,
        }
        known = self.cfg.settings
        for key, value in settings.items():
            if key in known:
                self.cfg.set(key, value)

    def load(self) -> InferenceApp:
        """Runs in each worker process, after the fork."""
        bound_chunks(self.config.max_payload_bytes)
        if self.config.worker_class == "gthread":
            bound_head_time(self.config.body_timeout)
        lighter_responses()
        linger_on_close(4 * self.config.max_payload_bytes)
        started = time.monotonic()
        try:
            predictor = Predictor.load(self.config)
            app = InferenceApp(predictor, self.config)
        except model_io.ModelError as exc:
            log.error("cannot load the model: %s", exc)
            raise SystemExit(WORKER_BOOT_ERROR) from None  # gunicorn then stops, status 3
        log.info(
            "model loaded from %s in %.2fs: %d features, %d XGBoost threads",
            self.config.model_dir,
            time.monotonic() - started,
            predictor.num_features,
            self.config.predict_threads,
        )
        if predictor.schema is not None:
            log.info(
                "schema.json: %s, %d features; raw records answered with %s",
                predictor.schema.problem_type,
                len(predictor.schema.features),
                "class labels" if predictor.schema.classes else "scores",
            )
        return app


def _warm_up(worker: Any) -> None:
    app: InferenceApp = worker.wsgi
    loads, slot = getattr(worker, "loads", None), getattr(worker, "slot", None)
    if loads is not None and slot is not None:  # a gthread worker: pipeline only on a spare CPU
        app.cpus = loads.batch_count(slot)
    # The first prediction of a process allocates XGBoost's buffers: do it before traffic.
    app.predictor.predict(np.zeros((1, app.predictor.num_features), dtype=np.float32))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "serve":
        args = args[1:]  # `docker run IMAGE serve` passes the program name on
    if args:
        sys.exit(f"serve: unexpected arguments {args!r}; configure it with environment variables")
    try:
        config = ServerConfig.from_env()
    except ConfigError as exc:
        sys.exit(f"serve: {exc}")
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        # Before any worker starts: a model the server's user cannot read (a model.tar.gz
        # unpacked with modes only root may read) stops it with this one line, not with a
        # worker boot error per worker.
        model_io.check_readable(config.model_dir)
    except model_io.ModelError as exc:
        sys.exit(f"serve: cannot load the model: {exc}")
    reuse_freed_memory()
    log.info(
        "serving %s on %s:%d with %d %s workers x %d threads",
        config.model_dir,
        config.host,
        config.port,
        config.workers,
        config.worker_class,
        config.threads,
    )
    Server(config).run()

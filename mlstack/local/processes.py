"""The processes of local mode: the images' programs started, watched and stopped.

``serve`` (transform jobs, endpoints, ``mlstack local serve``) behind :class:`ServeProcess`, the
hosts of a training job waited on together (:func:`_wait_hosts`), and every program's output
pumped line by line into its log and the run's display (:func:`pump_lines`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from mlstack.local.assembly import Image
from mlstack.local.loopback import free_port
from mlstack.local.loopback import request as _request

LogSink = Callable[[str, str], None]  # (source, line)

# --- children that die with their parent -------------------------------------------------------
# Every program runs in its own session (a Ctrl-C on the terminal reaches only this process,
# which stops its jobs as Step Functions does), so no terminal signal ends a child: on Linux the
# kernel ends it when this process dies however it dies, SIGKILL included (prctl(2)
# PR_SET_PDEATHSIG). gunicorn's workers end when their master is gone (they watch getppid()).
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _die_with(parent: int) -> Callable[[], None]:
    def in_child() -> None:  # between fork and exec: nothing that allocates or locks
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return in_child


class _Spawner:
    """One long-lived thread forks every child. The parent-death signal fires when the
    *thread* that forked the child ends (prctl(2)), and jobs start their programs from a
    state's worker thread, which ends long before the endpoint it started."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[list[str], dict[str, Any], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._owner = 0
        self._lock = threading.Lock()
        self.children: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()
        self.refusing = ""  # why no program starts any more (a stopped command), or ""

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self.refusing:
                raise RuntimeError(f"not started: {self.refusing}")
            if self._thread is None or not self._thread.is_alive() or self._owner != os.getpid():
                self._owner = os.getpid()
                self._thread = threading.Thread(
                    target=self._serve, name="mlstack-spawner", daemon=True
                )
                self._thread.start()
        done: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((list(args), kwargs, done))
        proc = done.result()
        self.children.add(proc)
        return proc

    def _serve(self) -> None:
        while True:
            args, kwargs, done = self._requests.get()
            try:
                done.set_result(
                    subprocess.Popen(
                        args, start_new_session=True, preexec_fn=_die_with(os.getpid()), **kwargs
                    )
                )
            except BaseException as err:  # handed to the caller's thread
                done.set_exception(err)


_SPAWNER = _Spawner()


def spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(args, **kwargs)`` in a session of its own, ended by the kernel if this
    process dies first, and known to :func:`end_children`."""
    return _SPAWNER.popen(args, **kwargs)


def end_children(grace: float = 5, *, refuse_new: str = "") -> int:
    """End every program this process started that still runs, with the processes they
    started (each leads its own process group): SIGTERM, then SIGKILL after ``grace`` s.
    ``refuse_new``: from now on :func:`spawn` raises RuntimeError with this reason (a stopped
    command: a job's thread must not start a program after its jobs were stopped).
    Returns how many were running."""
    if refuse_new:
        with _SPAWNER._lock:
            _SPAWNER.refusing = refuse_new
    running = [proc for proc in list(_SPAWNER.children) if proc.poll() is None]
    for proc in running:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
        _signal_group(proc.pid, signal.SIGKILL)  # what is left of its group (workers)
        proc.wait()
    return len(running)


def stopping() -> str:
    """Why a stop began (:func:`end_children`'s ``refuse_new``), or "" while none has: a
    program started before the stop must not take over afterwards (an endpoint's new model
    server)."""
    return _SPAWNER.refusing


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached a command (``signum``), raised in its main thread by
    :func:`interruptible`'s handler: the command stops what it started and says so. A
    BaseException, as KeyboardInterrupt is, so no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def interruptible() -> Iterator[None]:
    """Within: SIGINT (Ctrl-C) and SIGTERM raise :class:`Interrupted` in the main thread."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """A second Ctrl-C while a command stops its jobs and saves the account would leave both
    half done: within, SIGINT and SIGTERM are ignored (every step there is bounded in time)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _wait_hosts(
    procs: Sequence[subprocess.Popen[bytes]], limit: float | None, interrupt: float | None = None
) -> tuple[bool, int, bool]:
    """Wait for every host's process; a host that fails ends the others (SageMaker stops a job
    whose host failed). ``interrupt``: SIGTERM every host after that many seconds (a spot
    interruption). Returns (ran past ``limit``, index of the host to report: the first that
    failed, else 0, interrupted). An interruption is one whatever the hosts' exit statuses:
    SageMaker reclaims the instances, so a program that had not yet set its SIGTERM handler
    (death by the signal) starts again like one that saved a checkpoint and exited 0."""
    now = time.monotonic()
    deadline = None if limit is None else now + limit
    interrupt_at = None if interrupt is None else now + interrupt
    failed: int | None = None
    stopped = interrupted = False
    while any(proc.poll() is None for proc in procs):
        failed = next((i for i, proc in enumerate(procs) if proc.poll() not in (None, 0)), None)
        late = deadline is not None and time.monotonic() > deadline
        interrupted = (
            failed is None and interrupt_at is not None and time.monotonic() > interrupt_at
        )
        if failed is not None or late or interrupted:
            stopped = late and failed is None and not interrupted
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            break
        time.sleep(0.05)
    if failed is None:
        failed = next((i for i, proc in enumerate(procs) if proc.returncode != 0), 0)
    return stopped, failed, interrupted


@dataclass
class ServeProcess:
    """The image's ``serve`` program on a loopback port."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    reader: threading.Thread | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] = {},
        timeout: float = 60,
    ) -> tuple[int, dict[str, str], bytes]:
        return _request(self.port, method, path, body, headers, timeout)

    def stop(self, grace: float = 25) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)  # the master and its workers
                self.proc.wait()
        if self.reader is not None:
            self.reader.join(5)


def pump_lines(
    stream: Any,
    log_path: Path,
    source: str,
    sink: LogSink | None,
    on_line: Callable[[str], None] | None = None,
) -> None:
    with log_path.open("a", encoding="utf-8") as log:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            log.write(line + "\n")
            log.flush()
            if on_line is not None:
                on_line(line)
            if sink is not None:
                sink(source, line)


def start_serve(
    image: Image,
    base: Path,
    *,
    environment: Mapping[str, str] = {},
    log_path: Path,
    source: str,
    sink: LogSink | None = None,
    port: int | None = None,
    ready_timeout: float = 120,
) -> ServeProcess:
    """Start ``serve`` for the model in ``base/model``; return once ``/ping`` answers 200."""
    port = port or free_port()
    env = {
        **os.environ,
        **environment,
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MLSTACK_BIND_HOST": "127.0.0.1",
        "MLSTACK_PYTHON": sys.executable,
        "PYTHONUNBUFFERED": "1",
    }
    if image.python_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(image.python_path), os.environ.get("PYTHONPATH", "")) if p
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = spawn(
        [str(image.program("serve"))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=base,
    )
    server = ServeProcess(proc, port, log_path)
    server.reader = threading.Thread(
        target=pump_lines, args=(proc.stdout, log_path, source, sink), daemon=True
    )
    server.reader.start()
    try:
        _wait_ready(server, ready_timeout)
    except BaseException:  # not ready, or the command interrupted meanwhile: none outlives it
        server.stop(grace=5)
        raise
    return server


def _wait_ready(server: ServeProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            tail = server.log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
            raise RuntimeError(f"serve exited with status {server.proc.returncode}: {tail.strip()}")
        try:
            if server.request("GET", "/ping", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"serve did not answer /ping within {timeout:.0f} s")

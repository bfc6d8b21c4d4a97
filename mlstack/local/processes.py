"""The processes of local mode: the images' programs started, watched and stopped.

``serve`` (transform jobs, endpoints, ``mlstack local serve``) behind :class:`ServeProcess`, the
hosts of a training job waited on together (:func:`_wait_hosts`), and every program's output
pumped line by line into its log and the run's display (:func:`pump_lines`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack.local.assembly import Image
from mlstack.local.loopback import free_port
from mlstack.local.loopback import request as _request

LogSink = Callable[[str, str], None]  # (source, line)


def _wait_hosts(
    procs: Sequence[subprocess.Popen[bytes]], limit: float | None, interrupt: float | None = None
) -> tuple[bool, int, bool]:
    """Wait for every host's process; a host that fails ends the others (SageMaker stops a job
    whose host failed). ``interrupt``: SIGTERM every host after that many seconds (a spot
    interruption). Returns (ran past ``limit``, index of the host to report: the first that
    failed, else 0, interrupted)."""
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
    return stopped, failed, interrupted and procs[failed].returncode == 0


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
                self.proc.kill()
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
    proc = subprocess.Popen(
        [str(image.program("serve"))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=base,
        start_new_session=True,
    )
    server = ServeProcess(proc, port, log_path)
    server.reader = threading.Thread(
        target=pump_lines, args=(proc.stdout, log_path, source, sink), daemon=True
    )
    server.reader.start()
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            server.stop()
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
            raise RuntimeError(f"serve exited with status {proc.returncode}: {tail.strip()}")
        try:
            if server.request("GET", "/ping", timeout=2)[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"serve did not answer /ping within {ready_timeout:.0f} s")

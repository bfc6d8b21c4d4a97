"""Runs the containers' Python programs (``python -m mlstack_containers.<program>``) for tests,
each in a process of its own forked from this one, which has imported the heavy third-party
libraries once (tests/programs.py starts it; nothing here is run by pytest).

A program's run costs ~2 s of CPU before its first line: importing xgboost imports scikit-learn
and scipy (``python -X importtime -m mlstack_containers.training``). A forked child starts with
them imported and runs the program as ``-m`` would: ``runpy.run_module(..., run_name="__main__")``
with its own ``sys.argv``, environment and working directory, then ends as the interpreter ends
after ``-m`` (atexit's functions, stdout and stderr flushed; an uncaught exception prints its
traceback and exits 1, ``SystemExit`` gives its code) but without tearing down the copied
modules one by one (0.4 s a run). The programs' own modules (``mlstack_containers``) are never
imported here, so each child imports them afresh.

Two ways in, one request at a time each:

- ``pipe``: a JSON line on stdin (``{"module", "args", "env", "cwd", "stdout", "stderr"}``),
  answered on the response fd (argv[2]) with ``pid N`` when the child starts and ``status S``
  (``os.waitpid``'s status) when it ends; stdin from /dev/null, stdout and stderr to files.
- ``socket``: tests/python_shim.py, started in place of python by local mode, connects to the
  UNIX socket (argv[2]) and sends its stdin, stdout and stderr with a JSON request
  (``{"module", "args", "env", "cwd", "shim"}``); the child leads a session of its own and ends
  it, with every process in it, when the shim ends (the shim is what local mode signals and
  kills). The server ends when its stdin, a pipe from the test process, closes.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import runpy
import select
import signal
import socket
import sys
import threading
from typing import Any, NoReturn

# Third-party only, never mlstack_containers; what the programs import at their start.
PRELOAD = ("numpy", "scipy.sparse", "sklearn", "xgboost", "pyarrow", "pyarrow.parquet", "pandas")


def become(request: dict[str, Any], fds: tuple[int, int, int], close: list[int]) -> NoReturn:
    """In the forked child: become the program's process, run it, and leave as the
    interpreter leaves (never returns to the server's loop)."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in {*fds, *close} - {0, 1, 2}:
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.path[0] = os.getcwd()  # as `python -m` puts the working directory first
    sys.argv = ["-m", *request["args"]]
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own stdin
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    # The interpreter's exit without its module teardown (a fork's copy of the server's
    # modules): atexit's functions (logging's flush among them), then stdout and stderr.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve_pipe(response: int) -> None:
    for line in sys.stdin:
        request = json.loads(line)
        files = [
            os.open(request[key], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            for key in ("stdout", "stderr")
        ]
        null = os.open(os.devnull, os.O_RDONLY)
        pid = os.fork()
        if pid == 0:
            become(request, (null, files[0], files[1]), [response])
        for fd in (null, *files):
            os.close(fd)
        os.write(response, f"pid {pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        os.write(response, f"status {status}\n".encode())


def _end_with(shim: int) -> None:
    """In a socket child: when the shim ends (killed with its group, or its parent's death
    signal), end this session with everything in it, as the kill would have."""
    watch = os.pidfd_open(shim)

    def wait() -> None:
        select.select([watch], [], [])
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=wait, daemon=True).start()


def serve_socket(path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    running: dict[int, socket.socket] = {}  # child pid -> its shim's connection
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [], 0.05)
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1):
            return  # the test process ended (its end of the pipe closed), atexit or not
        if listener in ready:
            conn, _ = listener.accept()
            message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
            request = json.loads(message)
            pid = os.fork()
            if pid == 0:
                os.setsid()
                _end_with(request["shim"])
                become(request, (fds[0], fds[1], fds[2]), [listener.fileno(), conn.fileno()])
            for fd in fds:
                os.close(fd)
            conn.sendall(f"pid {pid}\n".encode())
            running[pid] = conn
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = running.pop(pid)
            with contextlib.suppress(OSError):  # the shim is gone (killed): nobody to tell
                conn.sendall(f"status {status}\n".encode())
            conn.close()


if __name__ == "__main__":
    for module in PRELOAD:
        __import__(module)
    if sys.argv[1] == "pipe":
        serve_pipe(int(sys.argv[2]))
    else:
        serve_socket(sys.argv[2])

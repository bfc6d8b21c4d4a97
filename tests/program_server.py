"""Runs the containers' Python programs (``python -m mlstack_containers.<program>``) for tests,
each in a process of its own forked from this one, which has imported the heavy third-party
libraries once (tests/programs.py starts it; nothing here is run by pytest).

A program's run costs ~2 s of CPU before its first line: importing xgboost imports scikit-learn
and scipy (``python -X importtime -m mlstack_containers.training``). A forked child starts with
them imported and runs the program as ``-m`` would: ``runpy.run_module(..., run_name="__main__")``
with its own ``sys.argv``, environment, working directory, stdin from /dev/null and stdout and
stderr in files, then ends as the interpreter ends after ``-m`` (atexit, flush; an uncaught
exception prints its traceback and exits 1, ``SystemExit`` gives its code). The programs'
own modules (``mlstack_containers``) are never imported here, so each child imports them afresh.

Protocol, one request at a time: a JSON line on stdin
(``{"module", "args", "env", "cwd", "stdout", "stderr"}``), answered on the response fd (argv[1])
with ``pid N`` when the child starts and ``status S`` (``os.waitpid``'s status) when it ends.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys

# Third-party only, never mlstack_containers; what the programs import at their start.
PRELOAD = ("numpy", "scipy.sparse", "sklearn", "xgboost", "pyarrow", "pyarrow.parquet", "pandas")


def child(request: dict[str, object]) -> None:
    """In the forked child: become the program's process, run it, and leave through the
    interpreter's own exit (never returns to the server's loop)."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, key in ((1, "stdout"), (2, "stderr")):
        out = os.open(str(request[key]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    os.close(null)
    os.close(RESPONSE)
    os.environ.clear()
    os.environ.update(dict(request["env"]))  # type: ignore[call-overload]
    os.chdir(str(request["cwd"]))
    sys.path[0] = os.getcwd()  # as `python -m` puts the working directory first
    sys.argv = ["-m", *request["args"]]  # type: ignore[misc]
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own stdin
    code = 0
    try:
        runpy.run_module(str(request["module"]), run_name="__main__", alter_sys=True)
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


def serve() -> None:
    for module in PRELOAD:
        __import__(module)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        os.write(RESPONSE, f"pid {pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        os.write(RESPONSE, f"status {status}\n".encode())


if __name__ == "__main__":
    RESPONSE = int(sys.argv[1])
    serve()

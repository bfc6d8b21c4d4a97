"""The containers' Python programs (``containers/training/train`` and its siblings), forked
from tests/program_server.py, which has imported numpy, scipy, scikit-learn, xgboost, pyarrow
and pandas once, instead of paying ~2 s of CPU to import them in every run.

- ``run``: a program run as ``subprocess.run`` runs its script (``capture_output=True,
  text=True``): its own process, with the environment, arguments and working directory given,
  its exit status, stdout and stderr returned as a ``CompletedProcess``, a timeout killing it.
  Only the wrapper script is skipped (``exec "$py" -m mlstack_containers.<program>``); each
  script still runs as a real subprocess in its own tests (test_training_failures.py's
  ``train`` argument tests, test_training_evaluate.py's, test_training_monitor.py's baseline)
  and in every local run made by ``mlstack`` as a command (tests/local/test_local_terminal.py).
- ``forked_python``: while on, ``sys.executable`` is tests/python_shim.py, so what local mode
  starts in this process as ``$MLSTACK_PYTHON -m mlstack_containers.<program>`` is forked the
  same way; the shim stands in for the program's process (signals, exit status, killed with
  its group).

tests/training/test_training_programs.py holds both to what the real python does.
"""

from __future__ import annotations

import atexit
import json
import locale
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SERVER = Path(__file__).with_name("program_server.py")
SHIM = Path(__file__).with_name("python_shim.py")
REPO = SERVER.parents[1]


def _start(directory: Path, args: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """tests/program_server.py with ``args``, its log in ``directory``; its stdin is a pipe that
    closes when this process ends, which ends the server too."""
    with (directory / "server.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, str(SERVER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")},
            **popen,
        )


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Close the server's stdin (it ends after its runs), killing it after 10 s."""
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ProgramServer:
    """One per test process, started at its first run and ended at the process's exit."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mlstack-programs-"))
        self.response, write = os.pipe()
        self.proc = _start(self.dir, ["pipe", str(write)], pass_fds=(write,))
        os.close(write)
        self.pending = b""
        atexit.register(self.close)

    def close(self) -> None:
        _end(self.proc)
        os.close(self.response)

    def _line(self, prefix: str, deadline: float | None) -> int | None:
        """The number of the server's next line (``prefix N``), or None when the deadline
        passes first."""
        while b"\n" not in self.pending:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.response], [], [], wait)[0]:
                return None
            chunk = os.read(self.response, 4096)
            if not chunk:
                log = (self.dir / "server.log").read_text(errors="replace")
                raise RuntimeError(f"the program server ended (tests/program_server.py):\n{log}")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        match = re.fullmatch(rf"{prefix} (\d+)", line.decode())
        assert match, (prefix, line)
        return int(match[1])

    def run(
        self,
        module: str,
        args: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | None,
        timeout: float | None,
    ) -> tuple[int, Path, Path, bool]:
        out, err = self.dir / "stdout", self.dir / "stderr"
        request = {
            "module": module,
            "args": list(args),
            "env": dict(env),
            "cwd": str(cwd or Path.cwd()),
            "stdout": str(out),
            "stderr": str(err),
        }
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        pid = self._line("pid", None)
        assert pid is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        status = self._line("status", deadline)
        timed_out = status is None
        if timed_out:  # as subprocess.run does: kill the child, wait for it, then raise
            os.kill(pid, signal.SIGKILL)
            status = self._line("status", None)
        assert status is not None
        return os.waitstatus_to_exitcode(status), out, err, timed_out


_server: ProgramServer | None = None


def _read(path: Path) -> str:
    # subprocess.run(text=True) decodes with the locale's encoding and universal newlines.
    with path.open(encoding=locale.getpreferredencoding(False), errors="strict") as f:
        return f.read()


def run(
    script: Path,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run([script, *args], env=env, cwd=cwd, capture_output=True, text=True,
    timeout=timeout, check=False)`` for a container program's script (its last line is
    ``exec "$py" -m MODULE "$@"``)."""
    global _server
    (module,) = re.findall(r'^exec "\$py" -m (\S+) "\$@"$', script.read_text(), re.MULTILINE)
    if _server is None or _server.proc.poll() is not None:
        _server = ProgramServer()
    code, out, err, timed_out = _server.run(module, args, env, cwd, timeout)
    cmd = [str(script), *args]
    if timed_out:
        raise subprocess.TimeoutExpired(cmd, timeout or 0, _read(out), _read(err))
    return subprocess.CompletedProcess(cmd, code, _read(out), _read(err))


def current() -> ProgramServer | None:
    """This process's program server, if a run has started it."""
    return _server


class ShimServer:
    """The program server's socket side and the python shim that reaches it (one per test
    process, ended at its exit)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mlstack-shim-"))
        socket_path = self.dir / "programs.sock"
        self.shim = self.dir / "python"
        text = SHIM.read_text().replace('SOCKET = ""', f"SOCKET = {str(socket_path)!r}", 1)
        self.shim.write_text(f"#!{sys.executable} -IS\n{text}")
        self.shim.chmod(0o755)
        self.proc = _start(self.dir, ["socket", str(socket_path)])
        deadline = time.monotonic() + 120
        while not socket_path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log_text = (self.dir / "server.log").read_text(errors="replace")
                raise RuntimeError(f"the program server did not start:\n{log_text}")
            time.sleep(0.05)
        atexit.register(self.close)

    def close(self) -> None:
        _end(self.proc)


_shim_server: ShimServer | None = None


@contextmanager
def forked_python() -> Iterator[Path]:
    """While on, ``sys.executable`` is tests/python_shim.py: what local mode starts as
    ``$MLSTACK_PYTHON -m mlstack_containers.<program>`` (training, processing, transform and
    endpoint programs) is forked from the program server, its libraries imported once; every
    other use of ``sys.executable`` runs the real python."""
    global _shim_server
    if _shim_server is None or _shim_server.proc.poll() is not None:
        _shim_server = ShimServer()
    real = sys.executable
    sys.executable = str(_shim_server.shim)
    try:
        yield _shim_server.shim
    finally:
        sys.executable = real


def current_shim() -> ShimServer | None:
    """This process's socket server for the shim, if ``forked_python`` has started it."""
    return _shim_server

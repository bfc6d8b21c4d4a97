"""A pseudo-terminal for the CLI tests: a command run as a person runs it in a terminal (its
stdin, stdout and stderr a pty that is its controlling terminal, so Ctrl-C written to the pty
reaches it as SIGINT), its output read as the terminal shows it, every wait bounded in time."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import termios
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
# ECMA-48 control sequences (CSI ... final byte) and OSC strings: what rich writes to a terminal.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-B]")


def plain(text: str) -> str:
    """What a person reads: the terminal's text without its escape sequences."""
    return _ESCAPES.sub("", text).replace("\r", "")


def _controlling_terminal() -> None:  # in the child, after setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``argv`` running on a new pseudo-terminal; ``output`` is everything it wrote so far."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path = REPO,
        env: Mapping[str, str] | None = None,
        columns: int = 120,
    ) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, _winsize(columns))
        environment = {**os.environ, **(env or {}), "TERM": "xterm-256color"}
        for name in ("CI", "NO_COLOR", "TERM_PROGRAM", "COLUMNS", "LINES"):
            environment.pop(name, None)
        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=environment,
            start_new_session=True,
            preexec_fn=_controlling_terminal,
        )
        os.close(slave)
        self._master = master
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: every process holding the terminal closed it
                return
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk)

    @property
    def raw(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode(errors="replace")

    @property
    def output(self) -> str:
        return plain(self.raw)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until the output matches ``pattern`` (a regex); fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            if self.proc.poll() is not None:
                self._reader.join(2)
                found = re.search(pattern, self.output)
                if found:
                    return found
                raise AssertionError(
                    f"exited {self.proc.returncode} before {pattern!r}:\n{self.output[-4000:]}"
                )
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.output[-4000:]}")

    def ctrl_c(self) -> None:
        """Ctrl-C as a person types it: the terminal's INTR character (SIGINT to its
        foreground process group)."""
        os.write(self._master, b"\x03")

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._reader.join(5)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._reader.join(5)
        os.close(self._master)


def _winsize(columns: int, rows: int = 40) -> bytes:
    import struct

    return struct.pack("HHHH", rows, columns, 0, 0)


def mlstack(*args: str) -> list[str]:
    return [str(VENV_BIN / "mlstack"), *args]


def marked_processes(mark: str) -> list[str]:
    """The processes whose environment holds ``MLSTACK_TEST_MARK=<mark>`` (a command run with
    it and every process it started, whatever session they moved to): pid and command line."""
    found = []
    needle = f"MLSTACK_TEST_MARK={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{entry.name} {args.strip()}")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def wait_gone(mark: str, timeout: float) -> list[str]:
    """Wait up to ``timeout`` s for every marked process to end; those still there."""
    deadline = time.monotonic() + timeout
    left = marked_processes(mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = marked_processes(mark)
    return left

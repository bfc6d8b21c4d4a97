"""Live progress of a local run: a table of states on a terminal (rich), plain lines elsewhere."""

from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class _Row:
    name: str
    state_type: str
    started: float
    seconds: float | None = None
    status: str = "running"
    note: str = ""


@dataclass
class Reporter:
    """Receives the interpreter's state events, program logs and training metrics.

    ``verbose`` shows every log line; otherwise only training output, errors and notices.
    """

    out: TextIO = field(default_factory=lambda: sys.stdout)
    verbose: bool = False
    title: str = "mlstack local run"  # the live table's
    rows: list[_Row] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _iterations_done: dict[str, int] = field(default_factory=dict)  # per Map state, this visit

    # --- lifecycle ------------------------------------------------------------------------
    def __post_init__(self) -> None:
        """What a subclass sets up as it is made (the dataclass' __init__ calls it)."""

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def emit(self, text: str) -> None:
        # One write, line and newline together: print() writes them apart, and a Ctrl-C's
        # handler raising between the two would leave the command's last line glued to it.
        with self._lock:
            self.out.write(f"[{self.elapsed():6.1f}s] {text}\n")
            self.out.flush()

    def info(self, text: str) -> None:
        self.emit(text)

    # --- asl.Listener ---------------------------------------------------------------------
    def state_entered(self, name: str, state_type: str, data: Any) -> None:
        self.rows.append(_Row(name, state_type, time.monotonic()))
        self._iterations_done.pop(name, None)
        self.emit(f"▶ {name} ({state_type})")

    def _row(self, name: str) -> _Row | None:
        return next((r for r in reversed(self.rows) if r.name == name), None)

    def state_exited(self, name: str, state_type: str, output: Any, seconds: float) -> None:
        row = self._row(name)
        if row:
            row.seconds, row.status = seconds, "succeeded"
        self.emit(f"✓ {name} ({seconds:.1f}s)")

    def state_failed(
        self, name: str, state_type: str, error: str, cause: str, seconds: float
    ) -> None:
        row = self._row(name)
        if row:
            row.seconds, row.status, row.note = seconds, "failed", error
        self.emit(f"✗ {name} ({seconds:.1f}s): {error}: {short_cause(cause)}")

    def state_retrying(self, name: str, error: str, attempt: int, delay: float) -> None:
        row = self._row(name)
        if row:
            row.note = f"retry {attempt} after {error}"
        self.emit(f"↻ {name}: {error}; retry {attempt} in {delay:.1f}s (scaled locally)")

    # --- progress of long steps -----------------------------------------------------------
    def map_iteration(self, name: str, index: int, status: str, total: int) -> None:
        """A Map's iterations (the seeding shards) done so far: the Map's row says ``k/n
        iterations`` and, as plain lines, each one done is a line."""
        if status == "Started":
            return
        with self._lock:
            done = self._iterations_done[name] = self._iterations_done.get(name, 0) + 1
        row = self._row(name)
        if row:
            row.note = f"{done}/{total} iterations"
        self.emit(f"… {name}: {done}/{total} iterations done ({status.lower()}: {index})")

    def _round(self, line: str) -> None:
        """A training round's line (``[k]\t...``): the running task's row says ``round k``; a
        transform job's ``mlstack-transform: k/n objects`` line: ``k/n objects``."""
        row = next((r for r in reversed(self.rows) if r.status == "running"), None)
        if row is None:
            return
        if match := _ROUND.match(line):
            row.note = f"round {match.group(1)}"
        elif match := _TRANSFORMED.match(line):
            row.note = f"{match.group(1)}/{match.group(2)} objects"

    # --- programs -------------------------------------------------------------------------
    def log(self, source: str, line: str) -> None:
        self._round(line)
        if self.verbose or interesting(source, line):
            self.emit(f"  {source[-24:]} | {line}")

    def metric(self, job: str, name: str, value: float) -> None:
        self.metrics[name] = value


_ROUND = re.compile(r"^\[(\d+)\]\t")
# What a local transform job logs as each input object's output is written (transform_job.py).
_TRANSFORMED = re.compile(r"^mlstack-transform: (\d+)/(\d+) objects")


def interesting(source: str, line: str) -> bool:
    """Shown without --verbose: training rounds and messages, transform progress, errors,
    notifications."""
    return (
        _ROUND.match(line) is not None
        or _TRANSFORMED.match(line) is not None
        or line.startswith("mlstack-train:")
        or line.startswith("spot interruption")
        or '"level": "ERROR"' in line
        or "Traceback" in line
        or source == "sns"
    )


def short_cause(cause: str, limit: int = 300) -> str:
    """A failure's cause for one line: the FailureReason of a job description, else the text."""
    import json

    try:
        parsed = json.loads(cause)
    except (ValueError, TypeError):
        parsed = None
    if isinstance(parsed, dict):
        for key in ("FailureReason", "errorMessage", "Cause"):
            if isinstance(parsed.get(key), str):
                return short_cause(parsed[key], limit)
    return cause if len(cause) <= limit else cause[: limit - 1] + "…"


class RichReporter(Reporter):
    """The same events as a live table of states with elapsed times and the latest metrics."""

    def __post_init__(self) -> None:
        from rich.console import Console

        # Made here, not on entering: a command says what it does (info, log) before and after
        # the live table, and an execution may show several tables (the release's) in turn.
        self.console = Console(file=self.out)
        self.live: Any = None

    def __enter__(self) -> RichReporter:
        from rich.live import Live

        self.live = Live(
            get_renderable=self._render, console=self.console, refresh_per_second=8, transient=False
        )
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.stop()
            self.live = None

    def emit(self, text: str) -> None:
        # State transitions are shown by the table; only log lines are printed above it.
        pass

    def log(self, source: str, line: str) -> None:
        self._round(line)
        if self.verbose or interesting(source, line):
            from rich.text import Text

            self.console.print(Text(f"{source[-24:]} | {line}", style="dim"))

    def info(self, text: str) -> None:
        self.console.print(text)

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title=f"{self.title} — {self.elapsed():.1f}s", title_justify="left")
        table.add_column("state")
        table.add_column("type", style="dim")
        table.add_column("status")
        table.add_column("time", justify="right")
        table.add_column("", style="dim")
        styles = {"running": "yellow", "succeeded": "green", "failed": "red"}
        for row in list(self.rows):
            seconds = row.seconds if row.seconds is not None else time.monotonic() - row.started
            status = f"[{styles[row.status]}]{row.status}[/]"
            table.add_row(row.name, row.state_type, status, f"{seconds:.1f}s", row.note)
        if self.metrics:
            shown = ", ".join(f"{k}={v:.5g}" for k, v in sorted(self.metrics.items()))
            table.caption = f"metrics: {shown}"
        return table


def reporter_for(
    out: TextIO,
    *,
    verbose: bool = False,
    plain: bool | None = None,
    title: str = "mlstack local run",
) -> Reporter:
    """A live table on a terminal, plain lines when ``out`` is not one (CI logs, pipes)."""
    if plain is None:
        plain = not out.isatty()
    kind = Reporter if plain else RichReporter
    return kind(out=out, verbose=verbose, title=title)

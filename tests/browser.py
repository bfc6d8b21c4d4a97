"""Headless Chromium (Debian's ``chromium``) driven through the Chrome DevTools Protocol over its
websocket: open a page, collect console errors and failed loads, evaluate a check, take a
screenshot. Used by the report's browser test and ``scripts/report_screenshots.py``.

Protocol methods and events as the DevTools Protocol documents them (chromedevtools.github.io/
devtools-protocol): ``Page.navigate``, ``Page.loadEventFired``, ``Runtime.consoleAPICalled``,
``Runtime.exceptionThrown``, ``Log.entryAdded``, ``Network.loadingFailed``,
``Runtime.evaluate``, ``Page.captureScreenshot``, ``Emulation.setDeviceMetricsOverride``,
``Emulation.setScrollbarsHidden``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket  # websocket-client, pinned in pyproject.toml

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
START_SECONDS = 60
END_SECONDS = 20


def chromium_path() -> str:
    """The browser, or RuntimeError saying how to install it."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "no chromium on PATH: `make setup` installs Debian's chromium (apt-get install chromium)"
    )


def group_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` still running (zombies, which write nothing, left out)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended while read
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after it
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _end_group(pgid: int) -> None:
    """SIGKILL whatever is left of the group and wait, at most END_SECONDS, until none runs."""
    deadline = time.monotonic() + END_SECONDS
    while members := group_members(pgid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"chromium's processes {members} did not end in {END_SECONDS} s")
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@dataclass
class PageResult:
    """What a page did while it loaded, and the check's value."""

    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    check: Any = None
    screenshot: bytes = b""
    loaded: bool = False  # Page.loadEventFired came


class Browser:
    """One headless Chromium on 127.0.0.1 (a random DevTools port), in a process group of its own:
    on exit every process of the group has ended before its profile directory is removed."""

    def __enter__(self) -> Browser:
        self.profile = tempfile.TemporaryDirectory(prefix="mlstack-chromium-")
        self.process = subprocess.Popen(
            [
                chromium_path(),
                "--headless=new",
                "--no-sandbox",  # tests run as root in CI
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile.name}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its zygotes and utility processes share its group id
        )
        self.port = self._port()
        return self

    def _port(self) -> int:
        deadline = time.monotonic() + START_SECONDS
        assert self.process.stderr is not None
        seen = []
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line and self.process.poll() is not None:
                break
            seen.append(line)
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                return int(match.group(1))
        self.__exit__()
        raise RuntimeError("chromium did not start its DevTools server: " + "".join(seen)[-2000:])

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)
        # The browser's children (the network service, storage) outlive it by a moment and write
        # the profile as they go; removing it meanwhile failed CI with "Directory not empty:
        # 'Default'". They are ended, and gone, first.
        _end_group(self.process.pid)
        self.profile.cleanup()

    def open(self, url: str, check: str, *, width: int = 1200, timeout: float = 60) -> PageResult:
        """Load ``url`` in the first page, then evaluate the JavaScript expression ``check``
        (its value returned by value) and screenshot the full page."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout)
        try:
            return _drive(ws, url, check, width, timeout)
        finally:
            ws.close()


def _drive(ws: Any, url: str, check: str, width: int, timeout: float) -> PageResult:
    result = PageResult()
    ids = iter(range(1, 10_000))

    def call(method: str, **params: Any) -> Any:
        message_id = next(ids)
        ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(ws.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            _event(message, result)
        raise TimeoutError(f"{method}: no answer in {timeout}s")

    for domain in ("Page", "Runtime", "Log", "Network"):
        call(f"{domain}.enable")
    call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    call("Emulation.setScrollbarsHidden", hidden=True)  # the page's own width, no scrollbar
    call("Page.navigate", url=url)
    deadline = time.monotonic() + timeout
    while not result.loaded and time.monotonic() < deadline:
        _event(json.loads(ws.recv()), result)
    if not result.loaded:
        result.errors.append(f"the page did not load in {timeout}s")
        return result
    evaluated = call("Runtime.evaluate", expression=check, returnByValue=True)
    if "exceptionDetails" in evaluated:
        result.errors.append(f"the check threw: {evaluated['exceptionDetails']}")
    result.check = evaluated.get("result", {}).get("value")
    shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    result.screenshot = base64.b64decode(shot["data"])
    return result


def _event(message: dict[str, Any], result: PageResult) -> None:
    method, params = message.get("method"), message.get("params", {})
    if method == "Page.loadEventFired":
        result.loaded = True
    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        result.errors.append("console: " + json.dumps(params.get("args"))[:500])
    elif method == "Runtime.exceptionThrown":
        result.errors.append("exception: " + json.dumps(params.get("exceptionDetails"))[:500])
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        result.errors.append("log: " + str(params["entry"].get("text"))[:500])
    elif method == "Network.loadingFailed":
        result.errors.append("load failed: " + json.dumps(params)[:500])


# Every chart has drawn marks (a visible box) and both axis titles; every number it shows is a
# number. The report's charts are matplotlib's SVG (mlstack/report/svg.py): the marks are the
# groups whose id (the artist's gid) starts "marks-", an axis title the text inside the group
# "axis-label-x" or "axis-label-y". Returns {chart id: problems}, empty when all are well, and the
# charts' count.
CHART_CHECK = """(() => {
  const problems = {};
  const charts = [...document.querySelectorAll('figure.chart')];
  for (const chart of charts) {
    const id = chart.dataset.chart;
    const bad = [];
    const groups = [...chart.querySelectorAll('svg g[id^="marks-"]')];
    const drawn = groups.flatMap(g => [...g.querySelectorAll('path, use, rect, circle, polygon')]);
    if (drawn.length === 0) bad.push('no marks');
    const boxes = groups.map(g => g.getBBox());
    if (!boxes.some(b => b.width >= 1 && b.height >= 1)) bad.push('marks have no size');
    for (const axis of ['x', 'y']) {
      const label = chart.querySelector(`svg g[id="axis-label-${axis}"] text`);
      if (!label || !label.textContent.trim()) bad.push(`no ${axis} axis label`);
    }
    if (/NaN|undefined|Infinity/.test(chart.querySelector('svg').outerHTML)) bad.push('NaN in svg');
    if (bad.length) problems[id] = bad;
  }
  return {charts: charts.map(c => c.dataset.chart), problems};
})()"""


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height (its IHDR chunk)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def save(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path

"""The local gateway is usable on a machine with no AWS set-up at all.

`mlstack local serve --from-run` runs as a user starts it; the boto3 snippet of
docs/local-mode.md and `mlstack invoke --endpoint-url` run as child processes whose environment
has no AWS variable and whose HOME is an empty directory (no ~/.aws): what a fresh machine has.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlstack.local.loopback import free_port
from mlstack.local.runner import RunReport
from tests.infra.conftest import REPO

SNIPPET_URL = "http://127.0.0.1:8080"
SERVE = [sys.executable, "-m", "mlstack.cli", "local", "serve"]
INVOKE = [sys.executable, "-m", "mlstack.cli", "invoke"]


def bare_env(home: Path) -> dict[str, str]:
    """A fresh machine's environment: PATH and an empty HOME, nothing of AWS."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    assert not any(k.startswith("AWS_") for k in env)
    return env


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def gateway(local_run: RunReport, home: Path) -> Iterator[str]:
    """`mlstack local serve --from-run RUN`, no endpoint name given: it serves the run's own."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlstack.cli",
            "local",
            "serve",
            "--from-run",
            str(local_run.run_dir),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=bare_env(home),
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
    yield url
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def gateway_snippet() -> str:
    page = (REPO / "docs" / "local-mode.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- example: local-gateway -->\s*```python\n(.*?)```", page, re.S)
    assert match, "docs/local-mode.md lost its local gateway snippet"
    return match.group(1)


def scores(text: str) -> list[float]:
    return [float(v) for v in text.strip().split(",")]


def test_the_local_mode_snippet_runs_as_written_with_no_aws_configuration(
    gateway: str, home: Path
) -> None:
    snippet = gateway_snippet()
    # The one change: the port this test's gateway got (8080 may be taken on a shared machine).
    assert snippet.count(SNIPPET_URL) == 1
    code = snippet.replace(SNIPPET_URL, gateway)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=bare_env(home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    high, low = scores(done.stdout)
    assert high > 0.5 > low  # (5, 90) is above y = 3x + 5, (60, 10) below


def test_mlstack_invoke_with_a_local_endpoint_needs_no_region_or_credentials(
    gateway: str, home: Path
) -> None:
    data = home / "data.csv"
    data.write_text("5,90\n60,10\n")
    done = subprocess.run(
        [
            *INVOKE,
            "--endpoint-url",
            gateway,
            "--endpoint-name",
            "mlstack-dev-live",
            "--file",
            str(data),
        ],
        env=bare_env(home),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    high, low = scores(done.stdout)
    assert high > 0.5 > low

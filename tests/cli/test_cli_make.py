"""The Makefile's `diagram` and `synth` targets when something is missing or wrong: the check
comes first, and a failed synth keeps the last good cloud assembly.

Expected values come from make itself (its exit status, what it left on disk) and from the
app's documented override (`cdk synth -c environments_dir=<dir>`, app.py / mlstack/app.py)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.cli.terminal import REPO


def _make(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_make_diagram_without_graphviz_stops_before_the_synth() -> None:
    before = {p.name for p in REPO.iterdir()}
    started = time.monotonic()
    done = _make("diagram", "DOT=mlstack-test-no-such-dot", timeout=600)
    seconds = time.monotonic() - started
    assert done.returncode != 0
    assert "Graphviz is missing" in done.stdout + done.stderr
    assert "synth" not in done.stdout  # no cdk command ran
    assert seconds < 10, f"{seconds:.1f} s: the check ran after a synth"
    assert {p.name for p in REPO.iterdir()} == before  # no cdk.out made


def test_make_synth_that_fails_keeps_the_last_cdk_out(tmp_path: Path) -> None:
    cdk_out = REPO / "cdk.out"
    marker = cdk_out / "mlstack-test-marker"
    existed = cdk_out.exists()
    cdk_out.mkdir(exist_ok=True)
    marker.write_text("the last good synth\n", encoding="utf-8")
    empty = tmp_path / "environments"
    empty.mkdir()
    try:
        done = _make(
            "synth",
            f"CDK=npx --no-install cdk --no-notices -c environments_dir={empty}",
            timeout=600,
        )
        assert done.returncode != 0, done.stdout
        assert "no environment files" in done.stdout + done.stderr  # the app's ConfigError
        assert marker.is_file()
        assert not (REPO / "cdk.out.new" / "mlstack-test-marker").exists()
    finally:
        marker.unlink(missing_ok=True)
        if not existed:
            cdk_out.rmdir() if not any(cdk_out.iterdir()) else None

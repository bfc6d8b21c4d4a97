#!/usr/bin/env python3
"""Screenshot local runs' reports into docs/ (docs/evaluation.md links them), each checked as the
browser test checks one: no console error or failed load, every chart drawn and labelled.

    .venv/bin/python scripts/report_screenshots.py binary=.work/local/<run> \\
        multiclass=.work/local/<run> regression=.work/local/<run>

writes ``docs/report-<kind>.png`` (900 px wide, the whole page).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser import CHART_CHECK, Browser  # noqa: E402

WIDTH = 900


def main(args: list[str]) -> int:
    runs = dict(arg.split("=", 1) for arg in args)
    with Browser() as browser:
        for kind, run in runs.items():
            page = (Path(run) / "report.html").resolve()
            result = browser.open(page.as_uri(), CHART_CHECK, width=WIDTH)
            if result.errors or result.check["problems"]:
                print(f"{kind}: {result.errors} {result.check['problems']}", file=sys.stderr)
                return 1
            target = REPO / "docs" / f"report-{kind}.png"
            target.write_bytes(result.screenshot)
            charts = ", ".join(result.check["charts"])
            print(f"{target.relative_to(REPO)}: {len(result.screenshot)} bytes; charts {charts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

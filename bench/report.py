"""Time to render a local run's report.html again from what the run left (history.json,
execution.json, report_parts.json, metrics-<host>.json): the charts matplotlib draws.

Usage: .venv/bin/python bench/report.py .work/local/<execution name>
"""

import importlib
import json
import sys
import time
from pathlib import Path

RENDERS = 20


def main(run: Path) -> None:
    started = time.perf_counter()
    build = importlib.import_module("mlstack.report.build")
    sources = importlib.import_module("mlstack.report.sources")
    imported = time.perf_counter()
    events = json.loads((run / "history.json").read_text())["events"]
    execution = json.loads((run / "execution.json").read_text())
    parts_file = next(Path(run / "s3").resolve().rglob("report_parts.json"))
    parts = json.loads(parts_file.read_text())
    rounds = sources.local_rounds(run, [j["name"] for j in execution["training_jobs"]])
    inputs = build.ReportInputs(
        "bench", "dev", "SUCCEEDED", events, rounds, parts=parts, output=execution["output"]
    )
    begin = time.perf_counter()
    for _ in range(RENDERS):
        html = build.render(inputs)
    each = (time.perf_counter() - begin) / RENDERS
    print(
        f"import {imported - started:.3f}s, render {each * 1000:.1f} ms per report "
        f"({html.count('<figure')} charts, {len(html)} bytes)"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))

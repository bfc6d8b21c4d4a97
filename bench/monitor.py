"""The ``monitor`` program over 1,000,000 captured records: wall time and peak memory.

    .venv/bin/python bench/monitor.py [--records 1000000] [--per-request 1] [--labelled 0.1]

Writes, in a temporary /opt/ml tree: the ``baseline`` program's output for 10,000 seeder rows
(x and y integers in 0..100), then ``--records`` records captured as SageMaker writes them
(one JSON line per request of ``--per-request`` CSV records, the body base64-encoded as the
endpoint's capture does without a CaptureContentTypeHeader, with its CSV prediction, 100,000
lines an object under ``<endpoint>/AllTraffic/yyyy/mm/dd/hh/``), x shifted by 20 in the second
half, and ground truth for ``--labelled`` of the requests. Then runs ``containers/training/monitor``
as the Processing job would and reports its wall time and peak RSS (``getrusage`` of the child:
ru_maxrss, KiB on Linux). Prints Markdown for bench/README.md. CI does not run it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "containers" / "training"
LINES_PER_OBJECT = 100_000


def write_inputs(base: Path, records: int, per_request: int, labelled: float) -> int:
    rng = np.random.default_rng(0)
    train = base / "processing" / "input" / "train"
    train.mkdir(parents=True)
    x, y = rng.integers(0, 101, 10_000), rng.integers(0, 101, 10_000)
    rows = np.c_[(y >= 3 * x + 5).astype(int), x, y]
    (train / "part-0.csv").write_text("".join(f"{a},{b},{c}\n" for a, b, c in rows))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    subprocess.run([str(PROGRAMS / "baseline")], env=env, check=True, capture_output=True)
    inputs = base / "processing" / "input"
    (inputs / "baseline").mkdir()
    for f in (base / "processing" / "output" / "baseline").iterdir():
        (inputs / "baseline" / f.name).write_bytes(f.read_bytes())
    hour = inputs / "capture" / "bench" / "AllTraffic" / "2026" / "01" / "01" / "00"
    hour.mkdir(parents=True)
    truth = inputs / "ground_truth" / "2026" / "01" / "01"
    truth.mkdir(parents=True)
    requests = records // per_request
    x = rng.integers(0, 101, records) + np.where(np.arange(records) >= records // 2, 20, 0)
    y = rng.integers(0, 101, records)
    out = labels = None
    for r in range(requests):
        if r % LINES_PER_OBJECT == 0:
            for handle in (out, labels):
                if handle is not None:
                    handle.close()
            out = (hour / f"capture-{r // LINES_PER_OBJECT:04d}.jsonl").open("w")
            labels = (truth / f"labels-{r // LINES_PER_OBJECT:04d}.jsonl").open("w")
        part = slice(r * per_request, (r + 1) * per_request)
        body = "\n".join(f"{a},{b}" for a, b in zip(x[part], y[part], strict=True))
        scores = ",".join(
            "0.9" if b >= 3 * a + 5 else "0.1" for a, b in zip(x[part], y[part], strict=True)
        )
        event = {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": base64.b64encode(body.encode()).decode(),
                    "encoding": "BASE64",
                },
                "endpointOutput": {
                    "observedContentType": "text/csv; charset=utf-8",
                    "mode": "OUTPUT",
                    "data": base64.b64encode(scores.encode()).decode(),
                    "encoding": "BASE64",
                },
            },
            "eventMetadata": {
                "eventId": f"e-{r}",
                "inferenceId": f"id-{r}",
                "inferenceTime": "2026-01-01T00:30:00Z",
            },
            "eventVersion": "0",
        }
        assert out is not None and labels is not None
        out.write(json.dumps(event, separators=(",", ":")) + "\n")
        if rng.random() < labelled:
            truth_labels = [int(b >= 3 * a + 5) for a, b in zip(x[part], y[part], strict=True)]
            labels.write(json.dumps({"inference_id": f"id-{r}", "label": truth_labels}) + "\n")
    for handle in (out, labels):
        if handle is not None:
            handle.close()
    return requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--per-request", type=int, default=1)
    parser.add_argument("--labelled", type=float, default=0.1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlstack-monitor-bench-") as tmp:
        base = Path(tmp)
        started = time.perf_counter()
        requests = write_inputs(base, args.records, args.per_request, args.labelled)
        written = time.perf_counter() - started
        size = sum(p.stat().st_size for p in (base / "processing/input/capture").rglob("*.jsonl"))
        env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
        command = [
            str(PROGRAMS / "monitor"),
            "--window-start", "2026-01-01T00:00:00Z",
            "--window-end", "2026-01-01T01:00:00Z",
            "--endpoint", "bench",
            "--quality-metric", "Accuracy",
            "--quality-threshold", "0.8",
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        report = json.loads((base / "processing/output/report/report.json").read_text())
    drift = ", ".join(f"{f['name']} PSI {f['psi']:.3f}" for f in report["drift"]["features"])
    print(
        f"| {args.records:,} records in {requests:,} requests ({size / 2**20:.0f} MiB of capture, "
        f"written in {written:.0f} s) | {seconds:.1f} s | {peak_kib / 1024:.0f} MiB | "
        f"{report['records']['captured']:,} captured, {report['quality']['labelled']:,} labelled; "
        f"{drift}; alarms {report['alarms']} |",
        file=sys.stdout,
    )
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where the CPU of one 6 MB CSV batch request goes in ``serve``: parse, predict, format, HTTP.

    .venv/bin/python bench/csv_split.py [--requests 10] [--width 2]

The body and model are those of ``bench/csv_batches.py`` (``--width 2``: the reference rows,
1,080,525 rows of two integers; ``--width 20``: 39,813 rows of 20 floats). CPU time, not wall
time (``time.thread_time`` in-process, ``/proc/<pid>/stat`` for the server), so the figures move
much less with other jobs on the machine than rows/s do:

* **parse**, **predict**, **format**: the server's own ``codecs.parse_request``,
  ``Predictor.predict`` (a worker's XGBoost threads: 1 with 2 workers on 2 CPUs) and
  ``codecs.format_response`` (``SAGEMAKER_BATCH=true``) on the whole body, in this process,
  median of ``--requests``;
* **app as served**: the WSGI application (``InferenceApp``) called in-process with the body,
  all threads' CPU (it parses and predicts large bodies in pieces on two threads);
* **worker, per request**: the real ``serve`` (2 workers), one client posting the body
  ``--requests`` times; the workers' user + system CPU from ``/proc`` divided by the requests;
* **HTTP and gunicorn** = worker per request - app as served: reading 6 MB, writing the answer,
  gunicorn's parsing, the worker's event loop.

Prints a Markdown table for bench/README.md with the load average before and after.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from mlstack_containers.serving import codecs
from mlstack_containers.serving.app import InferenceApp, Predictor
from mlstack_containers.serving.config import ServerConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from csv_batches import make_body, start_serve, train
from serving import load_average

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ms(run, repeats: int) -> float:
    """Median CPU milliseconds of ``run()`` on this thread."""
    run()
    times = []
    for _ in range(repeats):
        started = time.thread_time()
        run()
        times.append(time.thread_time() - started)
    return 1000 * statistics.median(times)


def app_ms(app: InferenceApp, body: bytes, repeats: int) -> float:
    """Median CPU milliseconds (every thread of this process) of one request through the app."""

    def call() -> None:
        environ = {
            "PATH_INFO": "/invocations",
            "REQUEST_METHOD": "POST",
            "CONTENT_TYPE": "text/csv",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
        out = app(environ, lambda status, headers: None)
        assert sum(map(len, out)) > 0

    call()
    times = []
    for _ in range(repeats):
        started = time.process_time()
        call()
        times.append(time.process_time() - started)
    return 1000 * statistics.median(times)


def worker_cpu_s(master: int) -> float:
    total = 0
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5): fields 14, 15)
    return total / TICK


def served_ms(port: int, master: int, body: bytes, repeats: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        for i in range(repeats + 2):  # two warm-up requests (both workers' first buffers)
            if i == 2:
                before = worker_cpu_s(master)
            conn.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
        return 1000 * (worker_cpu_s(master) - before) / repeats
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--width", type=int, default=2, choices=(2, 20))
    args = parser.parse_args()
    load_before = load_average()
    body, rows, features = make_body(args.width)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        train(base / "model", features)
        config = ServerConfig(batch=True, predict_threads=1, model_dir=base / "model")
        predictor = Predictor.load(config)
        app = InferenceApp(predictor, config)
        matrix = codecs.parse_request(body, codecs.CSV, predictor.num_features)
        predictions = predictor.predict(matrix)
        assert np.isfinite(predictions).all()
        n = args.requests
        parse = cpu_ms(lambda: codecs.parse_request(body, codecs.CSV, matrix.shape[1]), n)
        predict = cpu_ms(lambda: predictor.predict(matrix), n)
        fmt = cpu_ms(lambda: codecs.format_response(predictions, codecs.CSV, batch=True), n)
        served_app = app_ms(app, body, n)
        proc, port = start_serve(base)
        try:
            worker = served_ms(port, proc.pid, body, n)
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"load average (1, 5, 15 min) before: {load_before}; after: {load_average()}")
    print(f"{args.width} features, {len(body):,} B, {rows:,} rows; CPU ms per request, "
          f"median of {n}")  # fmt: skip
    print()
    print("| stage | CPU ms | share of the worker's |")
    print("| --- | --- | --- |")
    http_ms = worker - served_app
    for name, value in (
        ("parse (`codecs.parse_request`)", parse),
        ("predict (`Predictor.predict`, 1 thread)", predict),
        ("format (`codecs.format_response`, CSV)", fmt),
        ("parse + predict + format", parse + predict + fmt),
        ("app as served (pieces on 2 threads, all threads' CPU)", served_app),
        ("HTTP and gunicorn (worker - app)", http_ms),
        ("**worker, per request** (`/proc`, user + system)", worker),
    ):
        print(f"| {name} | {value:.1f} | {100 * value / worker:.0f}% |")


if __name__ == "__main__":
    main()

"""Where the CPU of one 6 MB CSV batch request goes in ``serve``: parse, predict, format, HTTP.

    .venv/bin/python bench/csv_split.py [--requests 10] [--width 2]

The body and model are those of ``bench/csv_batches.py`` (``--width 2``: the reference rows,
1,080,525 rows of two integers; ``--width 20``: 39,813 rows of 20 floats). CPU time, not wall
time (``time.thread_time`` in-process, ``/proc/<pid>/stat`` for the server), so the figures move
much less with other jobs on the machine than rows/s do:

* **parse**, **predict**, **format**: the server's own ``codecs.parse_request``,
  ``Predictor.predict`` (a worker's XGBoost threads: 1 with 2 workers on 2 CPUs) and
  ``codecs.format_response`` (``SAGEMAKER_BATCH=true``) on the whole body, in this process
  (with the workers' ``server.reuse_freed_memory``), median of ``--requests``;
* **app, every CPU busy** and **app, a spare CPU**: the WSGI application (``InferenceApp``)
  called in-process with the body, all threads' CPU: the whole body in one call (what a worker
  does while the others answer large requests too) and in pieces on two threads (a lone
  request);
* **worker, 1 client** and **worker, 2 clients**: the real ``serve`` (2 workers) and one or two
  clients each posting the body ``--requests`` times; the workers' user + system CPU from
  ``/proc`` divided by the requests; with 2 clients also this process's CPU per request (the
  clients' share: sending 6 MB, reading the answer), as in ``bench/csv_batches.py``;
* **HTTP and gunicorn** = worker (2 clients) - app (every CPU busy): reading 6 MB, writing the
  answer, gunicorn's parsing, the worker's event loop;
* **baseline**: ``bench/csv_batches.py``'s one-process pandas + ``Booster.predict``: its parse
  and ``DMatrix``, and its prediction with one XGBoost thread, CPU on this thread; on an idle
  2-core machine (XGBoost's default: 2 threads) its wall time is at least parse + DMatrix +
  predict / 2, and ``serve`` with 2 clients reaches about 2 x that / (worker + clients) times
  its rate (on 2 busy CPUs, rate is CPUs / CPU per request).

Prints a Markdown table for bench/README.md with the load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from mlstack_containers.serving import codecs
from mlstack_containers.serving.app import InferenceApp, Predictor
from mlstack_containers.serving.config import ServerConfig
from mlstack_containers.serving.server import reuse_freed_memory

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


class NoSpareCpu:
    """Every CPU busy: what a worker's count says while the other worker answers a batch."""

    def running(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def spare(self) -> bool:
        return False


def process_cpu_ms(run, repeats: int) -> float:
    """Median CPU milliseconds of ``run()``, every thread of this process."""
    run()
    times = []
    for _ in range(repeats):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
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

    return process_cpu_ms(call, repeats)


def worker_cpu_s(master: int) -> tuple[float, int]:
    """The workers' CPU seconds (user + system) and page faults (minor) so far."""
    total = faults = 0
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5): fields 14, 15)
        faults += int(fields[7])  # minflt (proc(5): field 10)
    return total / TICK, faults


def served_ms(
    port: int, master: int, body: bytes, repeats: int, clients: int
) -> tuple[float, float, float]:
    """Workers' and clients' CPU milliseconds per request, ``clients`` posting at once, and
    the workers' page faults per request."""
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            for i in range(repeats + 2):  # two warm-up requests (both workers' first buffers)
                if i == 2:
                    barrier.wait()
                conn.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    before, own = worker_cpu_s(master), time.process_time()
    for thread in threads:
        thread.join()
    requests = clients * repeats
    after = worker_cpu_s(master)
    worker = 1000 * (after[0] - before[0]) / requests
    faults = (after[1] - before[1]) / requests
    return worker, 1000 * (time.process_time() - own) / requests, faults


def baseline_ms(body: bytes, booster: xgb.Booster, repeats: int) -> tuple[float, float]:
    """bench/csv_batches.py's baseline, CPU on this thread: parse + DMatrix, and predict with
    one XGBoost thread (its 2 threads on 2 idle CPUs take at best half of that in wall time,
    and their OpenMP spinning would count as CPU); a new DMatrix each time, as there (XGBoost
    keeps the predictions of a DMatrix it has seen)."""
    booster.set_param({"nthread": 1})
    parse_ms, predict_ms = [], []
    for i in range(repeats + 1):
        started = time.thread_time()
        matrix = xgb.DMatrix(pd.read_csv(io.BytesIO(body), header=None).to_numpy(np.float32))
        parsed = time.thread_time()
        booster.predict(matrix)
        if i:  # the first is a warm-up
            parse_ms.append(1000 * (parsed - started))
            predict_ms.append(1000 * (time.thread_time() - parsed))
    return statistics.median(parse_ms), statistics.median(predict_ms)


def in_process(
    base: Path, body: bytes, booster: xgb.Booster, n: int
) -> tuple[float, float, float, float, float, float, float]:
    """Parse, predict, format, the app both ways, and the baseline's parse and predict."""
    config = ServerConfig(batch=True, predict_threads=1, model_dir=base / "model")
    predictor = Predictor.load(config)
    app = InferenceApp(predictor, config)
    matrix = codecs.parse_request(body, codecs.CSV, predictor.num_features)
    predictions = predictor.predict(matrix)
    assert np.isfinite(predictions).all()
    parse = cpu_ms(lambda: codecs.parse_request(body, codecs.CSV, matrix.shape[1]), n)
    predict = cpu_ms(lambda: predictor.predict(matrix), n)
    fmt = cpu_ms(lambda: codecs.format_response(predictions, codecs.CSV, batch=True), n)
    pieces_app = app_ms(app, body, n)
    app.cpus = NoSpareCpu()  # type: ignore[assignment]
    whole_app = app_ms(app, body, n)
    return (parse, predict, fmt, whole_app, pieces_app, *baseline_ms(body, booster, n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--width", type=int, default=2, choices=(2, 20))
    parser.add_argument(
        "--served-only",
        action="store_true",
        help="only the real serve's rows (for another commit's code: PYTHONPATH=its "
        "containers/common)",
    )
    args = parser.parse_args()
    load_before = load_average()
    reuse_freed_memory()  # as the workers do (server.main, before the fork)
    body, rows, features = make_body(args.width)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        booster = train(base / "model", features)
        n = args.requests
        proc, port = start_serve(base)
        try:
            lone, _, _ = served_ms(port, proc.pid, body, n, 1)
            worker, clients, faults = served_ms(port, proc.pid, body, n, 2)
        finally:
            proc.terminate()
            proc.wait(30)
        if not args.served_only:
            stages = in_process(base, body, booster, n)
    print(f"load average (1, 5, 15 min) before: {load_before}; after: {load_average()}")
    print(
        f"{args.width} features, {len(body):,} B, {rows:,} rows; CPU ms per request, "
        f"median of {n}; the workers' page faults per request (2 clients): {faults:,.0f}"
    )
    print()
    print("| stage | CPU ms | share of the worker's |")
    print("| --- | --- | --- |")
    served = (
        ("worker, 1 client (`/proc`, user + system)", lone),
        ("**worker, 2 clients** (`/proc`, user + system)", worker),
        ("the 2 clients' share (this process)", clients),
    )
    if args.served_only:
        for name, value in served:
            print(f"| {name} | {value:.1f} | {100 * value / worker:.0f}% |")
        return
    parse, predict, fmt, whole_app, pieces_app, base_parse, base_predict = stages
    for name, value in (
        ("parse (`codecs.parse_request`)", parse),
        ("predict (`Predictor.predict`, 1 thread)", predict),
        ("format (`codecs.format_response`, CSV)", fmt),
        ("parse + predict + format", parse + predict + fmt),
        ("app, every CPU busy (whole body, all threads' CPU)", whole_app),
        ("app, a spare CPU (pieces on 2 threads, all threads' CPU)", pieces_app),
        ("HTTP and gunicorn (worker, 2 clients - app, every CPU busy)", worker - whole_app),
        *served,
    ):
        print(f"| {name} | {value:.1f} | {100 * value / worker:.0f}% |")
    wall = base_parse + base_predict / 2
    print()
    print(f"Baseline: parse + DMatrix {base_parse:.1f} ms, predict {base_predict:.1f} ms CPU "
          f"(1 thread): at least {wall:.1f} ms a request on an idle machine; serve with 2 "
          f"clients about 2 x {wall:.1f} / ({worker:.1f} + {clients:.1f}) = "
          f"**{2 * wall / (worker + clients):.2f}x** its rate")  # fmt: skip


if __name__ == "__main__":
    main()

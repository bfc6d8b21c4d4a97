"""Serving benchmark: the real ``serve`` against a Flask dev-server baseline and the raw limit.

    .venv/bin/python bench/serving.py [--seconds 10] [--batches 6]

Measures, for the reference workflow's model (x, y -> reg:logistic, 5 rounds):

* single-record requests (``text/csv`` body ``37,82``): requests/s and p50/p99 latency, with
  ``wrk`` when it is installed (``apt-get install wrk``), else a keep-alive Python client;
* 6 MB CSV batches (about 1 M rows of two features): rows/s end to end over HTTP;
* the raw limit: the same bytes parsed and predicted in-process (no HTTP, no response text),
  with the server's own parser and predictor: in one process with a worker's XGBoost threads
  and with one per CPU, and in one process per CPU (as the server's workers); the better of a
  run before and one after the servers. Also the same plus writing the CSV response text,
  to show what serialisation costs.

Prints a Markdown table (the ``## Serving`` section of bench/README.md). CI does not run it.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xgboost as xgb
from mlstack_containers import model_io
from mlstack_containers.serving import codecs
from mlstack_containers.serving.app import Predictor
from mlstack_containers.serving.config import ServerConfig, cpu_count

REPO = Path(__file__).resolve().parents[1]
SERVE = REPO / "containers" / "inference" / "serve"
FLASK = REPO / "bench" / "flask_baseline.py"
SINGLE = b"37,82"
LIMIT = 6 * 1024 * 1024


def train(model_dir: Path) -> None:
    rng = np.random.default_rng(0)
    features = rng.integers(0, 101, size=(10_000, 2)).astype(np.float32)
    labels = (features[:, 1] >= 3 * features[:, 0] + 5).astype(np.float32)
    params = {"objective": "reg:logistic", "eval_metric": "rmse"}
    booster = xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=5)
    model_io.save_model(booster, model_dir)


def batch_body() -> tuple[bytes, int]:
    """Just under 6 MB of CSV rows ``x,y``."""
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 101, size=(1_200_000, 2))
    text = "\n".join(f"{a},{b}" for a, b in rows.tolist()).encode()
    body = text[: text.rfind(b"\n", 0, LIMIT - 1024)]
    return body, body.count(b"\n") + 1


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not become ready")


def start_serve(base: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MLSTACK_BIND_HOST": "127.0.0.1",
        "MLSTACK_PYTHON": sys.executable,
        "SAGEMAKER_BATCH": "true",
    }
    proc = subprocess.Popen(
        [str(SERVE)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_ready(port, proc)
    return proc, port


def start_flask(base: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(FLASK), str(base / "model"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(port, proc)
    return proc, port


# -- load generators --------------------------------------------------------------------------


def wrk_single(port: int, connections: int, seconds: int) -> dict[str, float]:
    script = Path(tempfile.mkdtemp()) / "single.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.body = "37,82"\nwrk.headers["Content-Type"] = "text/csv"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/invocations"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"errors under load:\n{out}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%")}


def python_single(port: int, connections: int, seconds: int) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        local = []
        while time.perf_counter() < stop:
            t = time.perf_counter()
            conn.request("POST", "/invocations", SINGLE, {"Content-Type": "text/csv"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"status {resp.status}")
            local.append(time.perf_counter() - t)
            if resp.getheader("Connection", "").lower() == "close" or resp.version == 10:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port)
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50": latencies[len(latencies) // 2] * 1e3,
        "p99": latencies[int(len(latencies) * 0.99)] * 1e3,
    }


def batches(port: int, body: bytes, rows: int, requests: int, concurrency: int) -> float:
    """Rows/s of ``requests`` 6 MB requests: one at a time, the median request; else overall.

    Every response is checked (status, and its size against the first, fully parsed one); the
    first is also counted line by line, outside the timing (the client's work, not the server's).
    """

    def one(_: int) -> tuple[float, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        started = time.perf_counter()
        conn.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
        resp = conn.getresponse()
        out = resp.read()
        elapsed = time.perf_counter() - started
        conn.close()
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}: {out[:200]!r}")
        return elapsed, out

    _, first = one(0)  # warm-up, checked in full
    if first.rstrip(b"\n").count(b"\n") + 1 != rows:
        raise RuntimeError(f"expected {rows} predictions: {first[:200]!r}")

    def checked(i: int) -> float:
        elapsed, out = one(i)
        if len(out) != len(first):
            raise RuntimeError(f"response of {len(out)} bytes, expected {len(first)}")
        return elapsed

    if concurrency == 1:
        return rows / statistics.median(checked(i) for i in range(requests))
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(checked, range(requests)))
    return rows * requests / (time.perf_counter() - started)


# -- raw limit --------------------------------------------------------------------------------


def _raw_predictor(base: str, threads: int) -> Predictor:
    config = ServerConfig(model_dir=Path(base) / "model", predict_threads=threads)
    return Predictor.load(config)


def raw_single(base: Path, seconds: float) -> float:
    predictor = _raw_predictor(str(base), 1)
    n, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        predictor.predict(codecs.parse_request(SINGLE, codecs.CSV, 2))
        n += 1
    return n / seconds


def _raw_batch_worker(args: tuple[str, bytes, int, int, int, bool]) -> float:
    """Rows/s of the median parse + predict (+ CSV text when ``text``) of ``body``."""
    base, body, rows, repeats, threads, text = args
    predictor = _raw_predictor(base, threads)
    times = []
    for i in range(repeats + 1):  # the first is a warm-up
        started = time.perf_counter()
        predictions = predictor.predict(codecs.parse_request(body, codecs.CSV, 2))
        if text:
            codecs.format_response(predictions, codecs.CSV, batch=True)
        if i:
            times.append(time.perf_counter() - started)
    return rows / statistics.median(times)


def raw_batch(
    base: Path, body: bytes, rows: int, repeats: int, processes: int, threads: int, text: bool
) -> float:
    """In-process rows/s: one process with ``threads`` XGBoost threads, or the sum over
    ``processes`` processes running at once (spawned: no fork after OpenMP)."""
    job = (str(base), body, rows, repeats, threads, text)
    if processes == 1:
        return _raw_batch_worker(job)
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return sum(pool.map(_raw_batch_worker, [job] * processes))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per single-record run")
    parser.add_argument("--batches", type=int, default=10, help="6 MB requests per batch run")
    args = parser.parse_args()
    cpus = cpu_count()
    worker_threads = ServerConfig.from_env({}).predict_threads  # what each `serve` worker gets
    single = wrk_single if shutil.which("wrk") else python_single
    loadgen = "wrk 4.1 (1 thread)" if single is wrk_single else "Python http.client threads"
    body, rows = batch_body()
    load_before = load_average()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        train(base / "model")

        def limits() -> dict[str, float]:
            n = args.batches
            return {
                "single": raw_single(base, 3),
                "b1": raw_batch(base, body, rows, n, 1, worker_threads, False),
                "b1_all": raw_batch(base, body, rows, n, 1, cpus, False),
                "b1_text": raw_batch(base, body, rows, n, 1, worker_threads, True),
                "bn": raw_batch(base, body, rows, n, cpus, 1, False),
                "bn_text": raw_batch(base, body, rows, n, cpus, 1, True),
            }

        before = limits()
        servers = {}
        for name, start in (("serve", start_serve), ("flask", start_flask)):
            proc, port = start(base)
            try:
                s1 = single(port, 1, args.seconds)
                s4 = single(port, 4, args.seconds)
                b1 = batches(port, body, rows, args.batches, 1)
                bn = batches(port, body, rows, args.batches * cpus, cpus)
            finally:
                proc.terminate()
                proc.wait(30)
            servers[name] = (s1, s4, b1, bn)
        after = limits()
    raw = {k: max(before[k], after[k]) for k in before}  # the better of two runs: the limit

    print(
        f"CPUs: {cpus}; single-record load: {loadgen}; batch body: {len(body)} bytes, {rows} rows;"
        f" load average (1, 5, 15 min) before: {load_before}, after: {load_average()}"
    )
    print()
    print(
        "| | single, 1 conn: req/s (p50 / p99 ms) | single, 4 conns: req/s (p50 / p99 ms) "
        f"| 6 MB batches, 1 at a time: rows/s | 6 MB batches, {cpus} at a time: rows/s |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, label in (("serve", "`serve` (gunicorn gthread)"), ("flask", "Flask dev server")):
        s1, s4, b1, bn = servers[name]
        print(
            f"| {label} | {s1['rps']:,.0f} ({s1['p50']:.2f} / {s1['p99']:.2f}) "
            f"| {s4['rps']:,.0f} ({s4['p50']:.2f} / {s4['p99']:.2f}) | {b1:,.0f} | {bn:,.0f} |"
        )
    print(
        f"| raw parse + predict, in-process | {raw['single']:,.0f} (1 process) | n/a "
        f"| {raw['b1']:,.0f} (1 process, {worker_threads} XGBoost thread(s) as a worker); "
        f"{raw['b1_all']:,.0f} ({cpus} threads) | {raw['bn']:,.0f} ({cpus} processes) |"
    )
    print(
        f"| raw parse + predict + CSV response text | n/a | n/a | {raw['b1_text']:,.0f} "
        f"| {raw['bn_text']:,.0f} |"
    )
    serve, flask = servers["serve"], servers["flask"]
    strict = max(raw["b1"], raw["b1_all"])
    print()
    print(f"single-record req/s, serve / Flask: 1 conn {serve[0]['rps'] / flask[0]['rps']:.1f}x, "
          f"4 conns {serve[1]['rps'] / flask[1]['rps']:.1f}x")  # fmt: skip
    print(f"batch rows/s, serve / raw parse + predict: 1 at a time {serve[2] / strict:.2f}x "
          f"(best raw threads), {serve[2] / raw['b1']:.2f}x (a worker's threads); "
          f"{cpus} at a time vs {cpus} raw processes {serve[3] / raw['bn']:.2f}x")  # fmt: skip
    text1, textn = serve[2] / raw["b1_text"], serve[3] / raw["bn_text"]
    print(f"batch rows/s, serve / raw parse + predict + CSV text: 1 at a time {text1:.2f}x, "
          f"{cpus} at a time {textn:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()

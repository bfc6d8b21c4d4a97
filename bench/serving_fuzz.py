"""Fuzz + load: 32 keep-alive connections against the real ``serve`` for 45 s or more.

    .venv/bin/python bench/serving_fuzz.py [--seconds 45] [--connections 32] [--fuzz 0.3]

Each connection sends, back to back, a generated hostile request (``tests/serving/fuzz_client``:
every content type, broken bodies and framings, short bodies, bodies over the limit) with
probability ``--fuzz`` and otherwise a valid one-record CSV request whose answer is checked.
The server's memory (RSS of the master and its workers, from /proc) is sampled every second.
At the end: requests by status, failures (5xx, resets, closes without ``Connection: close``,
wrong predictions), whether the worker PIDs are those of the start, ``/ping``, and RSS at the
start, the peak and the end. Exits 1 on any failure. CI does not run it (the fuzz test in
``make test`` is its bounded sibling).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.serving.conftest import reference_data, start_serve, stop_serve  # noqa: E402
from tests.serving.fuzz_client import Connection, Request, Tally, request_for  # noqa: E402
from tests.serving.test_serving_hostile import booted_workers, worker_pids  # noqa: E402

VALID = Request(
    b"POST /invocations HTTP/1.1\r\nHost: load\r\nContent-Type: text/csv\r\n"
    b"Content-Length: 5\r\n\r\n",
    b"37,82",
    label="valid 37,82",
)


def rss_kib(master: int) -> int:
    total = 0
    for pid in [master, *worker_pids(master)]:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--fuzz", type=float, default=0.3)
    args = parser.parse_args()

    import numpy as np
    import xgboost as xgb
    from mlstack_containers import model_io

    features, labels = reference_data(2000)
    params = {"objective": "reg:logistic", "eval_metric": "rmse", "max_depth": 4}
    booster = xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=5)
    expected = b"%.9g" % float(booster.inplace_predict(np.array([[37, 82]], np.float32))[0])
    base = Path(tempfile.mkdtemp())
    model_io.save_model(booster, base / "model")
    server = start_serve(
        base, booster, SAGEMAKER_MODEL_SERVER_WORKERS="2", MLSTACK_ACCESS_LOG="false"
    )
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    try:
        workers = booted_workers(server.proc.pid)
        tally = Tally()
        wrong: list[str] = []
        rss = [rss_kib(server.proc.pid)]
        deadline = time.monotonic() + args.seconds

        def client(seed: int) -> None:
            rng = random.Random(seed)
            conn = Connection(server.port)
            try:
                while time.monotonic() < deadline:
                    if rng.random() < args.fuzz:
                        conn.send(request_for(rng, width=2), tally)
                        continue
                    status = conn.send(VALID, tally)
                    if status != 200 and len(wrong) < 20:
                        wrong.append(f"valid request answered {status}")
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.connections)]
        started = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            rss.append(rss_kib(server.proc.pid))
        elapsed = time.monotonic() - started
        answer = server.invoke(b"37,82", "text/csv")
        same_workers = worker_pids(server.proc.pid) == workers
        ping = server.request("GET", "/ping").status
    finally:
        stop_serve(server)
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"{args.connections} connections, {elapsed:.0f} s, fuzz share {args.fuzz}; "
          f"load average before {load_before}, after {load_after}")  # fmt: skip
    print(f"requests: {tally.sent:,} ({tally.sent / elapsed:,.0f}/s); by status: "
          f"{dict(sorted(tally.statuses.items()))}")  # fmt: skip
    print(f"failures (5xx, resets, silent closes): {len(tally.failures)}; wrong answers to "
          f"valid requests: {len(wrong)}")  # fmt: skip
    print(f"worker PIDs unchanged: {same_workers}; /ping after: {ping}; prediction after: "
          f"{answer.status} {answer.body == expected}")  # fmt: skip
    print(f"RSS (master + workers): start {rss[0] / 1024:.1f} MiB, peak {max(rss) / 1024:.1f} "
          f"MiB, end {rss[-1] / 1024:.1f} MiB; every 5 s (MiB): "
          f"{', '.join(f'{v / 1024:.0f}' for v in rss[::5])}")  # fmt: skip
    for line in tally.failures[:10] + wrong[:10]:
        print("  ", line)
    ok = not tally.failures and not wrong and same_workers and ping == 200
    return 0 if ok and answer.status == 200 and answer.body == expected else 1


if __name__ == "__main__":
    sys.exit(main())

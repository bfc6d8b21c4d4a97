"""6 MB CSV batches: ``serve`` against a user's own one-process parse + predict, side by side.

    .venv/bin/python bench/csv_batches.py [--rounds 3] [--requests 8]

For two bodies of just under 6 MB (20 float features a row, and the reference workflow's two
integer features a row) and a model of that width (reg:logistic, 5 rounds):

* **baseline**: what a user would write in one process,
  ``pandas.read_csv(io.BytesIO(body), header=None).to_numpy(np.float32)`` then
  ``booster.predict(xgb.DMatrix(X))`` (XGBoost's default threads), rows/s of the median of
  ``--requests`` runs;
* **serve**: the real server (2 workers, ``SAGEMAKER_BATCH=true``), 2 client threads posting
  the same body ``--requests`` times each; rows/s over the whole run (responses checked);
* the two alternate ``--rounds`` times (baseline, serve, baseline, ...) so that both see the
  same load from other jobs on the machine; the load average is printed before and after;
* the parser candidates on the same bytes, in this process: ``np.loadtxt``, pandas' C parser
  (float32 and float64 then cast), pyarrow's CSV reader multi-threaded and single-threaded
  (when pyarrow is installed), and the server's own ``codecs.parse_csv``.

Prints Markdown for bench/README.md. CI does not run it.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from mlstack_containers import model_io
from mlstack_containers.serving import codecs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import free_port, load_average, wait_ready

REPO = Path(__file__).resolve().parents[1]
SERVE = REPO / "containers" / "inference" / "serve"
LIMIT = 6 * 1024 * 1024


def make_body(width: int) -> tuple[bytes, int, np.ndarray]:
    rng = np.random.default_rng(1)
    if width == 2:  # the reference rows: x, y integers 0..100
        rows = rng.integers(0, 101, size=(1_200_000, 2)).astype(np.float32)
        text = "\n".join(f"{a:.0f},{b:.0f}" for a, b in rows.tolist())
    else:
        rows = (rng.random((60_000, width)) * 100).astype(np.float32)
        text = "\n".join(",".join(f"{v:.6g}" for v in r) for r in rows.tolist())
    raw = text.encode()
    body = raw[: raw.rfind(b"\n", 0, LIMIT - 1024)]
    n = body.count(b"\n") + 1
    return body, n, rows[:n]


def train(model_dir: Path, features: np.ndarray) -> xgb.Booster:
    labels = (features[:, 1] >= 3 * features[:, 0] + 5).astype(np.float32)
    params = {"objective": "reg:logistic", "eval_metric": "rmse"}
    booster = xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=5)
    model_io.save_model(booster, model_dir)
    return booster


def baseline(body: bytes, booster: xgb.Booster) -> np.ndarray:
    X = pd.read_csv(io.BytesIO(body), header=None).to_numpy(np.float32)
    return booster.predict(xgb.DMatrix(X))


def baseline_rows_per_s(body: bytes, rows: int, booster: xgb.Booster, requests: int) -> float:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        baseline(body, booster)
        times.append(time.perf_counter() - started)
    return rows / statistics.median(times)


def start_serve(base: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MLSTACK_BIND_HOST": "127.0.0.1",
        "MLSTACK_PYTHON": sys.executable,
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "MLSTACK_ACCESS_LOG": "false",
    }
    proc = subprocess.Popen(
        [str(SERVE)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_ready(port, proc)
    return proc, port


def serve_rows_per_s(port: int, body: bytes, rows: int, want: bytes, requests: int) -> float:
    def client(_: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            for _ in range(requests):
                conn.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
                resp = conn.getresponse()
                out = resp.read()
                if resp.status != 200 or len(out) != len(want):
                    raise RuntimeError(f"status {resp.status}, {len(out)} bytes: {out[:200]!r}")
        finally:
            conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(client, range(2)))
    return 2 * requests * rows / (time.perf_counter() - started)


# -- parser candidates ---------------------------------------------------------------------


def candidates() -> dict[str, object]:
    found: dict[str, object] = {
        "np.loadtxt (float32)": lambda b: codecs._parse_csv_numpy(b),
        "pandas C parser, dtype float32": lambda b: pd.read_csv(
            io.BytesIO(b), header=None, dtype=np.float32, engine="c"
        ).to_numpy(np.float32),
        "pandas C parser, float64 then cast": lambda b: pd.read_csv(
            io.BytesIO(b), header=None, engine="c"
        ).to_numpy(np.float32),
        "serve's codecs.parse_csv (pandas + checks)": codecs.parse_csv,
    }
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        def arrow(threads: bool):
            def parse(b: bytes) -> np.ndarray:
                width = b[: b.find(b"\n")].count(b",") + 1
                table = pacsv.read_csv(
                    pa.BufferReader(b),
                    read_options=pacsv.ReadOptions(
                        autogenerate_column_names=True, use_threads=threads
                    ),
                    convert_options=pacsv.ConvertOptions(
                        column_types={f"f{i}": pa.float32() for i in range(width)}
                    ),
                )
                out = np.empty((table.num_rows, width), np.float32)
                for i, column in enumerate(table.columns):
                    out[:, i] = column.to_numpy(zero_copy_only=False)
                return out

            return parse

        found["pyarrow.csv, multi-threaded"] = arrow(True)
        found["pyarrow.csv, one thread"] = arrow(False)
    except ImportError:
        pass
    return found


def parse_figures(body: bytes, rows: int, repeats: int = 5) -> list[tuple[str, float, bool]]:
    reference = codecs._parse_csv_numpy(body)
    out = []
    for name, parse in candidates().items():
        parse(body)  # type: ignore[operator]
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            got = parse(body)  # type: ignore[operator]
            times.append(time.perf_counter() - started)
        same = got.shape == reference.shape and got.tobytes() == reference.tobytes()
        out.append((name, rows / min(times), same))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=8)
    args = parser.parse_args()
    print(f"load average (1, 5, 15 min) before: {load_average()}")
    results = {}
    for width in (20, 2):
        body, rows, features = make_body(width)
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            booster = train(base / "model", features)
            want = codecs.format_response(baseline(body, booster), codecs.CSV, batch=True)
            proc, port = start_serve(base)
            try:
                serve_rows_per_s(port, body, rows, want, 1)  # warm-up, both workers
                base_runs, serve_runs = [], []
                for _ in range(args.rounds):
                    base_runs.append(baseline_rows_per_s(body, rows, booster, args.requests))
                    serve_runs.append(serve_rows_per_s(port, body, rows, want, args.requests))
            finally:
                proc.terminate()
                proc.wait(30)
            parsers = parse_figures(body, rows)
        results[width] = (len(body), rows, base_runs, serve_runs, parsers)
    print(f"load average (1, 5, 15 min) after: {load_average()}")
    print()
    print("| body | baseline rows/s (per round) | `serve` rows/s, 2 clients (per round) "
          "| serve / baseline (median) |")  # fmt: skip
    print("| --- | --- | --- | --- |")
    for width, (size, rows, base_runs, serve_runs, _) in results.items():
        ratio = statistics.median(s / b for s, b in zip(serve_runs, base_runs, strict=True))
        print(
            f"| {width} features, {size:,} B, {rows:,} rows "
            f"| {', '.join(f'{v:,.0f}' for v in base_runs)} "
            f"| {', '.join(f'{v:,.0f}' for v in serve_runs)} | **{ratio:.2f}x** |"
        )
    print()
    print("| parser (in-process, best of 5) | 20 features: rows/s | 2 features: rows/s "
          "| same float32 bits as np.loadtxt |")  # fmt: skip
    print("| --- | --- | --- | --- |")
    names = [name for name, _, _ in results[20][4]]
    for i, name in enumerate(names):
        wide, narrow = results[20][4][i], results[2][4][i]
        print(f"| {name} | {wide[1]:,.0f} | {narrow[1]:,.0f} | {wide[2] and narrow[2]} |")


if __name__ == "__main__":
    main()

"""Raw-record CSV batches: ``serve`` of a model with ``schema.json`` against a user's own
one-process ``pandas.read_csv`` + category encoding + ``Booster.predict``, side by side.

    .venv/bin/python bench/raw_records.py [--rounds 3] [--requests 6]

The dataset: 20 columns, half categorical (10 text columns of 4-40 categories such as
``c3_v17``) and half numeric (floats with ~2% missing), binary label; a model of 20 rounds,
depth 6 (binary:logistic) with its schema.json. The body: raw rows (text categories, empty
fields for missing values, ~3% categories unknown to the model), no header, just under 6 MB.

* **baseline**: what a user would write in one process: ``pandas.read_csv`` with each
  categorical column read as ``category``, its categories looked up in the schema's
  (``Index.get_indexer``; unknown or missing -> NaN), the numbers as float32, one matrix,
  ``booster.predict(xgb.DMatrix(X))`` with
  XGBoost's default threads; rows/s of the median of ``--requests`` runs. It writes no
  answer text.
* **serve**: the real server (2 workers, ``SAGEMAKER_BATCH=true``), 2 client threads posting the
  same body ``--requests`` times each, answers ``predicted_label,probability`` checked against
  the baseline's predictions; rows/s over the whole run.
* the two alternate ``--rounds`` times; the load average is printed before and after.

Prints Markdown for bench/README.md. CI does not run it.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import free_port, load_average, wait_ready

REPO = Path(__file__).resolve().parents[1]
SERVE = REPO / "containers" / "inference" / "serve"
LIMIT = 6 * 1024 * 1024
NUMERIC, CATEGORICAL = 10, 10
CLASSES = ["no", "yes"]


def make_dataset(rows: int, seed: int = 1) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """Raw columns (n0..n9 numeric, c0..c9 text), the schema, and the binary label."""
    rng = np.random.default_rng(seed)
    frame = {}
    features = []
    signal = np.zeros(rows)
    for i in range(NUMERIC):
        values = rng.normal(50, 20, rows).round(3)
        signal += values * rng.normal(0, 0.02)
        values[rng.random(rows) < 0.02] = np.nan
        frame[f"n{i}"] = values
        features.append({"name": f"n{i}", "type": "numeric"})
    for i in range(CATEGORICAL):
        k = 4 + 4 * i
        categories = sorted(f"c{i}_v{j}" for j in range(k))
        codes = rng.integers(0, k, rows)
        signal += rng.normal(0, 1, k)[codes]
        frame[f"c{i}"] = np.array(categories, dtype=object)[codes]
        features.append({"name": f"c{i}", "type": "categorical", "categories": categories})
    labels = (signal > np.median(signal)).astype(np.float32)
    schema = {
        "schema_version": 1,
        "problem_type": "binary",
        "label": {"name": "label", "type": "categorical", "classes": CLASSES},
        "features": features,
        "rows": {"train": rows, "validation": 0, "test": 0, "rejected": 0},
    }
    return pd.DataFrame(frame), schema, labels


def encode(frame: pd.DataFrame, schema: dict) -> np.ndarray:
    out = np.empty((len(frame), len(schema["features"])), np.float32)
    for col, feature in enumerate(schema["features"]):
        series = frame[feature["name"]]
        if feature["type"] == "numeric":
            out[:, col] = series.to_numpy(np.float32)
        else:
            codes = pd.Categorical(series, categories=feature["categories"]).codes
            out[:, col] = np.where(codes < 0, np.nan, codes)
    return out


def make_body(frame: pd.DataFrame) -> tuple[bytes, int]:
    unknown = frame.copy()
    rng = np.random.default_rng(2)
    for i in range(CATEGORICAL):  # ~3% categories the model never saw: missing
        hit = rng.random(len(unknown)) < 0.03
        unknown.loc[hit, f"c{i}"] = "never_seen"
    text = unknown.to_csv(header=False, index=False, lineterminator="\n").encode()
    body = text[: text.rfind(b"\n", 0, LIMIT - 1024)]
    return body, body.count(b"\n") + 1


def baseline(body: bytes, schema: dict, booster: xgb.Booster) -> np.ndarray:
    """The hand-written one-process version: parse, encode the categories, predict."""
    names = [f["name"] for f in schema["features"]]
    kinds = {f["name"]: f["type"] for f in schema["features"]}
    dtypes = {n: "category" if kinds[n] == "categorical" else "float32" for n in names}
    frame = pd.read_csv(io.BytesIO(body), header=None, names=names, dtype=dtypes)
    X = np.empty((len(frame), len(names)), np.float32)
    for col, feature in enumerate(schema["features"]):
        series = frame[feature["name"]]
        if feature["type"] == "categorical":  # the model's index of each category, -1: unknown
            lookup = pd.Index(feature["categories"]).get_indexer(series.cat.categories)
            codes = np.where(series.cat.codes < 0, -1, lookup[series.cat.codes])
            X[:, col] = np.where(codes < 0, np.nan, codes)
        else:
            X[:, col] = series.to_numpy(np.float32)
    return booster.predict(xgb.DMatrix(X))


def baseline_rows_per_s(body, rows, schema, booster, requests) -> float:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        baseline(body, schema, booster)
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


def check(answer: bytes, predictions: np.ndarray) -> None:
    lines = answer.split(b"\n")
    if len(lines) != len(predictions):
        raise RuntimeError(f"{len(lines)} answer lines for {len(predictions)} rows")
    want = np.where(predictions > 0.5, "yes", "no")
    got = np.array([line.split(b",", 1)[0].decode() for line in lines])
    probability = np.array([float(line.split(b",", 1)[1]) for line in lines])
    if not (got == want).all():
        raise RuntimeError("predicted labels differ from the baseline's")
    np.testing.assert_allclose(probability, np.maximum(predictions, 1 - predictions), rtol=1e-5)


def serve_rows_per_s(port: int, body: bytes, rows: int, length: int, requests: int) -> float:
    def client(_: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            for _ in range(requests):
                conn.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
                resp = conn.getresponse()
                out = resp.read()
                if resp.status != 200 or len(out) != length:
                    raise RuntimeError(f"status {resp.status}, {len(out)} bytes: {out[:200]!r}")
        finally:
            conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(client, range(2)))
    return 2 * requests * rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=6)
    args = parser.parse_args()
    print(f"load average (1, 5, 15 min) before: {load_average()}")
    frame, schema, labels = make_dataset(60_000)
    body, rows = make_body(frame)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        params = {"objective": "binary:logistic", "max_depth": 6, "nthread": 2}
        booster = xgb.train(params, xgb.DMatrix(encode(frame, schema), label=labels), 20)
        model_io.save_model(booster, base / "model")
        (base / "model" / "schema.json").write_text(json.dumps(schema))
        predictions = baseline(body, schema, booster)
        proc, port = start_serve(base)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            conn.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
            answer = conn.getresponse().read()
            conn.close()
            check(answer, predictions)
            serve_rows_per_s(port, body, rows, len(answer), 1)  # warm-up, both workers
            base_runs, serve_runs = [], []
            for _ in range(args.rounds):
                base_runs.append(baseline_rows_per_s(body, rows, schema, booster, args.requests))
                serve_runs.append(serve_rows_per_s(port, body, rows, len(answer), args.requests))
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"load average (1, 5, 15 min) after: {load_average()}\n")
    ratios = [s / b for s, b in zip(serve_runs, base_runs, strict=True)]
    print(
        "| body | baseline rows/s (per round) | `serve` rows/s, 2 clients (per round) "
        "| serve / baseline (median of rounds) |"
    )
    print("| --- | --- | --- | --- |")
    print(
        f"| 10 numeric + 10 categorical columns, {len(body):,} B, {rows:,} rows "
        f"| {', '.join(f'{v:,.0f}' for v in base_runs)} "
        f"| {', '.join(f'{v:,.0f}' for v in serve_runs)} "
        f"| **{statistics.median(ratios):.2f}x** ({', '.join(f'{r:.2f}' for r in ratios)}) |"
    )


if __name__ == "__main__":
    main()

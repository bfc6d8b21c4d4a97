"""``prepare`` against a hand-written one-process pandas script, on the same generated CSV.

    .venv/bin/python bench/prepare.py [--rows 1000000] [--rounds 2] [--dir /tmp/mlstack-prepare]

The file: ``--rows`` rows, 20 columns: a text label (3 classes), 9 categorical features (text,
5 to 200 distinct values each) and 10 numeric features; 5 % of the feature fields are empty
(missing). Numbers drawn from numpy's PCG64 seeded 0, so every run writes the same bytes.

* **prepare**: the real program (``containers/training/prepare``, its /opt/ml layout under
  ``--dir``), ``--label label``, 70/15/15;
* **pandas**: what a user would write in one process: ``pandas.read_csv``, two stratified
  ``sklearn.model_selection.train_test_split`` calls (70/15/15) and ``to_csv`` of train,
  validation, test features and test labels.

Each runs as its own process, the two alternating ``--rounds`` times; wall time and the peak
resident set size of that process (``os.wait4``'s ``ru_maxrss``) are reported, with the load
average before and after. Prints Markdown for bench/README.md. CI does not run it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PREPARE = REPO / "containers" / "training" / "prepare"

BASELINE = """
import sys
import pandas as pd
from sklearn.model_selection import train_test_split

source, out = sys.argv[1], sys.argv[2]
frame = pd.read_csv(source)
train, rest = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["label"])
validation, test = train_test_split(rest, test_size=0.5, random_state=0, stratify=rest["label"])
train.to_csv(f"{out}/train.csv", header=False, index=False)
validation.to_csv(f"{out}/validation.csv", header=False, index=False)
test.drop(columns="label").to_csv(f"{out}/test.csv", header=False, index=False)
test["label"].to_csv(f"{out}/test-labels.csv", header=False, index=False)
"""


def generate(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    chunk = 100_000
    cardinalities = [5, 10, 20, 50, 100, 200, 7, 30, 3]
    names = ["label", *(f"cat{i}" for i in range(9)), *(f"num{i}" for i in range(10))]
    with path.open("w", encoding="utf-8") as f:
        f.write(",".join(names) + "\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            columns = [np.array(["alpha", "beta", "gamma"])[rng.integers(0, 3, n)]]
            for k in cardinalities:
                values = np.char.add("v", rng.integers(0, k, n).astype(str))
                columns.append(values)
            for _ in range(10):
                columns.append(np.char.mod("%.6g", rng.normal(0, 100, n)))
            for column in columns[1:]:
                column[rng.random(n) < 0.05] = ""
            f.write("\n".join(",".join(row) for row in zip(*columns, strict=True)) + "\n")


def measure(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in MiB) of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[0]} failed with status {status}")
    return wall, usage.ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/mlstack-prepare"))
    args = parser.parse_args()
    base = args.dir
    data = base / "processing" / "input" / "data"
    data.mkdir(parents=True, exist_ok=True)
    source = data / "table.csv"
    if not source.exists():
        generate(source, args.rows)
    size = source.stat().st_size
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    results: dict[str, list[tuple[float, int]]] = {"prepare": [], "pandas": []}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        shutil.rmtree(base / "processing" / "output", ignore_errors=True)
        results["prepare"].append(measure([str(PREPARE), "--label", "label"], env))
        out = base / "pandas"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        results["pandas"].append(
            measure([sys.executable, "-c", BASELINE, str(source), str(out)], env)
        )
    load.append(os.getloadavg()[0])
    print(
        f"{args.rows:,} rows, {size / 2**20:.0f} MiB; load average (1 min) {load[0]:.1f} before,"
        f" {load[1]:.1f} after"
    )
    print()
    print("| program | run | seconds | rows/s | peak RSS (MiB) |")
    print("| --- | --- | --- | --- | --- |")
    for name, runs in results.items():
        for i, (wall, rss) in enumerate(runs, start=1):
            print(f"| {name} | {i} | {wall:.1f} | {args.rows / wall:,.0f} | {rss:,} |")


if __name__ == "__main__":
    main()

"""Training benchmark: `containers/training/train` end to end vs raw in-process `xgboost.train`.

Both sides read the same 1,000,000-row CSV of the reference dataset (label = y >= 3x + 5, two
features) with the same parameters and thread count, and both evaluate the training set every
round (the job logs ``train-rmse``). Timed:

* ``train``        - the real program as a subprocess in File mode: interpreter start, imports,
                     reading the job, loading the CSV, training, writing the model;
* ``raw``          - in this process: ``np.loadtxt`` (the fastest CSV reader available here;
                     XGBoost's own text loader is deprecated since 3.1) + ``DMatrix`` +
                     ``xgboost.train``;
* ``raw process``  - the same raw code in a fresh ``python -c``, so interpreter start and
                     ``import xgboost`` are counted as they are for ``train``.

Usage: .venv/bin/python bench/training.py [--rows 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xgboost as xgb

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "containers" / "training" / "train"
CONFIGS = {
    # The reference workflow's hyperparameters.
    "reference (5 rounds)": {"objective": "reg:logistic", "eval_metric": "rmse", "num_round": 5},
    # A job where training, not start-up, dominates.
    "100 rounds, depth 6": {
        "objective": "reg:logistic",
        "eval_metric": "rmse",
        "num_round": 100,
        "max_depth": 6,
    },
}
RAW = """
import sys, numpy as np, xgboost as xgb
params, rounds, path, nthread = eval(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
a = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
d = xgb.DMatrix(a[:, 1:], label=a[:, 0], nthread=nthread)
xgb.train(params, d, rounds, evals=[(d, "train")], verbose_eval=False)
"""


def write_dataset(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, rows)
    y = rng.uniform(0, 400, rows)
    label = (y >= 3 * x + 5).astype(np.int8)
    with open(path, "w") as fh:
        for start in range(0, rows, 100_000):
            chunk = slice(start, start + 100_000)
            lines = [
                f"{lab},{a:.4f},{b:.4f}"
                for lab, a, b in zip(label[chunk], x[chunk], y[chunk], strict=True)
            ]
            fh.write("\n".join(lines) + "\n")


def xgb_params(hyper: dict, nthread: int) -> tuple[dict, int]:
    params = {k: v for k, v in hyper.items() if k != "num_round"}
    params["nthread"] = nthread
    return params, int(hyper["num_round"])


def raw_in_process(csv: Path, hyper: dict, nthread: int) -> tuple[float, xgb.Booster]:
    params, rounds = xgb_params(hyper, nthread)
    started = time.perf_counter()
    a = np.loadtxt(csv, delimiter=",", dtype=np.float32, ndmin=2)
    d = xgb.DMatrix(a[:, 1:], label=a[:, 0], nthread=nthread)
    booster = xgb.train(params, d, rounds, evals=[(d, "train")], verbose_eval=False)
    return time.perf_counter() - started, booster


def raw_process(csv: Path, hyper: dict, nthread: int) -> float:
    params, rounds = xgb_params(hyper, nthread)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", RAW, repr(params), str(rounds), str(csv), str(nthread)],
        check=True,
    )
    return time.perf_counter() - started


def train_program(base: Path, csv: Path, hyper: dict) -> float:
    (base / "input" / "config").mkdir(parents=True, exist_ok=True)
    data_dir = base / "input" / "data" / "train"
    data_dir.mkdir(parents=True, exist_ok=True)
    link = data_dir / "train.csv"
    if not link.exists():
        link.symlink_to(csv)
    config = base / "input" / "config"
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hyper.items()}))
    (config / "inputdataconfig.json").write_text(
        json.dumps({"train": {"ContentType": "text/csv", "TrainingInputMode": "File"}})
    )
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "MLSTACK_PYTHON": sys.executable}
    started = time.perf_counter()
    subprocess.run([str(TRAIN)], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=REPO / ".work" / "bench")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    csv = args.data_dir / f"reference-{args.rows}.csv"
    if not csv.exists():
        write_dataset(csv, args.rows)
    nthread = len(os.sched_getaffinity(0))
    print(
        f"{args.rows:,} rows ({csv.stat().st_size / 1e6:.1f} MB), {nthread} threads, "
        f"XGBoost {xgb.__version__}, median (min) of {args.repeat} runs\n"
    )
    print(
        "| job | raw in-process | raw process | `train` | train / raw in-process "
        "| train / raw process |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, hyper in CONFIGS.items():
            base = Path(tmp) / name.replace(" ", "_").replace(",", "")
            raw_in_process(csv, hyper, nthread)  # warm the page cache and the allocator
            raw, procs, trains = [], [], []
            for _ in range(args.repeat):
                seconds, booster = raw_in_process(csv, hyper, nthread)
                raw.append(seconds)
                procs.append(raw_process(csv, hyper, nthread))
                trains.append(train_program(base, csv, hyper))
            # Same data, same parameters: the same model.
            from mlstack_containers.model_io import load_model

            sample = xgb.DMatrix(np.loadtxt(csv, delimiter=",", max_rows=1000)[:, 1:])
            ours = load_model(base / "model").booster.predict(sample)
            np.testing.assert_allclose(ours, booster.predict(sample), rtol=0, atol=1e-6)
            r, p, t = (statistics.median(v) for v in (raw, procs, trains))
            print(
                f"| {name} | {r:.2f}s ({min(raw):.2f}) | {p:.2f}s ({min(procs):.2f}) "
                f"| {t:.2f}s ({min(trains):.2f}) | {t / r:.2f}x | {t / p:.2f}x |"
            )


if __name__ == "__main__":
    main()

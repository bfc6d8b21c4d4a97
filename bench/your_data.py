"""Accuracy of a first run on a user's table (the training defaults of its problem type) against
a plain ``xgboost`` script on the same split.

    .venv/bin/python bench/your_data.py [--seeds 5] [--dir /tmp/mlstack-your-data]

Data: scikit-learn's bundled breast cancer (binary), iris and wine (multiclass) and diabetes
(regression), each made a user's table as tests/training do: the label as text where the data
names its classes, a categorical text column (the first feature's quartiles) and 5 % missing
values in two columns.

* **mlstack**: the container programs as processes with the /opt/ml layout: ``prepare --label
  label --seed S`` (70/15/15, stratified for classes), ``train`` with the ``train``,
  ``validation`` and ``schema`` channels and NO hyperparameters (so the defaults of the schema's
  problem type: objective, evaluation metric, num_class, 1000 rounds with early stopping after
  20 rounds without improvement on validation), the test shard scored by the trained booster
  (standing in for batch transform) and ``evaluate`` on those scores; its ``evaluation.json``
  gives the figures.
* **xgboost**: what a user writes by hand on the same split: the train and validation shards
  together (every row that is not test) into ``xgboost.XGBClassifier()`` /
  ``XGBRegressor()`` with the library's defaults (100 rounds), scored on the same test shard with
  scikit-learn's ``accuracy_score`` / ``roc_auc_score`` / RMSE.

Each dataset runs with ``--seeds`` split seeds (0, 1, ...); the mean and the worst difference
are printed as Markdown for bench/README.md. CI does not run it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn import datasets
from sklearn.metrics import accuracy_score, roc_auc_score

REPO = Path(__file__).resolve().parent.parent
PROGRAMS = REPO / "containers" / "training"
CSV = {"ContentType": "text/csv", "TrainingInputMode": "File"}

# name: (loader, the target has class names, the problem type, the figures compared)
DATASETS = {
    "breast_cancer": (datasets.load_breast_cancer, True, "binary", ("accuracy", "auc")),
    "iris": (datasets.load_iris, True, "multiclass", ("accuracy",)),
    "wine": (datasets.load_wine, True, "multiclass", ("accuracy",)),
    "diabetes": (datasets.load_diabetes, False, "regression", ("rmse",)),
}


def table(load, named: bool, seed: int = 4) -> pd.DataFrame:
    """The dataset as a user's table: text label, a categorical column, 5 % missing values."""
    loaded = load(as_frame=True)
    frame = loaded.frame.copy()
    target = frame.pop("target")
    frame["label"] = [loaded.target_names[t] for t in target] if named else target
    first = frame.columns[0]
    frame["band"] = pd.qcut(frame[first], 4, labels=["low", "mid", "high", "top"]).astype(str)
    rng = np.random.default_rng(seed)
    for column in (frame.columns[1], "band"):
        frame.loc[rng.random(len(frame)) < 0.05, column] = None
    return frame


def run(program: str, base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "SAGEMAKER_BASE_DIR": str(base),
        "PATH": os.environ["PATH"],
        "MLSTACK_PYTHON": sys.executable,
    }
    result = subprocess.run(
        [str(PROGRAMS / program), *args], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        failure = base / "output" / "failure"
        reason = failure.read_text() if failure.exists() else result.stderr[-2000:]
        raise SystemExit(f"{program} failed in {base}: {reason}")
    return result


def shard(path: Path) -> np.ndarray:
    return np.genfromtxt(path, delimiter=",", ndmin=2)


def mlstack(base: Path, frame: pd.DataFrame, seed: int) -> tuple[dict[str, float], int, Path]:
    """prepare -> train (defaults) -> score -> evaluate; the evaluation's flat metrics, the
    rounds kept, and prepare's output directory."""
    data = base / "prepare" / "processing" / "input" / "data"
    data.mkdir(parents=True)
    frame.to_csv(data / "table.csv", index=False)
    run("prepare", base / "prepare", "--label", "label", "--seed", str(seed))
    out = base / "prepare" / "processing" / "output"

    job = base / "train"
    config = job / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text("{}")
    channels = {"train": CSV, "validation": CSV, "schema": {"TrainingInputMode": "File"}}
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    for channel in ("train", "validation", "schema"):
        shutil.copytree(out / channel, job / "input" / "data" / channel)
    run("train", job)
    booster = xgb.Booster()
    booster.load_model(bytearray((job / "model" / "xgboost-model").read_bytes()))

    scores = booster.predict(xgb.DMatrix(shard(out / "test" / "part-00000.csv")))
    inputs = base / "evaluate" / "processing" / "input"
    for name in ("predictions", "labels", "model"):
        (inputs / name).mkdir(parents=True)
    shutil.copy(out / "test-labels" / "part-00000.csv", inputs / "labels" / "part-00000.csv")
    rows = scores if scores.ndim == 2 else scores[:, None]
    (inputs / "predictions" / "part-00000.csv.out").write_text(
        "".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in rows)
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted((job / "model").iterdir()):
            tar.add(path, arcname=path.name)
    (inputs / "model" / "model.tar.gz").write_bytes(buffer.getvalue())
    run("evaluate", base / "evaluate")
    summary = json.loads((base / "evaluate" / "output" / "message").read_text())
    return summary["metrics"], booster.num_boosted_rounds(), out


def plain_xgboost(out: Path, kind: str) -> dict[str, float]:
    """The hand-written baseline on the same split: every non-test row, the library's
    defaults."""
    train = np.vstack([shard(out / s / "part-00000.csv") for s in ("train", "validation")])
    test = shard(out / "test" / "part-00000.csv")
    labels = np.loadtxt(out / "test-labels" / "part-00000.csv")
    X, y = train[:, 1:], train[:, 0]
    if kind == "regression":
        predicted = xgb.XGBRegressor().fit(X, y).predict(test)
        return {"rmse": float(np.sqrt(np.mean((predicted - labels) ** 2)))}
    model = xgb.XGBClassifier().fit(X, y.astype(int))
    figures = {"accuracy": float(accuracy_score(labels, model.predict(test)))}
    if kind == "binary":
        figures["auc"] = float(roc_auc_score(labels, model.predict_proba(test)[:, 1]))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/mlstack-your-data"))
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print()
    print("| dataset | figure | mlstack (defaults) | plain xgboost | difference (worst) | rounds |")
    print("|---|---|---|---|---|---|")
    for name, (load, named, kind, figures) in DATASETS.items():
        frame = table(load, named)
        ours: dict[str, list[float]] = {f: [] for f in figures}
        theirs: dict[str, list[float]] = {f: [] for f in figures}
        rounds = []
        started = time.perf_counter()
        for seed in range(args.seeds):
            metrics, kept, out = mlstack(args.dir / name / str(seed), frame, seed)
            baseline = plain_xgboost(out, kind)
            rounds.append(kept)
            for figure in figures:
                ours[figure].append(metrics[figure])
                theirs[figure].append(baseline[figure])
        for figure in figures:
            a, b = np.array(ours[figure]), np.array(theirs[figure])
            # worse for us: lower accuracy/AUC, higher RMSE
            gap = (b - a) if figure != "rmse" else (a - b)
            print(
                f"| {name} ({len(frame)} rows, {kind}) | {figure} | {a.mean():.4f} | "
                f"{b.mean():.4f} | {np.mean(a - b):+.4f} ({gap.max():+.4f} worse) | "
                f"{min(rounds)}-{max(rounds)} |"
            )
        print(
            f"<!-- {name}: {args.seeds} seeds in {time.perf_counter() - started:.1f}s -->",
            file=sys.stderr,
        )
    print()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""Checkpoints in /opt/ml/checkpoints, resuming from the newest, and SIGTERM (StopTrainingJob)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from tests.training.conftest import (
    Job,
    assert_succeeded,
    csv_bytes,
    predict,
    reference_data,
)

X, Y = reference_data(3000, seed=8)
X_TEST, _ = reference_data(300, seed=9)
HYPER = {"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 4}


def prepare(job: Job, *, checkpoints: bool = True, **hyper: object) -> None:
    job.hyperparameters(**HYPER, **hyper)
    job.channels(train={"ContentType": "text/csv"})
    job.file("train", "train.csv", csv_bytes(X, Y))
    if checkpoints:
        (job.base / "checkpoints").mkdir(exist_ok=True)


def rounds_logged(stdout: str) -> list[int]:
    return [int(line[1 : line.index("]")]) for line in stdout.splitlines() if line.startswith("[")]


def checkpoint_names(job: Job) -> list[str]:
    return sorted(p.name for p in (job.base / "checkpoints").iterdir())


def test_resumes_from_the_newest_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    straight = Job(tmp_path / "straight")
    prepare(straight, checkpoints=False, num_round=10)
    assert_succeeded(straight.run(), straight)

    job = Job(tmp_path / "resumed")
    prepare(job, num_round=4)
    assert_succeeded(job.run(), job)
    # The two newest are kept.
    assert checkpoint_names(job) == ["xgboost-checkpoint.000003", "xgboost-checkpoint.000004"]
    # A newer checkpoint that does not load (a torn upload) is skipped.
    (job.base / "checkpoints" / "xgboost-checkpoint.000007").write_bytes(b"torn")

    prepare(job, num_round=10)
    result = job.run()
    assert_succeeded(result, job)
    assert "resuming from the checkpoint after 4 rounds" in result.stdout
    assert rounds_logged(result.stdout) == [4, 5, 6, 7, 8, 9]
    assert job.booster().metadata.num_boosted_rounds == 10
    np.testing.assert_allclose(predict(job, X_TEST), predict(straight, X_TEST), rtol=0, atol=1e-6)


def test_sigterm_during_training_saves_and_exits_cleanly(job):
    prepare(job, num_round=100_000, eta=0.01)
    proc = job.start()
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("[3]"):
            proc.send_signal(signal.SIGTERM)
            break
    out, _ = proc.communicate(timeout=60)
    stdout = "".join(seen) + out
    assert proc.returncode == 0, stdout
    assert job.failure is None
    assert "SIGTERM: stopped after" in stdout
    meta = job.booster().metadata
    assert 4 <= meta.num_boosted_rounds < 1000
    assert meta.extra["stopped_by_sigterm"] is True
    # The newest checkpoint holds the rounds of the saved model: a restart picks up from there.
    assert checkpoint_names(job)[-1] == f"xgboost-checkpoint.{meta.num_boosted_rounds:06d}"

    done = meta.num_boosted_rounds
    prepare(job, num_round=done + 2, eta=0.01)
    result = job.run()
    assert_succeeded(result, job)
    assert rounds_logged(result.stdout) == [done, done + 1]


def test_sigterm_before_training_starts_writes_nothing(job):
    job.hyperparameters(**HYPER, num_round=5)
    job.channels(train={"ContentType": "text/csv", "TrainingInputMode": "Pipe"})
    os.mkfifo(job.base / "input" / "data" / "train_0")  # nobody writes: train waits on open()
    proc = job.start()
    assert proc.stdout is not None
    assert "mlstack-train: XGBoost" in proc.stdout.readline()  # the handler is installed by now
    time.sleep(0.5)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "SIGTERM before training started" in out
    assert job.failure is None
    assert not (job.base / "model" / "xgboost-model").exists()

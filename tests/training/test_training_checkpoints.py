"""Checkpoints in /opt/ml/checkpoints, resuming from the newest, and SIGTERM (StopTrainingJob)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
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


def expected_identity(job: Job) -> str:
    """docs/containers.md: the first 16 hex digits of the SHA-256 of the job's hyperparameters
    (hyperparameters.json as SageMaker writes it), sorted compact JSON, num_round left out."""
    hp = json.loads((job.base / "input/config/hyperparameters.json").read_text())
    hp.pop("num_round", None)
    canonical = json.dumps(hp, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def checkpoint_rounds(job: Job) -> list[int]:
    """Rounds of the checkpoints named for ``job``'s hyperparameters."""
    own = re.compile(re.escape(f"xgboost-checkpoint.{expected_identity(job)}.") + r"(\d{6})$")
    return sorted(int(m.group(1)) for n in checkpoint_names(job) if (m := own.match(n)))


def test_resumes_from_the_newest_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    straight = Job(tmp_path / "straight")
    prepare(straight, checkpoints=False, num_round=10)
    assert_succeeded(straight.run(), straight)

    job = Job(tmp_path / "resumed")
    prepare(job, num_round=4)
    assert_succeeded(job.run(), job)
    # The two newest are kept, named for the job's hyperparameters.
    assert checkpoint_rounds(job) == [3, 4] and len(checkpoint_names(job)) == 2
    # A newer checkpoint that does not load (a torn upload) is skipped.
    torn = f"xgboost-checkpoint.{expected_identity(job)}.000007"
    (job.base / "checkpoints" / torn).write_bytes(b"torn")

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
    assert checkpoint_rounds(job)[-1] == meta.num_boosted_rounds

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


def test_a_job_resumes_only_from_checkpoints_of_its_own_hyperparameters(tmp_path):
    """A tuning job's training jobs may share one checkpoint prefix (one CheckpointConfig for
    every job: HyperParameterTrainingJobDefinition, SageMaker API reference): job B, other
    hyperparameters, restored with A's checkpoints, starts from round 0; A, restored with both
    jobs' checkpoints, resumes from its own. Each ends where an uninterrupted run of it ends."""
    shallow, deep = {"eta": 0.3}, {"eta": 0.1}
    straight = {}
    for name, hyper in (("a", shallow), ("b", deep)):
        run = Job(tmp_path / f"straight-{name}")
        prepare(run, checkpoints=False, num_round=8, **hyper)
        assert_succeeded(run.run(), run)
        straight[name] = predict(run, X_TEST)

    a = Job(tmp_path / "a")
    prepare(a, num_round=3, **shallow)  # stands for A interrupted after 3 rounds
    assert_succeeded(a.run(), a)
    b = Job(tmp_path / "b")
    prepare(b, num_round=8, **deep)
    shutil.copytree(a.base / "checkpoints", b.base / "checkpoints", dirs_exist_ok=True)
    result = b.run()
    assert_succeeded(result, b)
    assert "resuming" not in result.stdout
    assert rounds_logged(result.stdout) == list(range(8))
    np.testing.assert_allclose(predict(b, X_TEST), straight["b"], rtol=0, atol=1e-6)

    shutil.copytree(b.base / "checkpoints", a.base / "checkpoints", dirs_exist_ok=True)
    prepare(a, num_round=8, **shallow)
    result = a.run()
    assert_succeeded(result, a)
    assert "resuming from the checkpoint after 3 rounds" in result.stdout
    assert rounds_logged(result.stdout) == [3, 4, 5, 6, 7]
    np.testing.assert_allclose(predict(a, X_TEST), straight["a"], rtol=0, atol=1e-6)

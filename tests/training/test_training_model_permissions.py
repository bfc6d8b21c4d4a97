"""A model written by ``train`` is servable by the inference image's unprivileged user after
SageMaker's ``model.tar.gz`` round trip (SageMaker tars ``/opt/ml/model`` after training and
unpacks it into ``/opt/ml/model`` for hosting; the inference image runs as uid 10001)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.training.conftest import (
    CSV_CHANNEL,
    REFERENCE_HYPERPARAMETERS,
    Job,
    assert_succeeded,
    csv_bytes,
    reference_data,
)

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "containers" / "inference" / "serve"
IMAGE_UID = 10001  # the inference Dockerfile's USER
SETPRIV = shutil.which("setpriv")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None, reason="needs root and setpriv to switch users"
)


def strict_umask() -> None:
    os.umask(0o077)  # the strictest umask a training host could have


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path lies under a 0700 root dir)."""
    path = Path(tempfile.mkdtemp(prefix="mlstack-perms-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def train_model(base: Path) -> Path:
    job = Job(base)
    X, y = reference_data(500)
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    job.channels(train=CSV_CHANNEL)
    job.file("train", "train.csv", csv_bytes(X, y))
    result = subprocess.run(
        [str(REPO / "containers" / "training" / "train")],
        env=job.env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=strict_umask,
    )
    assert_succeeded(result, job)
    return base / "model"


def test_train_writes_world_readable_model_files_even_under_a_strict_umask(public_tmp):
    model = train_model(public_tmp / "train")
    assert stat.S_IMODE(model.stat().st_mode) == 0o755
    files = sorted(p for p in model.iterdir())
    assert [p.name for p in files] == ["mlstack-model.json", "xgboost-model"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


@needs_root
def test_a_trained_model_survives_the_tar_round_trip_and_serves_as_the_image_user(public_tmp):
    model = train_model(public_tmp / "train")
    archive = public_tmp / "model.tar.gz"
    # Pack keeping modes and owners (root), unpack as root keeping them: what a careless
    # round trip does at worst.
    subprocess.run(["tar", "-czpf", str(archive), "-C", str(model), "."], check=True)
    hosting = public_tmp / "hosting"
    (hosting / "model").mkdir(parents=True)
    hosting.chmod(0o755)
    subprocess.run(
        ["tar", "-xzpf", str(archive), "--same-owner", "-C", str(hosting / "model")], check=True
    )
    assert (hosting / "model" / "xgboost-model").stat().st_uid == 0
    port = _free_port()
    proc = subprocess.Popen(
        [*drop_to_image_user(), *serve_command()],
        env=_serve_env(hosting, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        answer = _invoke_when_up(proc, port, b"5,90\n60,10")
        scores = [float(v) for v in answer.split(b",")]
        assert scores[0] > 0.5 > scores[1]
        with open(f"/proc/{proc.pid}/status") as fh:
            uid_line = next(line for line in fh if line.startswith("Uid:"))
        assert uid_line.split()[1:] == [str(IMAGE_UID)] * 4
    finally:
        proc.terminate()
        proc.wait(30)


def drop_to_image_user() -> list[str]:
    assert SETPRIV is not None
    return [SETPRIV, "--reuid", str(IMAGE_UID), "--regid", str(IMAGE_UID), "--clear-groups"]


def serve_command() -> list[str]:
    """What ``containers/inference/serve`` execs. The script itself is not used here: this
    machine's interpreter lies under /root (mode 0700), which dash's ``exec`` refuses to a
    non-root user while the kernel, given the path directly, runs it."""
    assert 'exec "$py" -m mlstack_containers.serving' in SERVE.read_text()
    return [sys.executable, "-m", "mlstack_containers.serving"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_env(base: Path, port: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")},
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MLSTACK_BIND_HOST": "127.0.0.1",
        "MLSTACK_PYTHON": sys.executable,
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    }


def _invoke_when_up(proc: subprocess.Popen[bytes], port: int, body: bytes) -> bytes:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"serve exited with {proc.returncode}:\n{out}")
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=body,
                headers={"Content-Type": "text/csv"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.read()
        except OSError:
            assert time.monotonic() < deadline, "serve did not answer within 60 s"
            time.sleep(0.1)

"""Helpers for running the real ``containers/training/train`` against an /opt/ml-like tree."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests import programs

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "containers" / "training" / "train"
CONTRACT = REPO / "containers" / "common" / "mlstack_containers" / "training" / "contract.json"


def reference_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The reference workflow's dataset: two features, label = y >= 3x + 5."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 100, n)
    y = rng.uniform(0, 400, n)
    return np.c_[x, y].astype(np.float32), (y >= 3 * x + 5).astype(np.float32)


def csv_bytes(X: np.ndarray, y: np.ndarray, newline: str = "\n") -> bytes:
    rows = (",".join(f"{v:g}" for v in (label, *row)) for label, row in zip(y, X, strict=True))
    return (newline.join(rows) + newline).encode()


def libsvm_bytes(X: np.ndarray, y: np.ndarray) -> bytes:
    """Zero-valued features are left out (sparse); indices are column numbers."""
    lines = []
    for label, row in zip(y, X, strict=True):
        feats = " ".join(f"{j}:{v:g}" for j, v in enumerate(row) if v != 0)
        lines.append(f"{label:g} {feats}".strip())
    return ("\n".join(lines) + "\n").encode()


# --- RecordIO-protobuf, encoded here from the published format (independently of the image's
# --- codec): RecordIO frames around aialgs.data.Record messages.


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # wire type 2 (length-delimited)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _float32_tensor(values, keys=None, shape=None) -> bytes:
    msg = _field(1, struct.pack(f"<{len(values)}f", *values))
    if keys is not None:
        msg += _field(2, b"".join(_varint(int(k)) for k in keys))
    if shape is not None:
        msg += _field(3, b"".join(_varint(int(s)) for s in shape))
    return _field(2, msg)  # Value.float32_tensor = 2


def _map_entry(key: str, value: bytes) -> bytes:
    return _field(1, key.encode()) + _field(2, value)


def protobuf_record(features: bytes, label: float | None) -> bytes:
    record = _field(1, _map_entry("values", features))
    if label is not None:
        record += _field(2, _map_entry("values", _float32_tensor([label])))
    return record


def recordio_frame(payload: bytes) -> bytes:
    pad = (4 - len(payload) % 4) % 4
    return struct.pack("<II", 0xCED7230A, len(payload)) + payload + b"\0" * pad


def recordio_protobuf_bytes(X: np.ndarray, y: np.ndarray | None, *, sparse: bool = False) -> bytes:
    frames = []
    for i, row in enumerate(X):
        if sparse:
            keys = [j for j, v in enumerate(row) if v != 0]
            feats = _float32_tensor([row[j] for j in keys], keys=keys, shape=[len(row)])
        else:
            feats = _float32_tensor(list(row))
        frames.append(recordio_frame(protobuf_record(feats, None if y is None else float(y[i]))))
    return b"".join(frames)


# --- Jobs


@dataclass
class Job:
    base: Path

    def __post_init__(self) -> None:
        for sub in ("input/config", "input/data", "model", "output"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)

    def config(self, name: str, value: object) -> None:
        (self.base / "input" / "config" / f"{name}.json").write_text(json.dumps(value))

    def hyperparameters(self, **values: object) -> None:
        self.config("hyperparameters", {k: str(v) for k, v in values.items()})

    def channels(self, **channels: Mapping[str, str]) -> None:
        self.config("inputdataconfig", channels)

    def file(self, channel: str, name: str, content: bytes) -> Path:
        path = self.base / "input" / "data" / channel / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path

    @property
    def failure(self) -> str | None:
        path = self.base / "output" / "failure"
        return path.read_text() if path.exists() else None

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")}
        env.update(SAGEMAKER_BASE_DIR=str(self.base), MLSTACK_PYTHON=sys.executable, **extra)
        return env

    def start(self, **extra_env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(TRAIN)],
            env=self.env(**extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, timeout: float = 120, **extra_env: str) -> subprocess.CompletedProcess[str]:
        """The train program run to its end, as ``subprocess.run`` runs it, in a process forked
        from tests/programs.py's server (its libraries imported once); ``start`` and the
        tests that run ``TRAIN`` itself run the script as a real subprocess."""
        return programs.run(TRAIN, env=self.env(**extra_env), timeout=timeout)

    def booster(self):
        from mlstack_containers.model_io import load_model

        return load_model(self.base / "model")


CSV_CHANNEL = {"ContentType": "text/csv", "TrainingInputMode": "File"}
REFERENCE_HYPERPARAMETERS = {"objective": "reg:logistic", "eval_metric": "rmse", "num_round": 5}


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return Job(tmp_path / "opt_ml")


def predict(job: Job, X: np.ndarray) -> np.ndarray:
    import xgboost as xgb

    return job.booster().booster.predict(xgb.DMatrix(X))


def assert_succeeded(result: subprocess.CompletedProcess[str], job: Job) -> None:
    assert result.returncode == 0, f"train failed:\n{result.stdout}\n{result.stderr}"
    assert job.failure is None
    assert (job.base / "model" / "xgboost-model").is_file()

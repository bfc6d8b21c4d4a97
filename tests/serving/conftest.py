"""Fixtures: a small real model, and the real ``containers/inference/serve`` process serving it."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from mlstack_containers import model_io

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "containers" / "inference" / "serve"


def reference_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The reference workflow's data: x, y in 0..100, label 1 if y >= 3x + 5."""
    rng = np.random.default_rng(seed)
    features = rng.integers(0, 101, size=(n, 2)).astype(np.float32)
    labels = (features[:, 1] >= 3 * features[:, 0] + 5).astype(np.float32)
    return features, labels


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    port: int
    booster: xgb.Booster
    model_dir: Path
    output: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
        chunked: bool = False,
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def invoke(self, body: bytes, content_type: str, accept: str | None = None, **kw) -> Response:
        headers = {"Content-Type": content_type}
        if accept is not None:
            headers["Accept"] = accept
        headers.update(kw.pop("headers", {}))
        return self.request("POST", "/invocations", body, headers, **kw)

    def log_text(self) -> str:
        return "".join(self.output)


def _pump(stream, sink: list[str]) -> None:
    for line in iter(stream.readline, b""):
        sink.append(line.decode(errors="replace"))


def start_serve(base: Path, booster: xgb.Booster, **env: str) -> ServeProcess:
    port = free_port()
    environ = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MLSTACK_BIND_HOST": "127.0.0.1",
        "MLSTACK_PYTHON": sys.executable,
        **env,
    }
    proc = subprocess.Popen(
        [str(SERVE)], env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    server = ServeProcess(proc, port, booster, base / "model")
    threading.Thread(target=_pump, args=(proc.stdout, server.output), daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}:\n{server.log_text()}")
        try:
            if server.request("GET", "/ping", timeout=2).status == 200:
                return server
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"serve did not answer /ping within 30 s:\n{server.log_text()}")


def stop_serve(server: ServeProcess) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, xgb.Booster]:
    """A binary:logistic-style model of the reference workflow, saved with model_io."""
    features, labels = reference_data(2000)
    params = {"objective": "reg:logistic", "eval_metric": "rmse", "max_depth": 4}
    booster = xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=5)
    base = tmp_path_factory.mktemp("opt_ml")
    model_io.save_model(booster, base / "model")
    return base, booster


@pytest.fixture(scope="session")
def server(trained: tuple[Path, xgb.Booster]) -> Iterator[ServeProcess]:
    base, booster = trained
    proc = start_serve(base, booster, SAGEMAKER_MODEL_SERVER_WORKERS="2")
    yield proc
    stop_serve(proc)


def expected(server: ServeProcess, features: np.ndarray) -> np.ndarray:
    return server.booster.predict(xgb.DMatrix(features))

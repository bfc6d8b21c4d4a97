"""`mlstack local serve`: a run's model behind the InvokeEndpoint gateway, called by unchanged
boto3 code; and the gateway's SageMaker-shaped errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from mlstack.local.runner import RunReport
from mlstack.local.sagemaker import free_port


@pytest.fixture(scope="module")
def gateway(local_run: RunReport) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlstack.cli",
            "local",
            "serve",
            "--from-run",
            str(local_run.run_dir),
            "--port",
            str(port),
            "--endpoint-name",
            "mlstack-dev",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
    yield url
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def runtime(url: str) -> object:
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1")


def test_boto3_invoke_endpoint_gets_predictions(gateway: str) -> None:
    answer = runtime(gateway).invoke_endpoint(  # type: ignore[attr-defined]
        EndpointName="mlstack-dev",
        ContentType="text/csv",
        Body=b"5,90\n60,10",
        CustomAttributes="trace=1",
    )
    scores = [float(v) for v in answer["Body"].read().decode().split(",")]
    assert scores[0] > 0.5 > scores[1]  # (5, 90) is above y = 3x + 5, (60, 10) below
    assert answer["ContentType"].startswith("text/csv")
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert answer["CustomAttributes"] == "trace=1"


def test_json_accept_is_forwarded(gateway: str) -> None:
    answer = runtime(gateway).invoke_endpoint(  # type: ignore[attr-defined]
        EndpointName="mlstack-dev",
        ContentType="text/csv",
        Accept="application/json",
        Body=b"5,90",
    )
    assert b'"predictions"' in answer["Body"].read()


def test_unknown_endpoint_is_a_validation_error(gateway: str) -> None:
    with pytest.raises(ClientError) as err:
        runtime(gateway).invoke_endpoint(EndpointName="nope", Body=b"1,2")  # type: ignore[attr-defined]
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert "nope" in str(err.value)


def test_a_model_error_carries_the_models_status(gateway: str) -> None:
    with pytest.raises(ClientError) as err:
        runtime(gateway).invoke_endpoint(  # type: ignore[attr-defined]
            EndpointName="mlstack-dev", ContentType="text/x-unknown", Body=b"1,2"
        )
    assert err.value.response["Error"]["Code"] == "ModelError"
    assert err.value.response["OriginalStatusCode"] == 415

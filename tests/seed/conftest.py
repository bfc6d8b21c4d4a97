"""Fixtures for the dataset-seeding Lambda: the handler module, fake AWS, a moto bucket."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lambdas import load_handler

SEED_DIR = Path(__file__).resolve().parents[2] / "lambda" / "seed"

load_handler("seed_handler", "seed")

import seed_handler  # noqa: E402

BUCKET = "mlstack-seed-test"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and region, the function's environment, and no cached client."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("BUCKET_NAME", BUCKET)
    monkeypatch.setenv("DATASET_PREFIX", "datasets/")
    monkeypatch.setenv("DEFAULT_ROWS", "100")
    monkeypatch.setenv("DEFAULT_SEED", "42")
    monkeypatch.setenv("MAX_ROWS", "1000000")
    seed_handler.reset_s3_client()
    yield
    seed_handler.reset_s3_client()


@pytest.fixture
def bucket() -> str:
    return BUCKET


@pytest.fixture
def s3() -> Iterator[object]:
    """A moto S3 with the dataset bucket (default SSE-KMS, as deployed); yields a client."""
    from moto import mock_aws

    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_encryption(
            Bucket=BUCKET,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
            },
        )
        yield client


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """What the function logs, one JSON object a line."""
    stream = io.StringIO()
    (log_handler,) = (
        h
        for h in seed_handler.logger.handlers
        if isinstance(h.formatter, seed_handler.JsonFormatter)
    )
    assert isinstance(log_handler, logging.StreamHandler)
    previous = log_handler.setStream(stream)
    yield stream
    log_handler.setStream(previous)

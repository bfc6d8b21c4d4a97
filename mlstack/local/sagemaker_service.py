"""What every local SageMaker entity shares: the errors SageMaker answers, the account's context
(region, account, images, embedded S3, the registry and its store) and the process plumbing the
facade (:class:`mlstack.local.sagemaker.LocalSageMaker`) hands in."""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack import rules
from mlstack.local.assembly import Image
from mlstack.local.processes import LogSink
from mlstack.local.registry_store import Registry, RegistryStore, Server
from mlstack.local.s3 import EmbeddedS3

NAME_PATTERN = re.compile(rules.NAME_PATTERN)
MB = 1024 * 1024
MetricSink = Callable[[str, str, float], None]  # (job, metric, value)


class SageMakerError(Exception):
    """An API call SageMaker would refuse (``code`` is its error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class JobFailed(Exception):
    """A job ran and failed; ``description`` is its Describe… response (with FailureReason)."""

    def __init__(self, description: dict[str, Any]) -> None:
        super().__init__(description.get("FailureReason", "failed"))
        self.description = description


def now_ms() -> int:
    return int(time.time() * 1000)


def extract_model(archive: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        tar.extractall(dest, filter="data")


def pack_model(model_dir: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)


StartServe = Callable[..., Server]
PumpLines = Callable[..., None]
WaitHosts = Callable[
    [Sequence[subprocess.Popen[bytes]], float | None, float | None], tuple[bool, int, bool]
]


@dataclass(frozen=True)
class Processes:
    """How the entities run the images' programs: ``start_serve`` (``serve`` on a loopback
    port, ready), ``pump_lines`` (a process's output to its log and the sink) and
    ``wait_hosts`` (a job's host processes to their end)."""

    start_serve: StartServe
    pump_lines: PumpLines
    wait_hosts: WaitHosts


@dataclass
class Service:
    """One local SageMaker account as its entities see it."""

    root: Path
    s3: EmbeddedS3
    images: Mapping[str, Image]
    store: RegistryStore
    processes: Processes
    region: str = "us-east-1"
    account: str = "000000000000"
    log: LogSink | None = None
    metric: MetricSink | None = None

    @property
    def registry(self) -> Registry:
        return self.store.registry

    @property
    def lock(self) -> threading.RLock:
        return self.store.lock

    def save(self) -> None:
        self.store.save()

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"

    def unique_name(self, kind: str, name: Any, taken: Mapping[str, Any]) -> str:
        """``name`` if it is a valid SageMaker name not yet in ``taken`` (by lower case)."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise SageMakerError(
                "ValidationException",
                f"1 validation error detected: Value {name!r} at '{kind}' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: "
                "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
            )
        if name.lower() in taken:
            raise SageMakerError(
                "ValidationException" if kind != "trainingJobName" else "ResourceInUse",
                f"{kind} {name!r} is already in use in account {self.account}, region "
                f"{self.region}: SageMaker names are unique",
            )
        return name

    def image(self, uri: Any) -> Image:
        image = self.images.get(uri) if isinstance(uri, str) else None
        if image is None:
            raise SageMakerError(
                "ValidationException",
                f"image {uri!r} is not one this app builds (local mode runs the app's own image "
                f"assets: {', '.join(sorted(self.images)) or 'none'})",
            )
        return image

    def model(self, name: str) -> dict[str, Any]:
        model = self.registry.models.get(name.lower())
        if model is None:
            raise SageMakerError(
                "ValidationException", f'Could not find model "{self.arn("model", name)}".'
            )
        return model

    def model_dir(self, model: Mapping[str, Any], dest: Path) -> Path:
        """Download and extract the model's ``model.tar.gz`` into ``dest/model``."""
        archive = self.s3.read(model["PrimaryContainer"]["ModelDataUrl"])
        extract_model(archive, dest / "model")
        return dest / "model"

    def say(self, source: str, line: str) -> None:
        if self.log:
            self.log(source, line)


def without_tags(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job's Describe… answer: the API gives its tags through ListTags, not here (botocore's
    sagemaker model: DescribeTrainingJobResponse and DescribeTransformJobResponse have no Tags)."""
    return {k: v for k, v in job.items() if k != "Tags"}

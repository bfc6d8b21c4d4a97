"""SageMaker Processing jobs, locally: the image's entrypoint as a process in an ``/opt/ml`` tree.

What follows SageMaker (API reference, CreateProcessingJob / DescribeProcessingJob): each
``ProcessingInputs[].S3Input`` (``S3Prefix``, ``File`` mode) is downloaded to its ``LocalPath``
under ``/opt/ml/processing/``, keeping the key tree below the prefix's folder; the container runs
``AppSpecification.ContainerEntrypoint`` (its first element a program the image puts on PATH) with
``ContainerArguments`` and ``Environment``; once it exits 0, each ``Outputs[].S3Output``'s
``LocalPath`` is uploaded to its ``S3Uri``; the first 1 KB of ``/opt/ml/output/message`` is the
job's ``ExitMessage`` whatever the ending ("Save and Access Metadata Information About Your
Processing Job"), and a job that exits non-zero is ``Failed`` with ``FailureReason``
``AlgorithmError: <message>, exit code: N``.

Differences: one instance (an ``InstanceCount`` above 1 is refused), ``File`` input mode and
``S3Prefix`` data only, ``EndOfJob`` uploads, no network isolation (a local process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from mlstack.local.assembly import Image
from mlstack.local.processes import spawn

CONTAINER_ROOT = PurePosixPath("/opt/ml")
PROCESSING_ROOT = CONTAINER_ROOT / "processing"
MESSAGE_LIMIT = 1024


class ProcessingRequestError(ValueError):
    """A CreateProcessingJob request local mode refuses (SageMaker's ValidationException)."""


def local_path(base: Path, container_path: Any, what: str) -> Path:
    """``base`` + the part of ``container_path`` below ``/opt/ml`` (which must be under
    ``/opt/ml/processing``, as SageMaker requires of inputs and outputs)."""
    path = PurePosixPath(str(container_path))
    if not path.is_relative_to(PROCESSING_ROOT) or ".." in path.parts:
        raise ProcessingRequestError(
            f"{what} LocalPath {container_path!r}: expected a path under {PROCESSING_ROOT}"
        )
    return base / path.relative_to(CONTAINER_ROOT)


def check_request(request: Mapping[str, Any]) -> None:
    """Refuse what local mode does not run, before anything starts."""
    cluster = request.get("ProcessingResources", {}).get("ClusterConfig", {})
    if int(cluster.get("InstanceCount", 1)) != 1:
        raise ProcessingRequestError("local mode runs processing jobs on one instance")
    entrypoint = request.get("AppSpecification", {}).get("ContainerEntrypoint")
    if not entrypoint or not isinstance(entrypoint, list):
        raise ProcessingRequestError(
            "AppSpecification.ContainerEntrypoint: local mode runs the program it names "
            '(for example ["evaluate"])'
        )
    for source in request.get("ProcessingInputs", []):
        s3 = source.get("S3Input")
        if s3 is None:
            raise ProcessingRequestError(
                f"input {source.get('InputName')!r}: local mode reads S3Input only"
            )
        if s3.get("S3DataType", "S3Prefix") != "S3Prefix" or s3.get("S3InputMode") == "Pipe":
            raise ProcessingRequestError(
                f"input {source.get('InputName')!r}: local mode reads S3Prefix in File mode"
            )
        local_path(Path("/"), s3.get("LocalPath"), f"input {source.get('InputName')!r}")
    for output in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
        s3 = output.get("S3Output", {})
        local_path(Path("/"), s3.get("LocalPath"), f"output {output.get('OutputName')!r}")


def description(name: str, arn: str, request: Mapping[str, Any], now: int) -> dict[str, Any]:
    """DescribeProcessingJob as the job starts (``InProgress``)."""
    return {
        "ProcessingJobName": name,
        "ProcessingJobArn": arn,
        "ProcessingJobStatus": "InProgress",
        "AppSpecification": dict(request.get("AppSpecification", {})),
        "ProcessingInputs": list(request.get("ProcessingInputs", [])),
        "ProcessingOutputConfig": dict(request.get("ProcessingOutputConfig", {})),
        "ProcessingResources": dict(request.get("ProcessingResources", {})),
        "StoppingCondition": dict(request.get("StoppingCondition", {})),
        "Environment": dict(request.get("Environment", {})),
        "NetworkConfig": dict(request.get("NetworkConfig", {})),
        "RoleArn": request.get("RoleArn"),
        "CreationTime": now,
        "ProcessingStartTime": now,
    }


def environment(image: Image, base: Path, request: Mapping[str, Any]) -> dict[str, str]:
    env = {
        **os.environ,
        **{str(k): str(v) for k, v in request.get("Environment", {}).items()},
        "MLSTACK_PYTHON": sys.executable,
        "PYTHONUNBUFFERED": "1",
        "SAGEMAKER_BASE_DIR": str(base),
    }
    if image.python_path is not None:
        env["PYTHONPATH"] = str(image.python_path)
    return env


def run_container(
    image: Image,
    base: Path,
    request: Mapping[str, Any],
    *,
    pump: Any,
    timeout: float | None,
) -> int | None:
    """Run the entrypoint to its end; its exit status, or None when it ran past ``timeout``."""
    app = request["AppSpecification"]
    entrypoint = [str(part) for part in app["ContainerEntrypoint"]]
    command = [
        str(image.program(entrypoint[0])),
        *entrypoint[1:],
        *[str(a) for a in app.get("ContainerArguments", [])],
    ]
    proc = spawn(
        command,
        env=environment(image, base, request),
        cwd=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    reader = threading.Thread(target=pump, args=(proc.stdout,), daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(5)
        return None
    reader.join(10)
    return proc.returncode


def exit_message(base: Path) -> str | None:
    """The first 1 KB of ``/opt/ml/output/message``, or None without one."""
    path = base / "output" / "message"
    if not path.is_file():
        return None
    return path.read_bytes()[:MESSAGE_LIMIT].decode("utf-8", errors="replace")


def output_files(base: Path, request: Mapping[str, Any]) -> list[tuple[str, Path]]:
    """(S3 URI, local file) of every file under each output's LocalPath."""
    found = []
    for output in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
        s3 = output.get("S3Output", {})
        root = local_path(base, s3.get("LocalPath"), f"output {output.get('OutputName')!r}")
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            if path.is_file():
                uri = f"{str(s3['S3Uri']).rstrip('/')}/{path.relative_to(root).as_posix()}"
                found.append((uri, path))
    return found

"""SageMaker, locally: the API calls the workflow makes, run on this machine. A thin facade over
one module per entity, as the SageMaker Python SDK's local mode keeps one class per job kind:

- training jobs: :mod:`mlstack.local.training_job` (the image's ``train`` on one process per
  instance); tuning jobs: :mod:`mlstack.local.tuning_job`;
- batch transform jobs: :mod:`mlstack.local.transform_job` (the image's ``serve``);
- processing jobs: :mod:`mlstack.local.processing_job` (the image's entrypoint);
- models, endpoint configurations and endpoints: :mod:`mlstack.local.endpoint`;
- the model registry: :mod:`mlstack.local.model_packages`.

They share :class:`mlstack.local.sagemaker_service.Service` (the account's region, images, S3,
and its registry, saved after every change as a typed, versioned file:
:mod:`mlstack.local.registry_store`), and run the images' programs with the process plumbing
below (``start_serve``, ``pump_lines``, ``_wait_hosts``), which the facade hands them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack.local.assembly import Image
from mlstack.local.endpoint import Endpoints, Models
from mlstack.local.loopback import free_port
from mlstack.local.loopback import request as _request
from mlstack.local.model_packages import EventSink, ModelPackageCalls
from mlstack.local.processing_job import ProcessingJobs
from mlstack.local.registry_store import Endpoint, Registry, RegistryStore, Server, load
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker_service import (
    JobFailed,
    LogSink,
    MetricSink,
    Processes,
    SageMakerError,
    Service,
    extract_model,
)
from mlstack.local.training_job import TrainingHooks, TrainingJobs
from mlstack.local.transform_job import TransformJobs
from mlstack.local.tuning_job import TuningJobs

__all__ = [
    "Endpoint",
    "JobFailed",
    "LocalSageMaker",
    "LogSink",
    "MetricSink",
    "SageMakerError",
    "ServeProcess",
    "TrainingHooks",
    "deployed_endpoints",
    "extract_model",
    "free_port",
    "pump_lines",
    "start_serve",
]


def _wait_hosts(
    procs: Sequence[subprocess.Popen[bytes]], limit: float | None, interrupt: float | None = None
) -> tuple[bool, int, bool]:
    """Wait for every host's process; a host that fails ends the others (SageMaker stops a job
    whose host failed). ``interrupt``: SIGTERM every host after that many seconds (a spot
    interruption). Returns (ran past ``limit``, index of the host to report: the first that
    failed, else 0, interrupted)."""
    now = time.monotonic()
    deadline = None if limit is None else now + limit
    interrupt_at = None if interrupt is None else now + interrupt
    failed: int | None = None
    stopped = interrupted = False
    while any(proc.poll() is None for proc in procs):
        failed = next((i for i, proc in enumerate(procs) if proc.poll() not in (None, 0)), None)
        late = deadline is not None and time.monotonic() > deadline
        interrupted = (
            failed is None and interrupt_at is not None and time.monotonic() > interrupt_at
        )
        if failed is not None or late or interrupted:
            stopped = late and failed is None and not interrupted
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            break
        time.sleep(0.05)
    if failed is None:
        failed = next((i for i, proc in enumerate(procs) if proc.returncode != 0), 0)
    return stopped, failed, interrupted and procs[failed].returncode == 0


@dataclass
class ServeProcess:
    """The image's ``serve`` program on a loopback port."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    reader: threading.Thread | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] = {},
        timeout: float = 60,
    ) -> tuple[int, dict[str, str], bytes]:
        return _request(self.port, method, path, body, headers, timeout)

    def stop(self, grace: float = 25) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.reader is not None:
            self.reader.join(5)


def pump_lines(
    stream: Any,
    log_path: Path,
    source: str,
    sink: LogSink | None,
    on_line: Callable[[str], None] | None = None,
) -> None:
    with log_path.open("a", encoding="utf-8") as log:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            log.write(line + "\n")
            log.flush()
            if on_line is not None:
                on_line(line)
            if sink is not None:
                sink(source, line)


def start_serve(
    image: Image,
    base: Path,
    *,
    environment: Mapping[str, str] = {},
    log_path: Path,
    source: str,
    sink: LogSink | None = None,
    port: int | None = None,
    ready_timeout: float = 120,
) -> ServeProcess:
    """Start ``serve`` for the model in ``base/model``; return once ``/ping`` answers 200."""
    port = port or free_port()
    env = {
        **os.environ,
        **environment,
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MLSTACK_BIND_HOST": "127.0.0.1",
        "MLSTACK_PYTHON": sys.executable,
        "PYTHONUNBUFFERED": "1",
    }
    if image.python_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(image.python_path), os.environ.get("PYTHONPATH", "")) if p
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [str(image.program("serve"))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=base,
        start_new_session=True,
    )
    server = ServeProcess(proc, port, log_path)
    server.reader = threading.Thread(
        target=pump_lines, args=(proc.stdout, log_path, source, sink), daemon=True
    )
    server.reader.start()
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            server.stop()
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
            raise RuntimeError(f"serve exited with status {proc.returncode}: {tail.strip()}")
        try:
            if server.request("GET", "/ping", timeout=2)[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"serve did not answer /ping within {ready_timeout:.0f} s")


class LocalSageMaker(ModelPackageCalls):
    """The SageMaker API calls the workflow makes, run on this machine: each call goes to its
    entity; the model registry's calls are :class:`ModelPackageCalls`'.

    ``on_event(detail_type, detail)``, when given, hears what SageMaker sends EventBridge: a
    model package created or its approval status changed (:mod:`mlstack.local.model_packages`).
    """

    def __init__(
        self,
        root: Path,
        s3: EmbeddedS3,
        images: Mapping[str, Image],
        *,
        region: str = "us-east-1",
        account: str = "000000000000",
        log: LogSink | None = None,
        metric: MetricSink | None = None,
        interrupt_training_after: float | None = None,
        restore_registry: Path | None = None,
        endpoints_dir: Path | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        """``root``: the run's directory (jobs, and ``sagemaker/registry.json`` written after
        every change); ``restore_registry``: a registry.json to start from (a local account's:
        every kind in it is restored, endpoints not yet served; an older schema is migrated, a
        file this version cannot read refused with what to do); ``endpoints_dir``: where the
        endpoints' model directories go (default ``root/endpoints``);
        ``interrupt_training_after``: a managed-spot training job with checkpoints gets SIGTERM
        this many seconds in, once (a spot interruption), and resumes from its checkpoints."""
        self.root = root
        self.s3 = s3
        self.images = images
        self.region = region
        self.account = account
        self.log = log
        self.metric = metric
        self.on_event = on_event
        registry = load(restore_registry) if restore_registry is not None else Registry()
        self._lock = threading.RLock()
        self.store = RegistryStore(root / "sagemaker" / "registry.json", registry, self._lock)
        service = Service(
            root,
            s3,
            images,
            self.store,
            Processes(start_serve=start_serve, pump_lines=pump_lines, wait_hosts=_wait_hosts),
            region=region,
            account=account,
            log=log,
            metric=metric,
        )
        self.service = service
        self.training = TrainingJobs(service, interrupt_after=interrupt_training_after)
        self.tuning = TuningJobs(service, self.training)
        self.transform = TransformJobs(service)
        self.processing = ProcessingJobs(service)
        self.model_calls = Models(service)
        self.endpoint_calls = Endpoints(service, endpoints_dir or root / "endpoints")
        # The registry's kinds, by name (the entities and the model registry calls share them).
        self.training_jobs = registry.training_jobs
        self.tuning_jobs = registry.tuning_jobs
        self.transform_jobs = registry.transform_jobs
        self.processing_jobs = registry.processing_jobs
        self.models = registry.models
        self.endpoint_configs = registry.endpoint_configs
        self.endpoints = registry.endpoints
        self.model_package_groups = registry.model_package_groups
        self.model_packages = registry.model_packages
        self.pending_events = registry.pending_events

    def arn(self, kind: str, name: str) -> str:
        return self.service.arn(kind, name)

    def _refuse(self, code: str, message: str) -> Exception:
        return SageMakerError(code, message)

    def _save_registry(self) -> None:
        self.store.save()

    # --- training and tuning -------------------------------------------------------------------

    def create_training_job(
        self, request: Mapping[str, Any], *, hooks: TrainingHooks | None = None
    ) -> dict[str, Any]:
        return self.training.create_training_job(request, hooks=hooks)

    def describe_training_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.training.describe_training_job(p)

    def create_hyper_parameter_tuning_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.tuning.create_hyper_parameter_tuning_job(p)

    def describe_hyper_parameter_tuning_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.tuning.describe_hyper_parameter_tuning_job(p)

    # --- batch transform and processing ----------------------------------------------------------

    def create_transform_job(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return self.transform.create_transform_job(request)

    def describe_transform_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.transform.describe_transform_job(p)

    def create_processing_job(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return self.processing.create_processing_job(request)

    def describe_processing_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.processing.describe_processing_job(p)

    # --- models and endpoints ------------------------------------------------------------------

    def create_model(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.model_calls.create_model(p)

    def describe_model(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.model_calls.describe_model(p)

    def create_endpoint_config(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.endpoint_calls.create_endpoint_config(p)

    def describe_endpoint_config(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.endpoint_calls.describe_endpoint_config(p)

    def create_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.endpoint_calls.create_endpoint(p)

    def update_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.endpoint_calls.update_endpoint(p)

    def describe_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.endpoint_calls.describe_endpoint(p)

    def delete_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.endpoint_calls.delete_endpoint(p)

    def endpoint_server(self, name: str) -> Server:
        """The InService endpoint's ``serve`` process (started again, on first need, for an
        endpoint restored from a saved registry)."""
        return self.endpoint_calls.endpoint_server(name)

    def wait_for_deployments(self, timeout: float = 120) -> None:
        self.endpoint_calls.wait_for_deployments(timeout)

    def stop(self) -> None:
        """Stop every endpoint's server (the registry keeps what was deployed)."""
        self.endpoint_calls.stop()


def deployed_endpoints(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The endpoints a local run deployed (``sagemaker/registry.json``), InService ones only."""
    registry = load(run_dir / "sagemaker" / "registry.json")
    return {e.name: e.to_record() for e in registry.endpoints.values() if e.status == "InService"}

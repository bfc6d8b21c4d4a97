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

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlstack.local.assembly import Image
from mlstack.local.endpoint import Endpoints, Models
from mlstack.local.loopback import free_port
from mlstack.local.model_packages import EventSink, ModelPackageCalls
from mlstack.local.processes import (
    ServeProcess,
    _wait_hosts,
    end_children,
    pump_lines,
    start_serve,
)
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
    now_ms,
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

    @property
    def log(self) -> LogSink | None:
        """Where the jobs' log lines go (the entities read it from the shared service)."""
        return self.service.log

    @log.setter
    def log(self, sink: LogSink | None) -> None:
        self.service.log = sink

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

    # What Step Functions does to the `.sync` tasks of an execution that is stopped: it stops
    # their jobs (StopTrainingJob, StopTransformJob, StopProcessingJob,
    # StopHyperParameterTuningJob), which end `Stopped`; what they made so far is kept.
    _STOPPABLE = (
        ("training job", "training_jobs", "TrainingJobStatus", "TrainingEndTime"),
        ("transform job", "transform_jobs", "TransformJobStatus", "TransformEndTime"),
        ("processing job", "processing_jobs", "ProcessingJobStatus", "ProcessingEndTime"),
        (
            "tuning job",
            "tuning_jobs",
            "HyperParameterTuningJobStatus",
            "HyperParameterTuningEndTime",
        ),
    )

    def stop_jobs(self) -> list[str]:
        """End every program still running and mark each job still ``InProgress`` (or
        ``Stopping``) ``Stopped``; returns the jobs stopped (``training job NAME``). No
        program starts after it (an endpoint being deployed stays on its last configuration)."""
        end_children(refuse_new="the local run was stopped")
        stopped: list[str] = []
        with self._lock:
            now = now_ms()
            for kind, attribute, status_key, end_key in self._STOPPABLE:
                for desc in getattr(self, attribute).values():
                    if desc.get(status_key) not in ("InProgress", "Stopping"):
                        continue
                    desc[status_key] = "Stopped"
                    if "SecondaryStatus" in desc:
                        desc["SecondaryStatus"] = "Stopped"
                    desc[end_key] = desc["LastModifiedTime"] = now
                    name = next((v for k, v in desc.items() if k.endswith("JobName")), "?")
                    stopped.append(f"{kind} {name}")
        self._save_registry()
        return stopped

    def stop(self) -> None:
        """Stop every endpoint's server (the registry keeps what was deployed)."""
        self.endpoint_calls.stop()


def deployed_endpoints(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The endpoints a local run deployed (``sagemaker/registry.json``), InService ones only."""
    registry = load(run_dir / "sagemaker" / "registry.json")
    return {e.name: e.to_record() for e in registry.endpoints.values() if e.status == "InService"}

"""SageMaker, locally: training jobs run the image's ``train`` program, transform jobs and
endpoints its ``serve`` program, each in an ``/opt/ml`` tree under the run's work directory.

What follows SageMaker: job names (63 characters, unique), File-mode channel download keeping the
S3 key tree, ``hyperparameters.json`` (strings), ``inputdataconfig.json``,
``resourceconfig.json``, ``/opt/ml/output/failure`` as ``FailureReason``, MetricDefinitions
regexes applied to the log (``FinalMetricDataList``), ``model.tar.gz`` at
``<S3OutputPath>/<job>/output/model.tar.gz``, batch transform through ``/ping``,
``/execution-parameters`` and ``/invocations`` with ``SplitType``/``BatchStrategy``/
``MaxPayloadInMB``/``MaxConcurrentTransforms``, output ``<S3OutputPath>/<input key>.out``;
processing jobs run the image's entrypoint program (:mod:`mlstack.local.processing`).

``InstanceCount`` N trains on N processes (``algo-1``..``algo-N``, each its own ``/opt/ml`` tree and
``resourceconfig.json``, the image's XGBoost collective on loopback); a ``ShardedByS3Key``
channel gives host i every N-th object from the i-th in key order, a ``FullyReplicated`` one
all of them; the model is the first host's.

Differences: File input mode only,
no ``DataProcessing`` filters, a ``.sync`` and a plain create both return once the job ended.
Endpoints: a "deployed" endpoint is its config and model in the registry, served by ``serve`` on a
loopback port; ``DescribeEndpoint`` says ``InService`` once it answered ``/ping``.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack import rules
from mlstack.local import processing
from mlstack.local.assembly import Image
from mlstack.local.loopback import free_port
from mlstack.local.loopback import request as _request
from mlstack.local.model_packages import EventSink, ModelPackageCalls
from mlstack.local.s3 import EmbeddedS3, parse_uri, shard_keys

NAME_PATTERN = re.compile(rules.NAME_PATTERN)
MB = 1024 * 1024
LogSink = Callable[[str, str], None]  # (source, line)
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


def _now_ms() -> int:
    return int(time.time() * 1000)


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


def extract_model(archive: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        tar.extractall(dest, filter="data")


def pack_model(model_dir: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)


@dataclass
class Endpoint:
    name: str
    arn: str
    config_name: str
    status: str
    created_ms: int
    modified_ms: int
    model_name: str = ""
    model_dir: str = ""
    image_uri: str = ""
    variant: str = "AllTraffic"
    failure_reason: str | None = None
    server: ServeProcess | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TrainingHooks:
    """What a tuning job adds to each of its training jobs."""

    tuning_job_arn: str
    should_stop: Callable[[str, str, float], bool]  # (job, metric, value): stop it early?


@dataclass
class _TrainingRun:
    """One training job while it runs: its hosts, their ``/opt/ml`` trees and processes, and
    what the first host's log has told so far."""

    name: str
    desc: dict[str, Any]
    image: Image
    job_dir: Path
    hosts: list[str]
    bases: list[Path]
    hooks: TrainingHooks | None
    definitions: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    stopped_early: threading.Event = field(default_factory=threading.Event)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def for_job(
        cls, job_dir: Path, desc: dict[str, Any], image: Image, hooks: TrainingHooks | None
    ) -> _TrainingRun:
        count = int(desc["ResourceConfig"].get("InstanceCount", 1))
        hosts = [f"algo-{i}" for i in range(1, count + 1)]
        # One host keeps the plain layout; N hosts get a tree each, as N instances have.
        bases = (
            [job_dir / "opt" / "ml"] if count == 1 else [job_dir / h / "opt" / "ml" for h in hosts]
        )
        return cls(desc["TrainingJobName"], desc, image, job_dir, hosts, bases, hooks)

    def log_path(self, host: str) -> Path:
        """Where ``host``'s ``train`` output goes."""
        return self.job_dir / ("train.log" if len(self.hosts) == 1 else f"train-{host}.log")

    def pack_model(self) -> Path:
        """``output/model.tar.gz`` of the first host's model, as the image saves it there."""
        archive = self.job_dir / "output" / "model.tar.gz"
        archive.parent.mkdir(parents=True, exist_ok=True)
        pack_model(self.bases[0] / "model", archive)
        return archive


class LocalSageMaker(ModelPackageCalls):
    """The SageMaker API calls the workflow makes, run on this machine.

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
        every kind in it is restored, endpoints not yet served); ``endpoints_dir``: where the
        endpoints' model directories go (default ``root/endpoints``)."""
        self.root = root
        self.endpoints_dir = endpoints_dir or root / "endpoints"
        self.on_event = on_event
        # Spot interruption on request: a managed-spot training job gets SIGTERM this many
        # seconds in, once; new processes then resume from its checkpoints.
        self.interrupt_training_after = interrupt_training_after
        self.s3 = s3
        self.images = images
        self.region = region
        self.account = account
        self.log = log
        self.metric = metric
        self.training_jobs: dict[str, dict[str, Any]] = {}
        self.tuning_jobs: dict[str, dict[str, Any]] = {}
        self.transform_jobs: dict[str, dict[str, Any]] = {}
        self.processing_jobs: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.endpoint_configs: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, Endpoint] = {}
        # Registry kinds this code keeps no attribute for: written back as they were read.
        self._kept: dict[str, Any] = {}
        self.model_package_groups: dict[str, dict[str, Any]] = {}
        self.model_packages: dict[str, dict[str, Any]] = {}
        # Events of changes made outside a run (`mlstack local approve`), delivered by the next.
        self.pending_events: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        if restore_registry is not None and restore_registry.is_file():
            try:
                saved = json.loads(restore_registry.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{restore_registry} is not a SageMaker registry ({err}); start from an "
                    "empty local account with --clean"
                ) from None
            self._load_registry(saved)

    # --- helpers -----------------------------------------------------------------------------

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"

    def _name(self, kind: str, name: Any, taken: Mapping[str, Any]) -> str:
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

    def _refuse(self, code: str, message: str) -> Exception:
        return SageMakerError(code, message)

    def _image(self, uri: Any) -> Image:
        image = self.images.get(uri) if isinstance(uri, str) else None
        if image is None:
            raise SageMakerError(
                "ValidationException",
                f"image {uri!r} is not one this app builds (local mode runs the app's own image "
                f"assets: {', '.join(sorted(self.images)) or 'none'})",
            )
        return image

    def _model(self, name: str) -> dict[str, Any]:
        model = self.models.get(name.lower())
        if model is None:
            raise SageMakerError(
                "ValidationException", f'Could not find model "{self.arn("model", name)}".'
            )
        return model

    def _load_registry(self, registry: Mapping[str, Any]) -> None:
        """Take up a saved registry: each top-level kind into the attribute of its name (a dict
        keyed by lower-case name), endpoints as not yet served (see :meth:`endpoint_server`)."""
        for kind, entries in registry.items():
            current = getattr(self, kind, None)
            if kind == "endpoints":
                for key, saved in entries.items():
                    self.endpoints[key] = _restored_endpoint(saved)
            elif isinstance(current, dict) and isinstance(entries, dict):
                current.update(entries)
            else:
                self._kept[kind] = entries

    def _save_registry(self) -> None:
        with self._lock:
            registry = {
                **self._kept,
                "models": self.models,
                "endpoint_configs": self.endpoint_configs,
                "endpoints": {
                    k: {f: v for f, v in vars(e).items() if f != "server"}
                    for k, e in self.endpoints.items()
                },
                # Whole descriptions: a later run of the account can describe them, and their
                # names stay taken.
                "training_jobs": self.training_jobs,
                "tuning_jobs": self.tuning_jobs,
                "transform_jobs": self.transform_jobs,
                "processing_jobs": self.processing_jobs,
                "model_package_groups": self.model_package_groups,
                "model_packages": self.model_packages,
                "pending_events": self.pending_events,
            }
            for kind, saved in self._kept.items():
                if isinstance(saved, list) and isinstance(registry.get(kind), list):
                    registry[kind] = saved + [x for x in registry[kind] if x not in saved]
            # Jobs running in other threads add keys to their descriptions: the C encoder
            # (no indent) reads each dict's items in one step, so it never sees one change.
            text = json.dumps(registry, default=str)
            path = self.root / "sagemaker" / "registry.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(json.loads(text), indent=2), encoding="utf-8")

    # --- training ----------------------------------------------------------------------------

    def create_training_job(
        self, request: Mapping[str, Any], *, hooks: TrainingHooks | None = None
    ) -> dict[str, Any]:
        """Run the job to its end; return DescribeTrainingJob, or raise JobFailed.

        ``hooks`` (a tuning job's): its ARN for the description, and a check of each metric
        value that may stop the job early (``Stopped``, its model kept, as SageMaker does).
        """
        with self._lock:
            name = self._name("trainingJobName", request.get("TrainingJobName"), self.training_jobs)
            self.training_jobs[name.lower()] = {"TrainingJobName": name}
        algorithm = request.get("AlgorithmSpecification", {})
        image = self._image(algorithm.get("TrainingImage"))
        if algorithm.get("TrainingInputMode", "File") != "File":
            raise SageMakerError("ValidationException", "local mode runs File input mode only")
        desc = self._training_description(name, request, hooks)
        with self._lock:
            self.training_jobs[name.lower()] = desc
        run = _TrainingRun.for_job(self.root / "jobs" / name, desc, image, hooks)
        self._write_training_config(run)
        desc["SecondaryStatus"] = "Downloading"
        self._download_channels(run)
        desc["SecondaryStatus"] = "Training"
        run.definitions = [
            (d["Name"], re.compile(d["Regex"])) for d in algorithm.get("MetricDefinitions", [])
        ]
        env = self._training_environment(run, request)
        checkpoint_uri = str((request.get("CheckpointConfig") or {}).get("S3Uri") or "")
        spot = bool(request.get("EnableManagedSpotTraining", False))
        if checkpoint_uri:
            desc["CheckpointConfig"] = dict(request["CheckpointConfig"])
        desc["EnableManagedSpotTraining"] = spot
        max_runtime = desc["StoppingCondition"].get("MaxRuntimeInSeconds")
        stopped, failed_host = self._train_until_done(
            run,
            env,
            checkpoint_uri,
            float(max_runtime) if max_runtime else None,
            self.interrupt_training_after if spot and checkpoint_uri else None,
        )
        return self._finish_training(run, stopped, failed_host, max_runtime)

    def _training_description(
        self, name: str, request: Mapping[str, Any], hooks: TrainingHooks | None
    ) -> dict[str, Any]:
        """DescribeTrainingJob as the job starts (``InProgress``); hyperparameters must be
        strings, as SageMaker requires."""
        started = _now_ms()
        resources = dict(request.get("ResourceConfig", {}))
        hyperparameters = dict(request.get("HyperParameters", {}))
        for k, v in hyperparameters.items():
            if not isinstance(v, str):
                raise SageMakerError(
                    "ValidationException", f"hyperparameter {k!r}={v!r}: values must be strings"
                )
        output_path = request.get("OutputDataConfig", {}).get("S3OutputPath", "")
        artifact = f"{output_path.rstrip('/')}/{name}/output/model.tar.gz"
        desc: dict[str, Any] = {
            "TrainingJobName": name,
            "TrainingJobArn": self.arn("training-job", name),
            "AlgorithmSpecification": dict(request.get("AlgorithmSpecification", {})),
            "RoleArn": request.get("RoleArn"),
            "HyperParameters": hyperparameters,
            "InputDataConfig": list(request.get("InputDataConfig", [])),
            "OutputDataConfig": dict(request.get("OutputDataConfig", {})),
            "ResourceConfig": resources,
            "StoppingCondition": dict(request.get("StoppingCondition", {})),
            "EnableNetworkIsolation": request.get("EnableNetworkIsolation", False),
            "CreationTime": started,
            "TrainingStartTime": started,
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "ModelArtifacts": {"S3ModelArtifacts": artifact},
            "FinalMetricDataList": [],
            "Tags": list(request.get("Tags", [])),
        }
        if hooks is not None:
            desc["TuningJobArn"] = hooks.tuning_job_arn
        return desc

    @staticmethod
    def _write_training_config(run: _TrainingRun) -> None:
        """Each host's ``input/config``: ``hyperparameters.json``, ``inputdataconfig.json`` and
        its own ``resourceconfig.json`` (``current_host`` among ``hosts``)."""
        channels = {}
        for channel in run.desc["InputDataConfig"]:
            cname = channel["ChannelName"]
            channels[cname] = {
                "ContentType": channel.get("ContentType"),
                "TrainingInputMode": channel.get("InputMode", "File"),
                "S3DistributionType": channel.get("DataSource", {})
                .get("S3DataSource", {})
                .get("S3DataDistributionType", "FullyReplicated"),
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
                "CompressionType": channel.get("CompressionType", "None"),
            }
            channels[cname] = {k: v for k, v in channels[cname].items() if v is not None}
        hyperparameters = run.desc["HyperParameters"]
        for host, base in zip(run.hosts, run.bases, strict=True):
            config = base / "input" / "config"
            config.mkdir(parents=True, exist_ok=True)
            (config / "hyperparameters.json").write_text(json.dumps(hyperparameters), "utf-8")
            (config / "inputdataconfig.json").write_text(json.dumps(channels), "utf-8")
            (config / "resourceconfig.json").write_text(
                json.dumps(
                    {"current_host": host, "hosts": run.hosts, "network_interface_name": "lo"}
                ),
                "utf-8",
            )

    def _download_channels(self, run: _TrainingRun) -> None:
        """Copy each channel's objects into every host's ``input/data/<channel>``: all of them
        (``FullyReplicated``) or the host's shard (``ShardedByS3Key``); an empty one fails."""
        count = len(run.hosts)
        for channel in run.desc["InputDataConfig"]:
            source = channel.get("DataSource", {}).get("S3DataSource", {})
            if source.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise SageMakerError(
                    "ValidationException", "local mode reads S3Prefix channels only"
                )
            sharded = source.get("S3DataDistributionType") == "ShardedByS3Key" and count > 1
            for index, (host, base) in enumerate(zip(run.hosts, run.bases, strict=True)):
                dest = base / "input" / "data" / channel["ChannelName"]
                dest.mkdir(parents=True, exist_ok=True)
                files = self.s3.download_prefix(
                    source["S3Uri"], dest, (index, count) if sharded else None
                )
                if not files:
                    where = (
                        f" for {host}: ShardedByS3Key deals the objects over {count} instances,"
                        f" so the prefix needs at least {count} objects"
                        if sharded
                        else ""
                    )
                    self._training_failed(
                        run.desc,
                        f"ClientError: no objects under {source['S3Uri']} (channel "
                        f"{channel['ChannelName']}){where}",
                    )

    def _training_environment(
        self, run: _TrainingRun, request: Mapping[str, Any]
    ) -> dict[str, str]:
        """The ``train`` processes' environment (each host adds its ``SAGEMAKER_BASE_DIR``)."""
        env = {
            **os.environ,
            **{str(k): str(v) for k, v in request.get("Environment", {}).items()},
            "MLSTACK_PYTHON": sys.executable,
            "PYTHONUNBUFFERED": "1",
            "TRAINING_JOB_NAME": run.name,
            "TRAINING_JOB_ARN": run.desc["TrainingJobArn"],
        }
        if len(run.hosts) > 1:
            # The hosts find each other on loopback: the image's collective resolves algo-N
            # through this map instead of SageMaker's DNS.
            env["MLSTACK_HOST_ADDRESSES"] = json.dumps(dict.fromkeys(run.hosts, "127.0.0.1"))
            env["MLSTACK_TRACKER_PORT"] = str(free_port())
        if run.image.python_path is not None:
            env["PYTHONPATH"] = str(run.image.python_path)
        return env

    def _on_training_line(self, run: _TrainingRun, line: str) -> None:
        """Read the first host's log line for MetricDefinitions values; a tuning job's hook may
        stop the job early on one (SIGTERM to every host)."""
        for metric_name, regex in run.definitions:
            m = regex.search(line)
            if m and m.groups():
                try:
                    value = float(m.group(1))
                except ValueError:
                    continue
                run.metrics[metric_name] = {
                    "MetricName": metric_name,
                    "Value": value,
                    "Timestamp": _now_ms(),
                }
                if self.metric:
                    self.metric(run.name, metric_name, value)
                if (
                    run.hooks is not None
                    and not run.stopped_early.is_set()
                    and run.hooks.should_stop(run.name, metric_name, value)
                ):
                    run.stopped_early.set()
                    if self.log:
                        self.log(run.name, "stopped early by the tuning job (median rule)")
                    for running in run.procs:
                        running.send_signal(signal.SIGTERM)

    def _restore_checkpoints(self, run: _TrainingRun, checkpoint_uri: str) -> None:
        """SageMaker copies the checkpoint prefix into each (new) instance's
        /opt/ml/checkpoints before ``train`` starts."""
        for base in run.bases:
            local = base / "checkpoints"
            shutil.rmtree(local, ignore_errors=True)
            local.mkdir(parents=True)
            self.s3.download_prefix(checkpoint_uri, local)

    def _save_checkpoints(self, run: _TrainingRun, checkpoint_uri: str) -> None:
        """…and uploads the first host's /opt/ml/checkpoints to the prefix."""
        local = run.bases[0] / "checkpoints"
        for path in sorted(local.rglob("*")):
            if path.is_file():
                rel = path.relative_to(local).as_posix()
                self.s3.write(f"{checkpoint_uri.rstrip('/')}/{rel}", path.read_bytes())

    def _launch_hosts(self, run: _TrainingRun, env: dict[str, str]) -> list[threading.Thread]:
        """Start ``train`` on every host (into ``run.procs``); return the log pumps."""
        count = len(run.hosts)
        run.procs.clear()
        pumps = []
        if count > 1:
            env["MLSTACK_TRACKER_PORT"] = str(free_port())
        for index, (host, base) in enumerate(zip(run.hosts, run.bases, strict=True)):
            proc = subprocess.Popen(
                [str(run.image.program("train"))],
                env={**env, "SAGEMAKER_BASE_DIR": str(base)},
                cwd=base,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            run.procs.append(proc)
            # CloudWatch gets every host's log; metrics are read from the first host's.
            pump = threading.Thread(
                target=pump_lines,
                args=(
                    proc.stdout,
                    run.log_path(host),
                    run.name if count == 1 else f"{run.name}/{host}",
                    self.log,
                    functools.partial(self._on_training_line, run) if index == 0 else None,
                ),
                daemon=True,
            )
            pump.start()
            pumps.append(pump)
        return pumps

    def _train_until_done(
        self,
        run: _TrainingRun,
        env: dict[str, str],
        checkpoint_uri: str,
        max_runtime: float | None,
        interrupt: float | None,
    ) -> tuple[bool, int]:
        """Run the hosts to their end, starting them again (from the checkpoints) after a
        spot interruption. Returns (ran past ``max_runtime``, index of the host to report)."""
        while True:
            if checkpoint_uri:
                self._restore_checkpoints(run, checkpoint_uri)
            pumps = self._launch_hosts(run, env)
            stopped, failed_host, interrupted = _wait_hosts(list(run.procs), max_runtime, interrupt)
            for pump in pumps:
                pump.join(10)
            if checkpoint_uri:
                self._save_checkpoints(run, checkpoint_uri)
            if not interrupted:
                return stopped, failed_host
            # A spot interruption: SageMaker starts the job again on new instances, which
            # resume from the checkpoints; the first model is discarded with its instance.
            interrupt = None
            run.desc.setdefault("SecondaryStatusTransitions", []).append(
                {"Status": "Interrupted", "StatusMessage": "spot interruption (local, requested)"}
            )
            if self.log:
                self.log(run.name, "spot interruption: SIGTERM sent; resuming from checkpoints")
            for base in run.bases:
                shutil.rmtree(base / "model", ignore_errors=True)

    def _finish_training(
        self, run: _TrainingRun, stopped: bool, failed_host: int, max_runtime: Any
    ) -> dict[str, Any]:
        """Record the ending: ``Completed`` or ``Stopped`` (early, by a tuning job) with the
        first host's model uploaded, else ``Failed`` (raises JobFailed)."""
        desc = run.desc
        proc = run.procs[failed_host]
        desc["FinalMetricDataList"] = list(run.metrics.values())
        desc["TrainingEndTime"] = _now_ms()
        desc["TrainingTimeInSeconds"] = desc["BillableTimeInSeconds"] = max(
            1, (desc["TrainingEndTime"] - desc["TrainingStartTime"]) // 1000
        )
        artifact = desc["ModelArtifacts"]["S3ModelArtifacts"]
        if proc.returncode == 0 and run.stopped_early.is_set() and not stopped:
            archive = run.pack_model()
            self.s3.write(artifact, archive.read_bytes(), "application/x-tar")
            desc["TrainingJobStatus"] = desc["SecondaryStatus"] = "Stopped"
            desc["LastModifiedTime"] = _now_ms()
            self._save_registry()
            return desc
        if proc.returncode != 0 or stopped:
            failure = run.bases[failed_host] / "output" / "failure"
            reason = (
                failure.read_text("utf-8", errors="replace")[:1024].strip()
                if failure.is_file()
                else ""
            )
            if stopped:
                return self._training_failed(
                    desc,
                    f"MaxRuntimeExceeded: the job ran past MaxRuntimeInSeconds ({max_runtime})",
                )
            log_path = run.log_path(run.hosts[failed_host])
            return self._training_failed(
                desc,
                f"AlgorithmError: {reason or 'see ' + str(log_path)}, exit code: {proc.returncode}",
            )
        archive = run.pack_model()
        desc["SecondaryStatus"] = "Uploading"
        self.s3.write(artifact, archive.read_bytes(), "application/x-tar")
        desc["TrainingJobStatus"] = "Completed"
        desc["SecondaryStatus"] = "Completed"
        desc["LastModifiedTime"] = _now_ms()
        self._save_registry()
        return desc

    def _training_failed(self, desc: dict[str, Any], reason: str) -> dict[str, Any]:
        desc["TrainingJobStatus"] = "Failed"
        desc["SecondaryStatus"] = "Failed"
        desc["FailureReason"] = reason
        desc["LastModifiedTime"] = _now_ms()
        desc.pop("ModelArtifacts", None)
        self._save_registry()
        raise JobFailed(desc)

    # --- tuning ------------------------------------------------------------------------------

    def create_hyper_parameter_tuning_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        """Run the tuning job to its end (``tuning.run_tuning_job``); return
        DescribeHyperParameterTuningJob, or raise JobFailed."""
        from mlstack.local.tuning_job import run_tuning_job

        return run_tuning_job(self, p)

    def describe_hyper_parameter_tuning_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        job = self.tuning_jobs.get(str(p.get("HyperParameterTuningJobName", "")).lower())
        if job is None or "HyperParameterTuningJobArn" not in job:
            raise SageMakerError(
                "ResourceNotFound",
                f"Amazon SageMaker can't find a tuning job with name "
                f"{p.get('HyperParameterTuningJobName')}",
            )
        return job

    def describe_training_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        job = self.training_jobs.get(str(p.get("TrainingJobName", "")).lower())
        if job is None or "TrainingJobArn" not in job:
            raise SageMakerError("ValidationException", "Requested resource not found.")
        return _without_tags(job)

    # --- models ------------------------------------------------------------------------------

    def create_model(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = self._name("modelName", p.get("ModelName"), self.models)
            if "Containers" in p:
                raise SageMakerError(
                    "ValidationException", "local mode serves PrimaryContainer models only"
                )
            container = dict(p.get("PrimaryContainer", {}))
            self._image(container.get("Image"))
            if not str(container.get("ModelDataUrl", "")).startswith("s3://"):
                raise SageMakerError(
                    "ValidationException", "PrimaryContainer.ModelDataUrl must be an s3:// URI"
                )
            self.models[name.lower()] = {
                "ModelName": name,
                "ModelArn": self.arn("model", name),
                "PrimaryContainer": container,
                "ExecutionRoleArn": p.get("ExecutionRoleArn"),
                "EnableNetworkIsolation": p.get("EnableNetworkIsolation", False),
                "CreationTime": _now_ms(),
            }
        self._save_registry()
        return {"ModelArn": self.arn("model", name)}

    def describe_model(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self._model(str(p.get("ModelName", "")))

    def _model_dir(self, model: Mapping[str, Any], dest: Path) -> Path:
        """Download and extract the model's ``model.tar.gz`` into ``dest/model``."""
        archive = self.s3.read(model["PrimaryContainer"]["ModelDataUrl"])
        extract_model(archive, dest / "model")
        return dest / "model"

    # --- batch transform ---------------------------------------------------------------------

    def create_transform_job(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = self._name(
                "transformJobName", request.get("TransformJobName"), self.transform_jobs
            )
            self.transform_jobs[name.lower()] = {"TransformJobName": name}
        model = self._model(str(request.get("ModelName", "")))
        desc = self._transform_description(name, request, model)
        with self._lock:
            self.transform_jobs[name.lower()] = desc
        servers = self._start_instances(desc, request, model)
        try:
            self._transform_objects(desc, request, servers)
        except _TransformError as err:
            return self._transform_failed(desc, f"ClientError: {err}")
        finally:
            for server in servers:
                server.stop()
        desc["TransformJobStatus"] = "Completed"
        desc["TransformEndTime"] = _now_ms()
        self._save_registry()
        return desc

    def _transform_description(
        self, name: str, request: Mapping[str, Any], model: Mapping[str, Any]
    ) -> dict[str, Any]:
        """DescribeTransformJob as the job starts (``InProgress``), once the request is one
        local mode runs (no DataProcessing, an S3Prefix input, Line or None splitting)."""
        if request.get("DataProcessing"):
            raise SageMakerError(
                "ValidationException", "local mode does not apply DataProcessing filters"
            )
        tin = dict(request.get("TransformInput", {}))
        source = tin.get("DataSource", {}).get("S3DataSource", {})
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise SageMakerError("ValidationException", "local mode reads S3Prefix inputs only")
        split = tin.get("SplitType", "None")
        if split not in ("None", "Line"):
            raise SageMakerError(
                "ValidationException", f"local mode splits by Line or None, not {split}"
            )
        started = _now_ms()
        return {
            "TransformJobName": name,
            "TransformJobArn": self.arn("transform-job", name),
            "TransformJobStatus": "InProgress",
            "ModelName": model["ModelName"],
            "TransformInput": tin,
            "TransformOutput": dict(request.get("TransformOutput", {})),
            "TransformResources": dict(request.get("TransformResources", {})),
            "Environment": dict(request.get("Environment", {})),
            "CreationTime": started,
            "TransformStartTime": started,
            "Tags": list(request.get("Tags", [])),
        }

    def _start_instances(
        self, desc: dict[str, Any], request: Mapping[str, Any], model: Mapping[str, Any]
    ) -> list[ServeProcess]:
        """Extract the model and start ``serve`` on each of ``InstanceCount`` instances; one
        that does not come up stops the others and fails the job."""
        name = desc["TransformJobName"]
        job_dir = self.root / "jobs" / name
        # One instance keeps the plain layout; N instances get a tree and a serve process each.
        count = int(desc["TransformResources"].get("InstanceCount", 1))
        bases = (
            [job_dir / "opt" / "ml"]
            if count == 1
            else [job_dir / f"instance-{i}" / "opt" / "ml" for i in range(1, count + 1)]
        )
        servers: list[ServeProcess] = []
        try:
            image = self._image(model["PrimaryContainer"]["Image"])
            env = {
                **{
                    str(k): str(v)
                    for k, v in model["PrimaryContainer"].get("Environment", {}).items()
                },
                **{str(k): str(v) for k, v in desc["Environment"].items()},
                "SAGEMAKER_BATCH": "true",
            }
            if "MaxPayloadInMB" in request:
                env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(request["MaxPayloadInMB"])
            for index, base in enumerate(bases, start=1):
                self._model_dir(model, base)
                servers.append(
                    start_serve(
                        image,
                        base,
                        environment=env,
                        log_path=job_dir / ("serve.log" if count == 1 else f"serve-{index}.log"),
                        source=name if count == 1 else f"{name}/instance-{index}",
                        sink=self.log,
                    )
                )
        except (RuntimeError, OSError, tarfile.TarError) as err:
            for server in servers:
                server.stop()
            self._transform_failed(desc, f"ClientError: {err}")
        return servers

    def _transform_objects(
        self, desc: dict[str, Any], request: Mapping[str, Any], servers: list[ServeProcess]
    ) -> int:
        """Send every input object through the instances, each output to
        ``<S3OutputPath>/<key>.out``; return the number of records."""
        strategy, payload_mb, concurrency = self._execution_parameters(servers[0], request)
        desc.update(
            BatchStrategy=strategy,
            MaxPayloadInMB=payload_mb,
            MaxConcurrentTransforms=concurrency,
        )
        tin, tout = desc["TransformInput"], desc["TransformOutput"]
        source = tin.get("DataSource", {}).get("S3DataSource", {})
        split = tin.get("SplitType", "None")
        bucket, prefix = parse_uri(source["S3Uri"])
        folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        keys = shard_keys(self.s3.keys(bucket, prefix), None)
        if not keys:
            self._transform_failed(desc, f"ClientError: no objects under {source['S3Uri']}")
        out_base = tout["S3OutputPath"].rstrip("/")

        def transform(server: ServeProcess, objects: list[str]) -> int:
            records = 0
            for key in objects:
                data = self.s3.read(f"s3://{bucket}/{key}")
                if tin.get("CompressionType") == "Gzip":
                    data = gzip.decompress(data)
                batches = self._batches(data, split, strategy, payload_mb * MB)
                records += sum(n for _, n in batches)
                outputs = self._invoke_all(
                    server, batches, tin, tout, concurrency, desc["TransformJobName"]
                )
                joiner = b"\n" if tout.get("AssembleWith") == "Line" else b""
                body = joiner.join(o.rstrip(b"\n") if joiner else o for o in outputs)
                if joiner and body:
                    body += b"\n"
                self.s3.write(f"{out_base}/{key[len(folder) :]}.out", body, tout.get("Accept"))
            return records

        # SageMaker spreads an S3Prefix input's objects over the instances: instance i
        # takes every N-th object from the i-th, each its own output object.
        count = len(servers)
        with ThreadPoolExecutor(max_workers=count) as pool:
            shares = [
                pool.submit(transform, server, shard_keys(keys, (i, count)))
                for i, server in enumerate(servers)
            ]
            return sum(share.result() for share in shares)

    def _execution_parameters(
        self, server: ServeProcess, request: Mapping[str, Any]
    ) -> tuple[str, int, int]:
        defaults: dict[str, Any] = {}
        status, _, body = server.request("GET", "/execution-parameters")
        if status == 200:
            defaults = json.loads(body)
        strategy = request.get("BatchStrategy") or defaults.get("BatchStrategy", "SingleRecord")
        strategy = {"MULTI_RECORD": "MultiRecord", "SINGLE_RECORD": "SingleRecord"}.get(
            strategy, strategy
        )
        payload = int(request.get("MaxPayloadInMB") or defaults.get("MaxPayloadInMB", 6))
        concurrency = int(
            request.get("MaxConcurrentTransforms") or defaults.get("MaxConcurrentTransforms", 1)
        )
        return strategy, payload, max(1, concurrency)

    @staticmethod
    def _batches(data: bytes, split: str, strategy: str, limit: int) -> list[tuple[bytes, int]]:
        """Requests as SageMaker forms them: whole objects, or lines batched up to ``limit``."""
        if split == "None":
            return [(data, 1)] if data else []
        lines = [line for line in data.split(b"\n") if line.strip()]
        if strategy == "SingleRecord":
            return [(line, 1) for line in lines]
        batches: list[tuple[bytes, int]] = []
        current: list[bytes] = []
        size = 0
        for line in lines:
            if len(line) > limit:
                raise _TransformError(f"a record of {len(line)} bytes exceeds MaxPayloadInMB")
            if current and size + len(line) + 1 > limit:
                batches.append((b"\n".join(current), len(current)))
                current, size = [], 0
            current.append(line)
            size += len(line) + 1
        if current:
            batches.append((b"\n".join(current), len(current)))
        return batches

    def _invoke_all(
        self,
        server: ServeProcess,
        batches: list[tuple[bytes, int]],
        tin: Mapping[str, Any],
        tout: Mapping[str, Any],
        concurrency: int,
        name: str,
    ) -> list[bytes]:
        headers = {"Content-Type": tin.get("ContentType", "application/octet-stream")}
        if tout.get("Accept"):
            headers["Accept"] = tout["Accept"]

        def invoke(batch: tuple[bytes, int]) -> bytes:
            status, _, body = server.request("POST", "/invocations", batch[0], headers)
            if status != 200:
                raise _TransformError(
                    f"the model answered {status} for a request of {batch[1]} record(s): "
                    f"{body.decode(errors='replace')[:500]}"
                )
            return body

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(invoke, batches))

    def _transform_failed(self, desc: dict[str, Any], reason: str) -> dict[str, Any]:
        desc["TransformJobStatus"] = "Failed"
        desc["FailureReason"] = reason
        desc["TransformEndTime"] = _now_ms()
        self._save_registry()
        raise JobFailed(desc)

    def describe_transform_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        job = self.transform_jobs.get(str(p.get("TransformJobName", "")).lower())
        if job is None or "TransformJobArn" not in job:
            raise SageMakerError("ValidationException", "Could not find requested job.")
        return _without_tags(job)

    # --- processing --------------------------------------------------------------------------

    def create_processing_job(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Run the job to its end; return DescribeProcessingJob, or raise JobFailed."""
        with self._lock:
            name = self._name(
                "processingJobName", request.get("ProcessingJobName"), self.processing_jobs
            )
            self.processing_jobs[name.lower()] = {"ProcessingJobName": name}
        try:
            processing.check_request(request)
        except processing.ProcessingRequestError as err:
            with self._lock:
                del self.processing_jobs[name.lower()]
            raise SageMakerError("ValidationException", str(err)) from None
        image = self._image(request.get("AppSpecification", {}).get("ImageUri"))
        desc = processing.description(name, self.arn("processing-job", name), request, _now_ms())
        with self._lock:
            self.processing_jobs[name.lower()] = desc
        job_dir = self.root / "jobs" / name
        base = job_dir / "opt" / "ml"
        (base / "output").mkdir(parents=True, exist_ok=True)
        self._download_processing_inputs(desc, base, request)
        max_runtime = desc["StoppingCondition"].get("MaxRuntimeInSeconds")
        status = processing.run_container(
            image,
            base,
            request,
            pump=functools.partial(
                pump_lines, log_path=job_dir / "processing.log", source=name, sink=self.log
            ),
            timeout=float(max_runtime) if max_runtime else None,
        )
        return self._finish_processing(desc, base, request, status)

    def _download_processing_inputs(
        self, desc: dict[str, Any], base: Path, request: Mapping[str, Any]
    ) -> None:
        for source in request.get("ProcessingInputs", []):
            s3 = source["S3Input"]
            dest = processing.local_path(
                base, s3.get("LocalPath"), f"input {source['InputName']!r}"
            )
            dest.mkdir(parents=True, exist_ok=True)
            if not self.s3.download_prefix(str(s3["S3Uri"]), dest):
                self._processing_failed(
                    desc,
                    f"ClientError: no objects under {s3['S3Uri']} (input {source['InputName']})",
                )

    def _finish_processing(
        self, desc: dict[str, Any], base: Path, request: Mapping[str, Any], status: int | None
    ) -> dict[str, Any]:
        message = processing.exit_message(base)
        if message is not None:
            desc["ExitMessage"] = message
        if status is None:
            return self._processing_failed(
                desc,
                "MaxRuntimeExceeded: the job ran past MaxRuntimeInSeconds "
                f"({desc['StoppingCondition'].get('MaxRuntimeInSeconds')})",
            )
        if status != 0:
            reason = (message or "").strip() or f"see {base.parent.parent / 'processing.log'}"
            return self._processing_failed(
                desc, f"AlgorithmError: {reason}, exit code: {status}"[:1024]
            )
        for uri, path in processing.output_files(base, request):
            self.s3.write(uri, path.read_bytes())
        desc["ProcessingJobStatus"] = "Completed"
        desc["ProcessingEndTime"] = desc["LastModifiedTime"] = _now_ms()
        self._save_registry()
        return desc

    def _processing_failed(self, desc: dict[str, Any], reason: str) -> dict[str, Any]:
        desc["ProcessingJobStatus"] = "Failed"
        desc["FailureReason"] = reason
        desc["ProcessingEndTime"] = desc["LastModifiedTime"] = _now_ms()
        self._save_registry()
        raise JobFailed(desc)

    def describe_processing_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        job = self.processing_jobs.get(str(p.get("ProcessingJobName", "")).lower())
        if job is None or "ProcessingJobArn" not in job:
            raise SageMakerError(
                "ValidationException", f"Processing job {p.get('ProcessingJobName')} not found."
            )
        return job

    # --- endpoints ---------------------------------------------------------------------------

    def create_endpoint_config(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = self._name(
                "endpointConfigName", p.get("EndpointConfigName"), self.endpoint_configs
            )
            variants = list(p.get("ProductionVariants", []))
            if not variants:
                raise SageMakerError("ValidationException", "ProductionVariants must not be empty")
            for variant in variants:
                self._model(str(variant.get("ModelName", "")))
            self.endpoint_configs[name.lower()] = {
                "EndpointConfigName": name,
                "EndpointConfigArn": self.arn("endpoint-config", name),
                "ProductionVariants": variants,
                "KmsKeyId": p.get("KmsKeyId"),
                "CreationTime": _now_ms(),
            }
        self._save_registry()
        return {"EndpointConfigArn": self.arn("endpoint-config", name)}

    def describe_endpoint_config(self, p: Mapping[str, Any]) -> dict[str, Any]:
        config = self.endpoint_configs.get(str(p.get("EndpointConfigName", "")).lower())
        if config is None:
            raise SageMakerError("ValidationException", "Could not find endpoint configuration.")
        return config

    def create_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = str(p.get("EndpointName", ""))
            if name.lower() in self.endpoints:
                raise SageMakerError(
                    "ValidationException",
                    f'Cannot create already existing endpoint "{self.arn("endpoint", name)}".',
                )
            self._name("endpointName", name, {})
            config = self.describe_endpoint_config(
                {"EndpointConfigName": p.get("EndpointConfigName")}
            )
            now = _now_ms()
            endpoint = Endpoint(
                name, self.arn("endpoint", name), config["EndpointConfigName"], "Creating", now, now
            )
            self.endpoints[name.lower()] = endpoint
        self._deploy(endpoint, config)
        return {"EndpointArn": endpoint.arn}

    def update_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            endpoint = self._endpoint(str(p.get("EndpointName", "")))
            if endpoint.status not in ("InService", "Failed"):
                raise SageMakerError(
                    "ValidationException", f'Cannot update in-progress endpoint "{endpoint.arn}".'
                )
            config = self.describe_endpoint_config(
                {"EndpointConfigName": p.get("EndpointConfigName")}
            )
            endpoint.status = "Updating"
            endpoint.modified_ms = _now_ms()
        self._deploy(endpoint, config)
        return {"EndpointArn": endpoint.arn}

    def _deploy(self, endpoint: Endpoint, config: Mapping[str, Any]) -> None:
        """Start ``serve`` for the config's first variant in the background; swap on /ping."""
        variant = config["ProductionVariants"][0]
        model = self._model(str(variant["ModelName"]))
        self._save_registry()

        def run() -> None:
            stamp = _now_ms()
            base = self.endpoints_dir / endpoint.name / f"{config['EndpointConfigName']}-{stamp}"
            try:
                self._model_dir(model, base)
                server = start_serve(
                    self._image(model["PrimaryContainer"]["Image"]),
                    base,
                    environment={
                        str(k): str(v)
                        for k, v in model["PrimaryContainer"].get("Environment", {}).items()
                    },
                    log_path=base.parent / "serve.log",
                    source=endpoint.name,
                    sink=self.log,
                )
            except Exception as err:
                with self._lock:
                    endpoint.status = "Failed"
                    endpoint.failure_reason = str(err)[:1024]
                    endpoint.modified_ms = _now_ms()
                self._save_registry()
                return
            with self._lock:
                old, endpoint.server = endpoint.server, server
                endpoint.config_name = config["EndpointConfigName"]
                endpoint.model_name = model["ModelName"]
                endpoint.model_dir = str(base / "model")
                endpoint.image_uri = model["PrimaryContainer"]["Image"]
                endpoint.variant = variant.get("VariantName", "AllTraffic")
                endpoint.status = "InService"
                endpoint.failure_reason = None
                endpoint.modified_ms = _now_ms()
            if old is not None:
                old.stop()
            self._save_registry()

        threading.Thread(target=run, daemon=True, name=f"deploy-{endpoint.name}").start()

    def _endpoint(self, name: str) -> Endpoint:
        endpoint = self.endpoints.get(name.lower())
        if endpoint is None:
            raise SageMakerError(
                "ValidationException", f'Could not find endpoint "{self.arn("endpoint", name)}".'
            )
        return endpoint

    def endpoint_server(self, name: str) -> ServeProcess:
        """The InService endpoint's ``serve`` process; an endpoint restored from a saved
        registry is served again here, on first need, from its model directory (extracted
        again from its model's ``ModelDataUrl`` when that directory is gone)."""
        with self._lock:
            endpoint = self._endpoint(name)
            if endpoint.status != "InService":
                raise SageMakerError(
                    "ValidationException",
                    f'Endpoint "{endpoint.arn}" is {endpoint.status}, not InService.',
                )
            if endpoint.server is not None:
                return endpoint.server
            model = self._model(endpoint.model_name)
            base = Path(endpoint.model_dir).parent
            if not (base / "model").is_dir():
                base = self.endpoints_dir / endpoint.name / f"{endpoint.config_name}-{_now_ms()}"
                self._model_dir(model, base)
                endpoint.model_dir = str(base / "model")
            endpoint.server = start_serve(
                self._image(model["PrimaryContainer"]["Image"]),
                base,
                environment={
                    str(k): str(v)
                    for k, v in model["PrimaryContainer"].get("Environment", {}).items()
                },
                log_path=base.parent / "serve.log",
                source=endpoint.name,
                sink=self.log,
            )
            return endpoint.server

    def describe_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        e = self._endpoint(str(p.get("EndpointName", "")))
        desc: dict[str, Any] = {
            "EndpointName": e.name,
            "EndpointArn": e.arn,
            "EndpointConfigName": e.config_name,
            "EndpointStatus": e.status,
            "CreationTime": e.created_ms,
            "LastModifiedTime": e.modified_ms,
        }
        if e.status == "InService":
            desc["ProductionVariants"] = [
                {
                    "VariantName": e.variant,
                    "DeployedImages": [
                        {"SpecifiedImage": e.image_uri, "ResolvedImage": e.image_uri}
                    ],
                    "CurrentWeight": 1.0,
                    "DesiredWeight": 1.0,
                    "CurrentInstanceCount": 1,
                    "DesiredInstanceCount": 1,
                }
            ]
        if e.failure_reason:
            desc["FailureReason"] = e.failure_reason
        return desc

    def delete_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            e = self._endpoint(str(p.get("EndpointName", "")))
            del self.endpoints[e.name.lower()]
        if e.server is not None:
            e.server.stop()
        self._save_registry()
        return {}

    def wait_for_deployments(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(e.status not in ("Creating", "Updating") for e in self.endpoints.values()):
                return
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every endpoint's server (the registry keeps what was deployed)."""
        self.wait_for_deployments()
        for endpoint in list(self.endpoints.values()):
            if endpoint.server is not None:
                endpoint.server.stop()
                endpoint.server = None
        self._save_registry()


class _TransformError(Exception):
    pass


def _restored_endpoint(saved: Mapping[str, Any]) -> Endpoint:
    """An endpoint of a saved registry, not served yet. One the saving run left ``Updating``
    keeps serving its previous configuration (as SageMaker rolls a failed update back); one
    left ``Creating`` never came up: ``Failed``."""
    known = {f.name for f in dataclasses.fields(Endpoint)} - {"server"}
    endpoint = Endpoint(**{k: v for k, v in saved.items() if k in known})
    if endpoint.status == "Updating" and endpoint.model_dir:
        endpoint.status = "InService"
    elif endpoint.status in ("Creating", "Updating"):
        endpoint.status = "Failed"
        endpoint.failure_reason = "the local run creating it ended before it was InService"
    return endpoint


def deployed_endpoints(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The endpoints a local run deployed (``sagemaker/registry.json``), InService ones only."""
    path = run_dir / "sagemaker" / "registry.json"
    if not path.is_file():
        return {}
    registry = json.loads(path.read_text(encoding="utf-8"))
    return {
        e["name"]: e
        for e in registry.get("endpoints", {}).values()
        if e.get("status") == "InService"
    }


def _without_tags(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job's Describe… answer: the API gives its tags through ListTags, not here (botocore's
    sagemaker model: DescribeTrainingJobResponse and DescribeTransformJobResponse have no Tags)."""
    return {k: v for k, v in job.items() if k != "Tags"}

"""Training jobs, locally: CreateTrainingJob runs the image's ``train`` program on one process
per instance, each in its own ``/opt/ml`` tree under the run's ``jobs/<name>/``.

What follows SageMaker: job names (63 characters, unique), File-mode channel download keeping the
S3 key tree, ``hyperparameters.json`` (strings), ``inputdataconfig.json``,
``resourceconfig.json``, ``/opt/ml/output/failure`` as ``FailureReason``, MetricDefinitions
regexes applied to the log (``FinalMetricDataList``), ``model.tar.gz`` at
``<S3OutputPath>/<job>/output/model.tar.gz``.

``InstanceCount`` N trains on N processes (``algo-1``..``algo-N``, each its own ``/opt/ml`` tree and
``resourceconfig.json``, the image's XGBoost collective on loopback); a ``ShardedByS3Key``
channel gives host i every N-th object from the i-th in key order, a ``FullyReplicated`` one
all of them; the model is the first host's. A managed-spot job with checkpoints may be
interrupted on request (``interrupt_after``) and resumes from its checkpoints.

Differences: File input mode only; a ``.sync`` and a plain create both return once the job ended.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack.local.assembly import Image
from mlstack.local.loopback import free_port
from mlstack.local.processes import spawn
from mlstack.local.sagemaker_service import (
    JobFailed,
    SageMakerError,
    Service,
    now_ms,
    pack_model,
    without_tags,
)


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


class TrainingJobs:
    """CreateTrainingJob and DescribeTrainingJob of one account.

    ``interrupt_after``: a managed-spot training job with checkpoints gets SIGTERM this many
    seconds in, once (a spot interruption, on request); new processes then resume from its
    checkpoints.
    """

    def __init__(self, service: Service, *, interrupt_after: float | None = None) -> None:
        self.service = service
        self.interrupt_after = interrupt_after

    def create_training_job(
        self, request: Mapping[str, Any], *, hooks: TrainingHooks | None = None
    ) -> dict[str, Any]:
        """Run the job to its end; return DescribeTrainingJob, or raise JobFailed.

        ``hooks`` (a tuning job's): its ARN for the description, and a check of each metric
        value that may stop the job early (``Stopped``, its model kept, as SageMaker does).
        """
        with self.service.lock:
            name = self.service.unique_name(
                "trainingJobName",
                request.get("TrainingJobName"),
                self.service.registry.training_jobs,
            )
            self.service.registry.training_jobs[name.lower()] = {"TrainingJobName": name}
        algorithm = request.get("AlgorithmSpecification", {})
        image = self.service.image(algorithm.get("TrainingImage"))
        if algorithm.get("TrainingInputMode", "File") != "File":
            raise SageMakerError("ValidationException", "local mode runs File input mode only")
        desc = self._training_description(name, request, hooks)
        with self.service.lock:
            self.service.registry.training_jobs[name.lower()] = desc
        run = _TrainingRun.for_job(self.service.root / "jobs" / name, desc, image, hooks)
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
            self.interrupt_after if spot and checkpoint_uri else None,
        )
        return self._finish_training(run, stopped, failed_host, max_runtime)

    def _training_description(
        self, name: str, request: Mapping[str, Any], hooks: TrainingHooks | None
    ) -> dict[str, Any]:
        """DescribeTrainingJob as the job starts (``InProgress``); hyperparameters must be
        strings, as SageMaker requires."""
        started = now_ms()
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
            "TrainingJobArn": self.service.arn("training-job", name),
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
                files = self.service.s3.download_prefix(
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
                    "Timestamp": now_ms(),
                }
                if self.service.metric:
                    self.service.metric(run.name, metric_name, value)
                if (
                    run.hooks is not None
                    and not run.stopped_early.is_set()
                    and run.hooks.should_stop(run.name, metric_name, value)
                ):
                    run.stopped_early.set()
                    self.service.say(run.name, "stopped early by the tuning job (median rule)")
                    for running in run.procs:
                        running.send_signal(signal.SIGTERM)

    def _restore_checkpoints(self, run: _TrainingRun, checkpoint_uri: str) -> None:
        """SageMaker copies the checkpoint prefix into each (new) instance's
        /opt/ml/checkpoints before ``train`` starts."""
        for base in run.bases:
            local = base / "checkpoints"
            shutil.rmtree(local, ignore_errors=True)
            local.mkdir(parents=True)
            self.service.s3.download_prefix(checkpoint_uri, local)

    def _save_checkpoints(self, run: _TrainingRun, checkpoint_uri: str) -> None:
        """…and uploads the first host's /opt/ml/checkpoints to the prefix."""
        local = run.bases[0] / "checkpoints"
        for path in sorted(local.rglob("*")):
            if path.is_file():
                rel = path.relative_to(local).as_posix()
                self.service.s3.write(f"{checkpoint_uri.rstrip('/')}/{rel}", path.read_bytes())

    def _launch_hosts(self, run: _TrainingRun, env: dict[str, str]) -> list[threading.Thread]:
        """Start ``train`` on every host (into ``run.procs``); return the log pumps."""
        count = len(run.hosts)
        run.procs.clear()
        pumps = []
        if count > 1:
            env["MLSTACK_TRACKER_PORT"] = str(free_port())
        for index, (host, base) in enumerate(zip(run.hosts, run.bases, strict=True)):
            proc = spawn(
                [str(run.image.program("train"))],
                env={**env, "SAGEMAKER_BASE_DIR": str(base)},
                cwd=base,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            run.procs.append(proc)
            # CloudWatch gets every host's log; metrics are read from the first host's.
            pump = threading.Thread(
                target=self.service.processes.pump_lines,
                args=(
                    proc.stdout,
                    run.log_path(host),
                    run.name if count == 1 else f"{run.name}/{host}",
                    self.service.log,
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
            stopped, failed_host, interrupted = self.service.processes.wait_hosts(
                list(run.procs), max_runtime, interrupt
            )
            for pump in pumps:
                pump.join(10)
            if checkpoint_uri:
                self._save_checkpoints(run, checkpoint_uri)
            if not interrupted:
                if interrupt is not None:  # requested, and never sent
                    self.service.say(
                        run.name,
                        f"spot interruption not sent: training ended before {interrupt:g} s "
                        "(--interrupt-training-after)",
                    )
                return stopped, failed_host
            # A spot interruption: SageMaker starts the job again on new instances, which
            # resume from the checkpoints; the first model is discarded with its instance.
            interrupt = None
            run.desc.setdefault("SecondaryStatusTransitions", []).append(
                {"Status": "Interrupted", "StatusMessage": "spot interruption (local, requested)"}
            )
            self.service.say(run.name, "spot interruption: SIGTERM sent; resuming from checkpoints")
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
        desc["TrainingEndTime"] = now_ms()
        desc["TrainingTimeInSeconds"] = desc["BillableTimeInSeconds"] = max(
            1, (desc["TrainingEndTime"] - desc["TrainingStartTime"]) // 1000
        )
        artifact = desc["ModelArtifacts"]["S3ModelArtifacts"]
        if proc.returncode == 0 and run.stopped_early.is_set() and not stopped:
            archive = run.pack_model()
            self.service.s3.write(artifact, archive.read_bytes(), "application/x-tar")
            desc["TrainingJobStatus"] = desc["SecondaryStatus"] = "Stopped"
            desc["LastModifiedTime"] = now_ms()
            self.service.save()
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
        self.service.s3.write(artifact, archive.read_bytes(), "application/x-tar")
        desc["TrainingJobStatus"] = "Completed"
        desc["SecondaryStatus"] = "Completed"
        desc["LastModifiedTime"] = now_ms()
        self.service.save()
        return desc

    def _training_failed(self, desc: dict[str, Any], reason: str) -> dict[str, Any]:
        desc["TrainingJobStatus"] = "Failed"
        desc["SecondaryStatus"] = "Failed"
        desc["FailureReason"] = reason
        desc["LastModifiedTime"] = now_ms()
        desc.pop("ModelArtifacts", None)
        self.service.save()
        raise JobFailed(desc)

    def describe_training_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        job = self.service.registry.training_jobs.get(str(p.get("TrainingJobName", "")).lower())
        if job is None or "TrainingJobArn" not in job:
            raise SageMakerError("ValidationException", "Requested resource not found.")
        return without_tags(job)

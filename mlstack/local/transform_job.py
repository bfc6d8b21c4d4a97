"""Batch transform jobs, locally: CreateTransformJob starts the model image's ``serve`` program
on each of ``InstanceCount`` instances and sends the input through them.

What follows SageMaker: ``/ping``, ``/execution-parameters`` and ``/invocations`` with
``SplitType``/``BatchStrategy``/``MaxPayloadInMB``/``MaxConcurrentTransforms``; the objects of
an S3Prefix input dealt over the instances (instance i takes every N-th object from the i-th);
each output at ``<S3OutputPath>/<input key>.out``, joined by ``AssembleWith``.

``DataProcessing`` (``InputFilter``, ``JoinSource``, ``OutputFilter``) for CSV and JSON Lines
records: :mod:`mlstack.local.transform_filters`.

Differences: ``SplitType`` Line or None only; a ``.sync`` and a plain create both return once
the job ended.
"""

from __future__ import annotations

import gzip
import json
import tarfile
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlstack.local.registry_store import Server
from mlstack.local.s3 import parse_uri, shard_keys
from mlstack.local.sagemaker_service import (
    MB,
    JobFailed,
    SageMakerError,
    Service,
    now_ms,
    without_tags,
)
from mlstack.local.transform_filters import DataProcessing, FilterError


class _TransformError(Exception):
    pass


class TransformJobs:
    """CreateTransformJob and DescribeTransformJob of one account."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def create_transform_job(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.service.lock:
            name = self.service.unique_name(
                "transformJobName",
                request.get("TransformJobName"),
                self.service.registry.transform_jobs,
            )
            self.service.registry.transform_jobs[name.lower()] = {"TransformJobName": name}
        model = self.service.model(str(request.get("ModelName", "")))
        desc = self._transform_description(name, request, model)
        with self.service.lock:
            self.service.registry.transform_jobs[name.lower()] = desc
        servers = self._start_instances(desc, request, model)
        try:
            self._transform_objects(desc, request, servers)
        except _TransformError as err:
            return self._transform_failed(desc, f"ClientError: {err}")
        finally:
            for server in servers:
                server.stop()
        desc["TransformJobStatus"] = "Completed"
        desc["TransformEndTime"] = now_ms()
        self.service.save()
        return desc

    def _transform_description(
        self, name: str, request: Mapping[str, Any], model: Mapping[str, Any]
    ) -> dict[str, Any]:
        """DescribeTransformJob as the job starts (``InProgress``), once the request is one
        local mode runs (an S3Prefix input, Line or None splitting, filters it can apply)."""
        tin = dict(request.get("TransformInput", {}))
        source = tin.get("DataSource", {}).get("S3DataSource", {})
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise SageMakerError("ValidationException", "local mode reads S3Prefix inputs only")
        split = tin.get("SplitType", "None")
        if split not in ("None", "Line"):
            raise SageMakerError(
                "ValidationException", f"local mode splits by Line or None, not {split}"
            )
        try:
            DataProcessing.of(request)
        except FilterError as err:
            raise SageMakerError("ValidationException", str(err)) from None
        started = now_ms()
        processing = request.get("DataProcessing")
        extra = {"DataProcessing": dict(processing)} if processing else {}
        return {
            "TransformJobName": name,
            "TransformJobArn": self.service.arn("transform-job", name),
            "TransformJobStatus": "InProgress",
            "ModelName": model["ModelName"],
            "TransformInput": tin,
            "TransformOutput": dict(request.get("TransformOutput", {})),
            "TransformResources": dict(request.get("TransformResources", {})),
            "Environment": dict(request.get("Environment", {})),
            "CreationTime": started,
            "TransformStartTime": started,
            "Tags": list(request.get("Tags", [])),
            **extra,
        }

    def _start_instances(
        self, desc: dict[str, Any], request: Mapping[str, Any], model: Mapping[str, Any]
    ) -> list[Server]:
        """Extract the model and start ``serve`` on each of ``InstanceCount`` instances; one
        that does not come up stops the others and fails the job."""
        name = desc["TransformJobName"]
        job_dir = self.service.root / "jobs" / name
        # One instance keeps the plain layout; N instances get a tree and a serve process each.
        count = int(desc["TransformResources"].get("InstanceCount", 1))
        bases = (
            [job_dir / "opt" / "ml"]
            if count == 1
            else [job_dir / f"instance-{i}" / "opt" / "ml" for i in range(1, count + 1)]
        )
        servers: list[Server] = []
        try:
            image = self.service.image(model["PrimaryContainer"]["Image"])
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
                self.service.model_dir(model, base)
                servers.append(
                    self.service.processes.start_serve(
                        image,
                        base,
                        environment=env,
                        log_path=job_dir / ("serve.log" if count == 1 else f"serve-{index}.log"),
                        source=name if count == 1 else f"{name}/instance-{index}",
                        sink=self.service.log,
                    )
                )
        except (RuntimeError, OSError, tarfile.TarError) as err:
            for server in servers:
                server.stop()
            self._transform_failed(desc, f"ClientError: {err}")
        return servers

    def _transform_objects(
        self, desc: dict[str, Any], request: Mapping[str, Any], servers: list[Server]
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
        keys = shard_keys(self.service.s3.keys(bucket, prefix), None)
        if not keys:
            self._transform_failed(desc, f"ClientError: no objects under {source['S3Uri']}")
        out_base = tout["S3OutputPath"].rstrip("/")
        processing = DataProcessing.of(desc)
        done, done_lock = [0], threading.Lock()

        def written() -> None:  # progress: the run's reporter shows k/n objects
            with done_lock:
                done[0] += 1
                line = f"mlstack-transform: {done[0]}/{len(keys)} objects transformed"
            if self.service.log is not None:
                self.service.log(desc["TransformJobName"], line)

        def transform(server: Server, objects: list[str]) -> int:
            records = 0
            for key in objects:
                data = self.service.s3.read(f"s3://{bucket}/{key}")
                if tin.get("CompressionType") == "Gzip":
                    data = gzip.decompress(data)
                lines = [line for line in data.split(b"\n") if line.strip()]
                if processing is not None:
                    data = b"\n".join(self._filtered(processing, lines, key))
                batches = self._batches(data, split, strategy, payload_mb * MB)
                records += sum(n for _, n in batches)
                outputs = self._invoke_all(
                    server, batches, tin, tout, concurrency, desc["TransformJobName"]
                )
                if processing is not None:
                    outputs = self._joined(processing, lines, batches, outputs, key)
                joiner = b"\n" if tout.get("AssembleWith") == "Line" else b""
                body = joiner.join(o.rstrip(b"\n") if joiner else o for o in outputs)
                if joiner and body:
                    body += b"\n"
                self.service.s3.write(
                    f"{out_base}/{key[len(folder) :]}.out", body, tout.get("Accept")
                )
                written()
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

    @staticmethod
    def _filtered(processing: DataProcessing, lines: list[bytes], key: str) -> list[bytes]:
        """Each record as ``InputFilter`` selects it (what the model is sent)."""
        try:
            return [processing.filter_input(line, i) for i, line in enumerate(lines)]
        except FilterError as err:
            raise _TransformError(f"{key}: InputFilter: {err}") from None

    @staticmethod
    def _joined(
        processing: DataProcessing,
        lines: list[bytes],
        batches: list[tuple[bytes, int]],
        outputs: list[bytes],
        key: str,
    ) -> list[bytes]:
        """Each answer line joined to its input record (``JoinSource``), then
        ``OutputFilter``: one output record per input record, in order."""
        answers: list[bytes] = []
        for (_, count), output in zip(batches, outputs, strict=True):
            got = [line for line in output.rstrip(b"\n").split(b"\n")] if output else []
            if len(got) != count:
                raise _TransformError(
                    f"{key}: the model answered {len(got)} line(s) for {count} record(s); "
                    "DataProcessing joins one answer line to each record"
                )
            answers.extend(got)
        try:
            return [
                processing.join(line, answer, i)
                for i, (line, answer) in enumerate(zip(lines, answers, strict=True))
            ]
        except FilterError as err:
            raise _TransformError(f"{key}: OutputFilter: {err}") from None

    def _execution_parameters(
        self, server: Server, request: Mapping[str, Any]
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
        server: Server,
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
        desc["TransformEndTime"] = now_ms()
        self.service.save()
        raise JobFailed(desc)

    def describe_transform_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        job = self.service.registry.transform_jobs.get(str(p.get("TransformJobName", "")).lower())
        if job is None or "TransformJobArn" not in job:
            raise SageMakerError("ValidationException", "Could not find requested job.")
        return without_tags(job)

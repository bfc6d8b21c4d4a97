"""Processing jobs, locally: CreateProcessingJob downloads the inputs, runs the image's
entrypoint in an ``/opt/ml/processing`` tree under the run's ``jobs/<name>/``, and uploads the
outputs (the request's checks and the container's run: :mod:`mlstack.local.processing`)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlstack.local import processing
from mlstack.local.sagemaker_service import JobFailed, SageMakerError, Service, now_ms


class ProcessingJobs:
    """CreateProcessingJob and DescribeProcessingJob of one account."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def create_processing_job(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Run the job to its end; return DescribeProcessingJob, or raise JobFailed."""
        with self.service.lock:
            name = self.service.unique_name(
                "processingJobName",
                request.get("ProcessingJobName"),
                self.service.registry.processing_jobs,
            )
            self.service.registry.processing_jobs[name.lower()] = {"ProcessingJobName": name}
        try:
            processing.check_request(request)
        except processing.ProcessingRequestError as err:
            with self.service.lock:
                del self.service.registry.processing_jobs[name.lower()]
            raise SageMakerError("ValidationException", str(err)) from None
        image = self.service.image(request.get("AppSpecification", {}).get("ImageUri"))
        desc = processing.description(
            name, self.service.arn("processing-job", name), request, now_ms()
        )
        with self.service.lock:
            self.service.registry.processing_jobs[name.lower()] = desc
        job_dir = self.service.root / "jobs" / name
        base = job_dir / "opt" / "ml"
        (base / "output").mkdir(parents=True, exist_ok=True)
        self._download_processing_inputs(desc, base, request)
        max_runtime = desc["StoppingCondition"].get("MaxRuntimeInSeconds")
        status = processing.run_container(
            image,
            base,
            request,
            pump=functools.partial(
                self.service.processes.pump_lines,
                log_path=job_dir / "processing.log",
                source=name,
                sink=self.service.log,
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
            if not self.service.s3.download_prefix(str(s3["S3Uri"]), dest):
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
            self.service.s3.write(uri, path.read_bytes())
        desc["ProcessingJobStatus"] = "Completed"
        desc["ProcessingEndTime"] = desc["LastModifiedTime"] = now_ms()
        self.service.save()
        return desc

    def _processing_failed(self, desc: dict[str, Any], reason: str) -> dict[str, Any]:
        desc["ProcessingJobStatus"] = "Failed"
        desc["FailureReason"] = reason
        desc["ProcessingEndTime"] = desc["LastModifiedTime"] = now_ms()
        self.service.save()
        raise JobFailed(desc)

    def describe_processing_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        job = self.service.registry.processing_jobs.get(str(p.get("ProcessingJobName", "")).lower())
        if job is None or "ProcessingJobArn" not in job:
            raise SageMakerError(
                "ValidationException", f"Processing job {p.get('ProcessingJobName')} not found."
            )
        return job

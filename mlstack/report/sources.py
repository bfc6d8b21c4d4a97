"""Where a report's inputs come from: a local run's directory and embedded S3, or (``mlstack
report``) a deployed execution through boto3."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPORT_PARTS_FILE = "report_parts.json"  # what evaluate writes beside evaluation.json
EVALUATION_FILE = "evaluation.json"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key); ValueError naming the URI otherwise."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def parts_uri(evaluation_uri: str) -> str:
    """report_parts.json beside the evaluation report."""
    if not evaluation_uri.endswith(EVALUATION_FILE):
        raise ValueError(f"{evaluation_uri!r} does not name an {EVALUATION_FILE}")
    return evaluation_uri[: -len(EVALUATION_FILE)] + REPORT_PARTS_FILE


def read_parts(s3: Any, evaluation: dict[str, Any] | None) -> dict[str, Any] | None:
    """The evaluation's report_parts.json, or None when the run has no evaluation or the job
    wrote none (an image older than the report)."""
    uri = (evaluation or {}).get("report_uri")
    if not isinstance(uri, str):
        return None
    bucket, key = split_s3_uri(parts_uri(uri))
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    parts = json.loads(body)
    return parts if isinstance(parts, dict) else None


def local_rounds(run_dir: Path, jobs: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Each training job's metrics-<host>.json from its hosts' /opt/ml/output/data trees."""
    found: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        files = sorted((run_dir / "jobs" / job).glob("**/opt/ml/output/data/metrics-*.json"))
        documents = [json.loads(f.read_text("utf-8")) for f in files]
        if documents:
            found[job] = documents
    return found


def tuning_points(
    tuning_jobs: Mapping[str, Mapping[str, Any]], training_jobs: Mapping[str, Mapping[str, Any]]
) -> tuple[str, list[dict[str, Any]]]:
    """The objective's name and, for the last tuning job, each of its training jobs' objective
    value in creation order (``{"name", "value", "best"}``), as DescribeHyperParameterTuningJob
    and DescribeTrainingJob describe them (``TuningJobArn``, ``FinalMetricDataList``)."""
    if not tuning_jobs:
        return "", []
    tuning = list(tuning_jobs.values())[-1]
    config = tuning.get("HyperParameterTuningJobConfig") or {}
    objective = str((config.get("HyperParameterTuningJobObjective") or {}).get("MetricName", ""))
    best = (tuning.get("BestTrainingJob") or {}).get("TrainingJobName")
    arn = tuning.get("HyperParameterTuningJobArn")
    members = [job for job in training_jobs.values() if job.get("TuningJobArn") == arn]
    members.sort(key=lambda job: str(job.get("CreationTime", "")))
    points = []
    for job in members:
        values = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
        if objective in values:
            name = job.get("TrainingJobName")
            points.append({"name": name, "value": values[objective], "best": name == best})
    return objective, points


def evaluation_of_jobs(processing_jobs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """A run that failed after *Evaluate model* has no evaluation in its output: its report
    still shows the evaluation, found from the last of ``processing_jobs`` (DescribeProcessingJob
    shapes) with an output named ``evaluation`` (the Evaluate model job's)."""
    for job in reversed(list(processing_jobs.values())):
        outputs = (job.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        for output in outputs:
            if output.get("OutputName") == "evaluation":
                prefix = str(output["S3Output"]["S3Uri"]).rstrip("/")
                return {"report_uri": f"{prefix}/{EVALUATION_FILE}"}
    return None


def task_results(events: Iterable[Mapping[str, Any]], resource: str) -> list[dict[str, Any]]:
    """The results of the history's succeeded tasks of ``resource`` (``createTrainingJob.sync``:
    DescribeTrainingJob's answer), in order: what a failed execution's output no longer
    carries."""
    found = []
    for event in events:
        details = event.get("taskSucceededEventDetails") or {}
        if event.get("type") == "TaskSucceeded" and details.get("resource") == resource:
            try:
                result = json.loads(details.get("output") or "null")
            except ValueError:
                continue
            if isinstance(result, dict):
                found.append(result)
    return found

"""``mlstack report --env ENV --execution NAME``: the full run report of a deployed execution.

What only the caller can read is added to what the run left in S3: the execution's history
(``GetExecutionHistory``, for the timeline), its output (the decisions), the training job's
per-round metrics (``metrics-<host>.json`` in the job's ``output.tar.gz``, beside its
``model.tar.gz``), a tuning job's training jobs' objective values and the evaluation's
``report_parts.json``. The report is written beside the
evaluation report, ``s3://<bucket>/evaluations/<run_id>/report.html`` (the URI the registered
version's customer metadata ``report`` names), and opened (a presigned URL) unless ``--no-open``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import webbrowser
from typing import Any

from botocore.exceptions import ClientError

from mlstack.cli.deployed import CommandError, _client, _guard, _history, stack_output
from mlstack.report import REPORT_FILE
from mlstack.report.build import ReportInputs, render
from mlstack.report.sources import (
    EVALUATION_FILE,
    evaluation_of_jobs,
    read_parts,
    split_s3_uri,
    task_results,
)

OUTPUT_ARCHIVE = "output.tar.gz"
PRESIGNED_SECONDS = 3600


def report(args: argparse.Namespace) -> int:
    return _guard(_report, args, "report")


def execution_arn(state_machine_arn: str, name: str) -> str:
    """A standard execution's ARN: the state machine's, ``:stateMachine:`` made
    ``:execution:``, then ``:<name>`` (Step Functions API reference, DescribeExecution)."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def report_uri(evaluation: dict[str, Any]) -> str:
    """report.html beside the evaluation report."""
    uri = str(evaluation.get("report_uri", ""))
    if not uri.endswith(EVALUATION_FILE):
        raise CommandError(
            f"the execution's evaluation report_uri {uri!r} does not name an {EVALUATION_FILE}"
        )
    return uri[: -len(EVALUATION_FILE)] + REPORT_FILE


def _report(args: argparse.Namespace) -> int:
    machine = stack_output(args.env, "Workflow", "StateMachineArn", args.region)
    sfn = _client("stepfunctions", args.region)
    arn = execution_arn(machine, args.execution)
    try:
        description = sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        raise CommandError(
            f"no execution {args.execution!r} of {machine} (the names are in the Step Functions "
            "console, or `aws stepfunctions list-executions`)"
        ) from None
    output = json.loads(description.get("output") or "null")
    output = output if isinstance(output, dict) else {}
    events = _history(sfn, arn)
    evaluation, job = _evaluation_and_training_job(output, events)
    if evaluation is None:
        raise CommandError(
            f"execution {args.execution} is {description['status']} and ran no evaluation job "
            "(neither its output nor its history has one): the report is written beside the "
            "evaluation report, which this run lacks"
        )
    s3 = _client("s3", args.region)
    sagemaker = _client("sagemaker", args.region)
    inputs = ReportInputs(
        execution=args.execution,
        environment=args.env,
        status=description["status"],
        events=events,
        rounds={job: training_rounds(s3, sagemaker, job)} if isinstance(job, str) else {},
        parts=read_parts(s3, evaluation),
        **tuning_inputs(sagemaker, events),
        output=output,
        error=description.get("error"),
    )
    target = report_uri(evaluation)
    bucket, key = split_s3_uri(target)
    s3.put_object(
        Bucket=bucket, Key=key, Body=render(inputs).encode("utf-8"), ContentType="text/html"
    )
    print(f"report written to {target}")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGNED_SECONDS
    )
    print(f"open it (for {PRESIGNED_SECONDS // 60} minutes): {url}")
    if not args.no_open:
        webbrowser.open(url)
    return 0


def _evaluation_and_training_job(
    output: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, str | None]:
    """The output's evaluation and training job; a failed execution has no output, so then the
    history's: the last evaluation processing job's and training job's results."""
    evaluation = output.get("evaluation")
    job = output.get("training_job_name")
    if not isinstance(evaluation, dict):
        jobs = task_results(events, "createProcessingJob.sync")
        evaluation = evaluation_of_jobs({str(i): j for i, j in enumerate(jobs)})
    if not isinstance(job, str):
        trained = task_results(events, "createTrainingJob.sync")
        job = trained[-1].get("TrainingJobName") if trained else None
    return evaluation, job if isinstance(job, str) else None


def tuning_inputs(sagemaker: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The tuning job's objective and each of its training jobs' final value, the best marked
    (ListTrainingJobsForHyperParameterTuningJob), when the execution tuned."""
    tuned = task_results(events, "createHyperParameterTuningJob.sync")
    if not tuned:
        return {}
    job = tuned[-1]
    config = job.get("HyperParameterTuningJobConfig") or {}
    objective = str((config.get("HyperParameterTuningJobObjective") or {}).get("MetricName", ""))
    best = (job.get("BestTrainingJob") or {}).get("TrainingJobName")
    paginator = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
    points = []
    for page in paginator.paginate(
        HyperParameterTuningJobName=job["HyperParameterTuningJobName"],
        SortBy="CreationTime",
        SortOrder="Ascending",
    ):
        for summary in page["TrainingJobSummaries"]:
            final = summary.get("FinalHyperParameterTuningJobObjectiveMetric")
            if final is not None:
                name = summary["TrainingJobName"]
                points.append({"name": name, "value": final["Value"], "best": name == best})
    return {"tuning": points, "tuning_objective": objective}


def training_rounds(s3: Any, sagemaker: Any, job: str) -> list[dict[str, Any]]:
    """Every host's metrics-<host>.json from the training job's output.tar.gz (none when the job
    wrote none: an image older than the report)."""
    artifacts = sagemaker.describe_training_job(TrainingJobName=job)["ModelArtifacts"]
    model_uri = str(artifacts["S3ModelArtifacts"])
    bucket, key = split_s3_uri(model_uri.rsplit("/", 1)[0] + "/" + OUTPUT_ARCHIVE)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            print(f"mlstack report: no s3://{bucket}/{key}: no training curves", file=sys.stderr)
            return []
        raise
    documents = []
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and name.startswith("metrics-") and name.endswith(".json"):
                stream = tar.extractfile(member)
                if stream is not None:
                    documents.append(json.loads(stream.read()))
    return documents

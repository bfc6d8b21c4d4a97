"""``mlstack local monitor``: the drift and model-quality job, run over a local account.

It runs the training image's ``monitor`` program as a local Processing job
(:mod:`mlstack.local.processing_job`, the request the scheduled job makes in AWS) over what the
environment's local account holds: the endpoint's data capture (``data-capture/<endpoint>/``,
written by the local gateway when ``endpoint.data_capture`` is on), the baseline
``monitoring.baseline`` names (``baselines/latest/`` by default, written by every local run) and
the ground truth under ``ground-truth/`` (``--ground-truth FILE`` uploads one under
``ground-truth/<yyyy>/<mm>/<dd>/`` first). The report goes to
``monitoring/<endpoint>/<window end>/`` of the account's data bucket; the figures and which alarm
would fire (thresholds from the environment's ``monitoring`` keys) are printed.

Exit status: 0 when the window was analysed (whatever the alarms), 1 when it could not be (no
local account, no capture, no baseline, the job failed), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

IMAGE_URI = "local-training-image"
CAPTURE_PREFIX = "data-capture/"  # BucketLayout.data_capture (the Serving endpoint's destination)
GROUND_TRUTH_PREFIX = "ground-truth/"
REPORTS_PREFIX = "monitoring/"


class MonitorRefused(ValueError):
    """The local monitor cannot run; the message says what to do."""


def add_parser(local_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    monitor = local_commands.add_parser(
        "monitor",
        help="run the drift and model-quality job over the local endpoint's captured requests",
        description="Run the training image's monitor program as a local Processing job over "
        "the environment's local account: the endpoint's data capture, the baseline and the "
        "ground truth; print the drift and quality figures and which alarm would fire.",
    )
    monitor.add_argument("--env", default="dev", help="environment (default: dev)")
    monitor.add_argument(
        "--ground-truth",
        type=Path,
        help="JSON Lines {inference_id, label} to upload under ground-truth/<yyyy>/<mm>/<dd>/",
    )
    monitor.add_argument(
        "--window-hours",
        type=float,
        default=1.0,
        help="the window: this many hours up to now (default 1)",
    )
    monitor.add_argument("--endpoint-name", help="the endpoint (default: the captured one)")
    monitor.add_argument(
        "--workdir",
        type=Path,
        default=Path(".work/local"),
        help="where the local accounts are (default: .work/local)",
    )
    monitor.add_argument(
        "--environments-dir", type=Path, help="read the environment from this folder instead"
    )


def _data_bucket(s3: Any, baseline_prefix: str) -> str:
    """The account's bucket holding the baseline (the data bucket)."""
    for bucket in sorted(b["Name"] for b in s3.client.list_buckets().get("Buckets", [])):
        if next(iter(s3.keys(bucket, baseline_prefix)), None) is not None:
            return str(bucket)
    raise MonitorRefused(
        f"no baseline under {baseline_prefix} in the local account: run `mlstack local run` "
        "of this environment first (its Baseline data step writes it)"
    )


def _endpoint(s3: Any, bucket: str, wanted: str | None) -> str:
    endpoints = sorted(
        {k[len(CAPTURE_PREFIX) :].split("/", 1)[0] for k in s3.keys(bucket, CAPTURE_PREFIX)}
    )
    if wanted is not None:
        if wanted not in endpoints:
            raise MonitorRefused(
                f"no capture of endpoint {wanted!r} under s3://{bucket}/{CAPTURE_PREFIX} "
                f"(captured: {', '.join(endpoints) or 'none'})"
            )
        return wanted
    if not endpoints:
        raise MonitorRefused(
            f"nothing captured under s3://{bucket}/{CAPTURE_PREFIX}: send requests to the "
            "local endpoint (`mlstack local serve --from-run <workdir>/accounts/<env>`) with "
            "endpoint.data_capture on in the environment"
        )
    if len(endpoints) > 1:
        raise MonitorRefused(
            f"several endpoints captured ({', '.join(endpoints)}): pick one with --endpoint-name"
        )
    return endpoints[0]


def processing_request(
    name: str, bucket: str, endpoint: str, arguments: list[str], baseline: str, truth: bool
) -> dict[str, Any]:
    """The CreateProcessingJob request of the monitor job (the scheduled job's, in AWS)."""

    def source(input_name: str, prefix: str) -> dict[str, Any]:
        return {
            "InputName": input_name,
            "S3Input": {
                "S3Uri": f"s3://{bucket}/{prefix}",
                "LocalPath": f"/opt/ml/processing/input/{input_name}",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
            },
        }

    inputs = [source("capture", f"{CAPTURE_PREFIX}{endpoint}/"), source("baseline", baseline)]
    if truth:
        inputs.append(source("ground_truth", GROUND_TRUTH_PREFIX))
    end = arguments[arguments.index("--window-end") + 1]
    return {
        "ProcessingJobName": name,
        "AppSpecification": {
            "ImageUri": IMAGE_URI,
            "ContainerEntrypoint": ["monitor"],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "report",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/{REPORTS_PREFIX}{endpoint}/{end}/",
                        "LocalPath": "/opt/ml/processing/output/report",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 20,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "RoleArn": "arn:aws:iam::000000000000:role/local-monitor",
    }


def monitor_arguments(config: Any, endpoint: str, start: datetime, end: datetime) -> list[str]:
    """The program's arguments: the window, then what the Workflow stack's DriftMonitor tells
    it (the same reading of the environment's ``monitoring`` keys)."""
    from mlstack.stacks._monitor_settings import monitor_settings

    window = [
        "--window-start", start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--window-end", end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]  # fmt: skip
    return window + monitor_settings(config).arguments(endpoint)


def run_monitor(args: argparse.Namespace, now: datetime | None = None) -> dict[str, Any]:
    """Run the job; returns its report.json."""
    from mlstack.config import ENVIRONMENTS_DIR, load_environment
    from mlstack.local.account import LocalAccount
    from mlstack.local.assembly import REPO, Image
    from mlstack.local.s3 import EmbeddedS3
    from mlstack.local.sagemaker import JobFailed, LocalSageMaker

    config = load_environment(args.env, args.environments_dir or ENVIRONMENTS_DIR)
    if config.endpoint.data_capture is None:
        raise MonitorRefused(
            f"environment {args.env} has no endpoint.data_capture: its endpoint captures "
            "nothing to monitor (turn it on in environments/<env>.json)"
        )
    if not args.window_hours > 0:
        raise MonitorRefused(f"--window-hours {args.window_hours}: expected more than 0")
    account = LocalAccount.of(args.workdir, args.env)
    if not account.s3_dir.is_dir():
        raise MonitorRefused(
            f"no local account of {args.env} in {account.directory}: run `mlstack local run "
            f"--env {args.env}` first"
        )
    end = (now or datetime.now(UTC)).replace(microsecond=0)
    start = end - timedelta(hours=args.window_hours)
    with account.lock("mlstack local monitor"), EmbeddedS3() as s3:
        s3.restore(account.s3_dir)
        bucket = _data_bucket(s3, config.monitoring.baseline)
        endpoint = _endpoint(s3, bucket, args.endpoint_name)
        if args.ground_truth is not None:
            key = f"{GROUND_TRUTH_PREFIX}{end:%Y/%m/%d}/{args.ground_truth.name}"
            s3.write(f"s3://{bucket}/{key}", args.ground_truth.read_bytes())
        truth = next(iter(s3.keys(bucket, GROUND_TRUTH_PREFIX)), None) is not None
        image = Image(
            uri=IMAGE_URI, directory=REPO / "containers", dockerfile="training/Dockerfile"
        )
        name = f"monitor-{endpoint}-{end:%Y%m%d%H%M%S}"[:63]
        root = args.workdir / "monitor" / args.env / name
        sagemaker = LocalSageMaker(root, s3, {IMAGE_URI: image})
        arguments = monitor_arguments(config, endpoint, start, end)
        request = processing_request(
            name, bucket, endpoint, arguments, config.monitoring.baseline, truth
        )
        try:
            sagemaker.create_processing_job(request)
        except JobFailed as failed:
            raise MonitorRefused(
                f"the monitor job failed: {failed.args[0].get('FailureReason')}"
            ) from None
        output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
        report: dict[str, Any] = json.loads(s3.read(f"{output}report.json"))
        report["report_uri"] = f"{output}report.html"
        s3.persist(account.s3_dir)
    return report


def summary(report: dict[str, Any]) -> str:
    """What a person reads: the window, each feature's drift, the quality and the alarms."""
    records = report["records"]
    lines = [
        f"endpoint {report['endpoint']}, window {report['window']['start']} to "
        f"{report['window']['end']}: {report['status']}",
        f"  {records['captured']} records in {records['requests']} requests, "
        f"{records['rejected']} rejected, {records['outside_window']} outside the window",
    ]
    for f in report["drift"]["features"]:
        p = "-" if f["p_value"] is None else f"{f['p_value']:.3g}"
        mark = "DRIFT" if f["drifted"] else "ok"
        lines.append(f"  {f['name']:<24} PSI {f['psi']:8.4f}  {f['test']} p {p:<9} {mark}")
    lines.append(f"  drifted features: {report['drift']['drifted_share_percent']:.1f} %")
    quality = report.get("quality")
    if quality is not None:
        figures = ", ".join(f"{k} {v:.4f}" for k, v in quality["metrics"].items())
        lines.append(
            f"  quality ({quality['problem_type']}, {quality['labelled']} labelled, "
            f"{quality['status']}): {figures or 'none'}"
        )
    for alarm, fired in report["alarms"].items():
        lines.append(f"  {alarm} alarm: {'WOULD FIRE' if fired else 'quiet'}")
    lines.append(f"  report: {report['report_uri']}")
    return "\n".join(lines)


def local_monitor(args: argparse.Namespace) -> int:
    from mlstack.local.account import AccountInUse

    try:
        report = run_monitor(args)
    except (MonitorRefused, ValueError, OSError, AccountInUse) as err:
        print(f"mlstack local monitor: {err}", file=sys.stderr)
        return 1
    print(summary(report))
    return 0

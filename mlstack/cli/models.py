"""The model registry from the command line: list an environment's versions with their status and
evaluation metrics, approve one (which releases it) or reject one with a reason.

The same code serves the deployed account (boto3's SageMaker and S3 clients) and the local one
(:class:`mlstack.local.sagemaker.LocalSageMaker` behind :class:`BotoStyle`): both answer the
calls of the SageMaker API reference (ListModelPackages, DescribeModelPackage,
UpdateModelPackage) in boto3's shapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any


class RegistryError(Exception):
    """A message for the user; the command exits 1."""


ReadObject = Callable[[str], bytes]  # s3://bucket/key -> its bytes


class BotoStyle:
    """``client.list_model_packages(ModelPackageGroupName=...)`` on an object whose methods take
    one mapping of the same parameters (LocalSageMaker's)."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._target, name)
        return lambda **params: method(params)


def versions(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    """Every version of ``group``, oldest first (ListModelPackages, every page)."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        request: dict[str, Any] = {
            "ModelPackageGroupName": group,
            "SortBy": "CreationTime",
            "SortOrder": "Ascending",
        }
        if token:
            request["NextToken"] = token
        page = sagemaker.list_model_packages(**request)
        found.extend(page.get("ModelPackageSummaryList", []))
        token = page.get("NextToken")
        if not token:
            return sorted(found, key=lambda v: int(v.get("ModelPackageVersion", 0)))


def flat_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """``{"binary_classification_metrics": {"auc": {"value": 0.9, ...}}}`` (SageMaker's model
    quality metrics format) -> ``{"auc": 0.9}``; nested tables such as a confusion matrix are
    left out."""
    metrics: dict[str, float] = {}
    for section in report.values():
        if not isinstance(section, Mapping):
            continue
        for name, entry in section.items():
            value = entry.get("value") if isinstance(entry, Mapping) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[name] = float(value)
    return metrics


def evaluation_uri(description: Mapping[str, Any]) -> str | None:
    statistics = description.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
    uri = statistics.get("S3Uri")
    return uri if isinstance(uri, str) else None


def metrics_text(description: Mapping[str, Any], read: ReadObject) -> str:
    uri = evaluation_uri(description)
    if uri is None:
        return "(no evaluation report)"
    try:
        report = json.loads(read(uri))
    except Exception as err:
        return f"(cannot read {uri}: {type(err).__name__})"
    metrics = flat_metrics(report) if isinstance(report, Mapping) else {}
    if not metrics:
        return f"(no metrics in {uri})"
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))


def created_text(value: Any) -> str:
    """CreationTime to the second, in UTC: a datetime (boto3), an ISO 8601 string or epoch
    milliseconds (a local registry)."""
    when: datetime | None = None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        when = datetime.fromtimestamp(value / 1000, UTC)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value
    if when is None:
        return ""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if when.tzinfo is not None else "")


def model_data(description: Mapping[str, Any]) -> str | None:
    """The model artifact of a version (its first inference container's ModelDataUrl)."""
    containers = description.get("InferenceSpecification", {}).get("Containers", [])
    url = containers[0].get("ModelDataUrl") if containers else None
    return url if isinstance(url, str) else None


def listing(
    sagemaker: Any, group: str, read: ReadObject, serving: Mapping[str, str] | None = None
) -> Iterator[str]:
    """The lines of ``mlstack models``: one per version, newest last. ``serving`` maps a model
    artifact (ModelDataUrl) to the endpoint that serves it: that version is marked live."""
    serving = serving or {}
    found = versions(sagemaker, group)
    if not found:
        yield (
            f"Model package group {group} has no versions yet: each run that passes the "
            "quality gate adds one."
        )
        return
    yield f"Model package group {group}: {len(found)} version(s)"
    yield f"  {'VERSION':>7}  {'STATUS':<22}  {'CREATED':<20}  METRICS"
    for summary in found:
        description = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        created = created_text(summary.get("CreationTime"))
        status = str(summary.get("ModelApprovalStatus", "?"))
        line = (
            f"  {summary['ModelPackageVersion']:>7}  {status:<22}  {created:<20}  "
            f"{metrics_text(description, read)}"
        )
        if description.get("ApprovalDescription"):
            line += f"  [{description['ApprovalDescription']}]"
        endpoint = serving.get(model_data(description) or "")
        if endpoint:
            line += f"  (live: {endpoint})"
        yield line


def version_arn(sagemaker: Any, group: str, number: int) -> tuple[str, str]:
    """The ARN and current status of version ``number`` of ``group``."""
    found = versions(sagemaker, group)
    for summary in found:
        if int(summary.get("ModelPackageVersion", 0)) == number:
            return str(summary["ModelPackageArn"]), str(summary.get("ModelApprovalStatus"))
    known = ", ".join(str(v["ModelPackageVersion"]) for v in found) or "none"
    raise RegistryError(f"model package group {group} has no version {number} (versions: {known})")


def set_status(
    sagemaker: Any, group: str, number: int, status: str, reason: str | None
) -> tuple[str, bool]:
    """UpdateModelPackage of version ``number`` to ``status``; returns (ARN, changed). A version
    already in that status is left alone, so no second release starts."""
    arn, current = version_arn(sagemaker, group, number)
    if current == status:
        return arn, False
    request: dict[str, Any] = {"ModelPackageArn": arn, "ModelApprovalStatus": status}
    if reason:
        request["ApprovalDescription"] = reason
    sagemaker.update_model_package(**request)
    return arn, True

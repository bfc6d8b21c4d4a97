"""SageMaker Model Registry, locally: model package groups and their numbered versions.

What follows SageMaker (API reference: CreateModelPackage, DescribeModelPackage,
ListModelPackages, UpdateModelPackage): a version of a group is
``arn:aws:sagemaker:<region>:<account>:model-package/<group>/<N>``, numbered 1, 2, ... in its
group in creation order; ``ModelApprovalStatus`` starts as asked (``PendingManualApproval`` when
not given) and becomes ``Approved`` or ``Rejected`` through UpdateModelPackage, with an
``ApprovalDescription``; a repeated ``ClientToken`` in a group answers the version it created.

Each creation and each change of approval status is announced through ``on_event`` as the
EventBridge event SageMaker sends, "SageMaker Model Package State Change", whose detail is the
version's description ("Events that Amazon SageMaker AI sends to Amazon EventBridge", SageMaker
developer guide, section "SageMaker model package state change").

The state is two kinds of the account's registry (:mod:`mlstack.local.registry_store`),
``model_package_groups`` (by name) and ``model_packages`` (by ARN), so it persists with it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")
EventSink = Callable[[str, dict[str, Any]], None]  # (detail-type, detail)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ModelPackageCalls:
    """The Model Registry calls of :class:`mlstack.local.sagemaker.LocalSageMaker`."""

    # Provided by LocalSageMaker.
    region: str
    account: str
    model_package_groups: dict[str, dict[str, Any]]
    model_packages: dict[str, dict[str, Any]]
    on_event: EventSink | None

    def _save_registry(self) -> None:  # pragma: no cover - LocalSageMaker's
        raise NotImplementedError

    def _refuse(self, code: str, message: str) -> Exception:  # pragma: no cover
        raise NotImplementedError

    # --- groups ------------------------------------------------------------------------------

    def create_model_package_group(self, p: Mapping[str, Any]) -> dict[str, Any]:
        name = str(p.get("ModelPackageGroupName", ""))
        if not name:
            raise self._refuse("ValidationException", "ModelPackageGroupName is required")
        if name in self.model_package_groups:
            raise self._refuse("ValidationException", f"Model Package Group {name} already exists.")
        self._add_group(name, str(p.get("ModelPackageGroupDescription", "")))
        return {"ModelPackageGroupArn": self.model_package_groups[name]["ModelPackageGroupArn"]}

    def ensure_model_package_group(self, name: str) -> None:
        """The group as CloudFormation created it (kept with its versions across runs)."""
        if name not in self.model_package_groups:
            self._add_group(name, "")

    def _add_group(self, name: str, description: str) -> None:
        self.model_package_groups[name] = {
            "ModelPackageGroupName": name,
            "ModelPackageGroupArn": self._arn("model-package-group", name),
            "ModelPackageGroupDescription": description,
            "CreationTime": _now(),
            "ModelPackageGroupStatus": "Completed",
        }
        self._save_registry()

    def describe_model_package_group(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self._group(p.get("ModelPackageGroupName")))

    def _group(self, name_or_arn: Any) -> dict[str, Any]:
        name = str(name_or_arn or "").rsplit("/", 1)[-1]
        group = self.model_package_groups.get(name)
        if group is None:
            raise self._refuse(
                "ValidationException",
                f"Model Package Group {name!r} does not exist in account {self.account}, "
                f"region {self.region}",
            )
        return group

    # --- versions ----------------------------------------------------------------------------

    def create_model_package(self, p: Mapping[str, Any]) -> dict[str, Any]:
        group = self._group(p.get("ModelPackageGroupName"))
        name = group["ModelPackageGroupName"]
        versions = [v for v in self.model_packages.values() if v["ModelPackageGroupName"] == name]
        token = p.get("ClientToken")
        for version in versions:
            if token and version.get("ClientToken") == token:
                return {"ModelPackageArn": version["ModelPackageArn"]}
        status = str(p.get("ModelApprovalStatus", "PendingManualApproval"))
        self._check_status(status)
        if not p.get("InferenceSpecification", {}).get("Containers"):
            raise self._refuse(
                "ValidationException", "InferenceSpecification.Containers must not be empty"
            )
        number = len(versions) + 1
        arn = self._arn("model-package", f"{name}/{number}")
        package = {
            "ModelPackageName": name,
            "ModelPackageGroupName": name,
            "ModelPackageVersion": number,
            "ModelPackageArn": arn,
            "ModelPackageDescription": p.get("ModelPackageDescription", ""),
            "CreationTime": _now(),
            "InferenceSpecification": copy.deepcopy(p["InferenceSpecification"]),
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": status,
            "ModelMetrics": copy.deepcopy(p.get("ModelMetrics", {})),
            "CustomerMetadataProperties": dict(p.get("CustomerMetadataProperties", {})),
            "ClientToken": token,
        }
        self.model_packages[arn] = package
        self._save_registry()
        self._announce(package)
        return {"ModelPackageArn": arn}

    def describe_model_package(self, p: Mapping[str, Any]) -> dict[str, Any]:
        package = copy.deepcopy(self._package(p.get("ModelPackageName")))
        package.pop("ClientToken", None)
        # Required in DescribeModelPackage's output (botocore's sagemaker model); no validation
        # profiles are given, so there are no validation statuses.
        package.setdefault("ModelPackageStatusDetails", {"ValidationStatuses": []})
        if not package.get("CustomerMetadataProperties"):
            package.pop("CustomerMetadataProperties", None)  # a map of 1 to 50 entries, or none
        return package

    def list_model_packages(self, p: Mapping[str, Any]) -> dict[str, Any]:
        name = p.get("ModelPackageGroupName")
        group = self._group(name)["ModelPackageGroupName"] if name else None
        wanted = p.get("ModelApprovalStatus")
        found = [
            v
            for v in self.model_packages.values()
            if (group is None or v["ModelPackageGroupName"] == group)
            and (wanted is None or v["ModelApprovalStatus"] == wanted)
        ]
        found.sort(
            key=lambda v: (v["CreationTime"], v["ModelPackageVersion"]),
            reverse=p.get("SortOrder", "Ascending") == "Descending",
        )
        keys = (
            "ModelPackageName",
            "ModelPackageGroupName",
            "ModelPackageVersion",
            "ModelPackageArn",
            "ModelPackageDescription",
            "CreationTime",
            "ModelPackageStatus",
            "ModelApprovalStatus",
        )
        return {"ModelPackageSummaryList": [{k: v[k] for k in keys} for v in found]}

    def update_model_package(self, p: Mapping[str, Any]) -> dict[str, Any]:
        package = self._package(p.get("ModelPackageArn"))
        status = p.get("ModelApprovalStatus")
        changed = False
        if status is not None:
            self._check_status(str(status))
            changed = status != package["ModelApprovalStatus"]
            package["ModelApprovalStatus"] = status
        if "ApprovalDescription" in p:
            package["ApprovalDescription"] = str(p["ApprovalDescription"])
        package["LastModifiedTime"] = _now()
        self._save_registry()
        if changed:
            self._announce(package)
        return {"ModelPackageArn": package["ModelPackageArn"]}

    def _package(self, arn: Any) -> dict[str, Any]:
        package = self.model_packages.get(str(arn or ""))
        if package is None:
            raise self._refuse("ValidationException", f"Model Package {arn} does not exist.")
        return package

    def _check_status(self, status: str) -> None:
        if status not in APPROVAL_STATUSES:
            raise self._refuse(
                "ValidationException",
                f"1 validation error detected: Value {status!r} at 'modelApprovalStatus' failed "
                "to satisfy constraint: Member must satisfy enum value set: "
                f"{list(APPROVAL_STATUSES)}",
            )

    def _announce(self, package: Mapping[str, Any]) -> None:
        if self.on_event is not None:
            detail = {k: v for k, v in copy.deepcopy(dict(package)).items() if k != "ClientToken"}
            self.on_event(MODEL_PACKAGE_STATE_CHANGE, detail)

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"

"""``mlstack local models``, ``local approve`` and ``local reject``: the model registry of an
environment's local account (``<workdir>/accounts/<env>/sagemaker/registry.json``, where local
runs keep their SageMaker registry), through the same code as the deployed commands."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from mlstack.cli.models import BotoStyle, RegistryError, listing, model_data, set_status
from mlstack.local.account import AccountInUse, LocalAccount, write_atomically
from mlstack.local.model_packages import ModelPackageCalls
from mlstack.local.processes import Interrupted, interruptible
from mlstack.local.s3 import parse_uri
from mlstack.local.sagemaker import SageMakerError
from mlstack.local.validation import Checked, ServiceRefusal


class RegistryFile(ModelPackageCalls):
    """The model registry kinds of a saved LocalSageMaker registry; every other kind is written
    back as it was read."""

    def __init__(self, path: Path, region: str = "us-east-1", account: str = "000000000000"):
        self.path = path
        self.saved: dict[str, Any] = (
            json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        )
        self.model_package_groups = self.saved.get("model_package_groups", {})
        self.model_packages = self.saved.get("model_packages", {})
        self.region, self.account = region, account
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.on_event = lambda kind, detail: self.events.append((kind, detail))

    def _save_registry(self) -> None:
        self.saved["model_package_groups"] = self.model_package_groups
        self.saved["model_packages"] = self.model_packages
        write_atomically(self.path, json.dumps(self.saved, indent=2, default=str))

    def _refuse(self, code: str, message: str) -> Exception:
        return SageMakerError(code, message)


def _open(args: argparse.Namespace) -> tuple[RegistryFile, str, Path]:
    account = LocalAccount.of(args.workdir, args.env)
    directory = account.directory
    registry = RegistryFile(account.registry_path)
    # The group a run created from the app's ModelRegistry (one per environment).
    groups = sorted(registry.model_package_groups)
    if not groups:
        raise RegistryError(
            f"the local account of {args.env} ({directory}) has no model registry yet: "
            f"run `mlstack local run --env {args.env}` first"
        )
    return registry, groups[0], directory


def serving(registry: RegistryFile) -> dict[str, str]:
    """Model artifact (ModelDataUrl) -> the local endpoint that serves it, from the endpoints,
    endpoint configurations and models of the account's registry."""
    models = registry.saved.get("models", {})
    found: dict[str, str] = {}
    for endpoint in registry.saved.get("endpoints", {}).values():
        if endpoint.get("status") not in ("InService", "Updating"):
            continue
        model = models.get(str(endpoint.get("model_name", "")).lower(), {})
        container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
        url = container.get("ModelDataUrl")
        if isinstance(url, str):
            found[url] = str(endpoint.get("name"))
    return found


def models(args: argparse.Namespace) -> int:
    try:
        registry, group, directory = _open(args)

        def read(uri: str) -> bytes:
            bucket, key = parse_uri(uri)
            return (directory / "s3" / bucket / key).read_bytes()

        for line in listing(
            BotoStyle(Checked(registry, "sagemaker")), group, read, serving(registry)
        ):
            print(line)
    except (RegistryError, SageMakerError, ServiceRefusal) as err:
        print(f"mlstack local models: {err}", file=sys.stderr)
        return 1
    return 0


def approve(args: argparse.Namespace) -> int:
    return _set_status(args, "Approved", args.reason or "approved with `mlstack local approve`")


def reject(args: argparse.Namespace) -> int:
    return _set_status(args, "Rejected", args.reason)


def _set_status(args: argparse.Namespace, status: str, reason: str) -> int:
    command = "approve" if status == "Approved" else "reject"
    try:
        # A local run rewrites the registry when it ends: edit it only while none holds it.
        with LocalAccount.of(args.workdir, args.env).lock(f"mlstack local {command}"):
            changed = _change_status(args, status, reason)
    except (AccountInUse, RegistryError, SageMakerError, ServiceRefusal) as err:
        print(f"mlstack local {command}: {err}", file=sys.stderr)
        return 1
    if not changed or status != "Approved":
        return 0
    return release(args)


def _change_status(args: argparse.Namespace, status: str, reason: str) -> bool:
    """Set the version's status; an approval's event waits in the account for the release."""
    registry, group, _ = _open(args)
    checked = BotoStyle(Checked(registry, "sagemaker"))  # as SageMaker checks each call
    arn, changed = set_status(checked, group, args.version, status, reason)
    if not changed:
        print(f"{group} version {args.version} is already {status}: nothing changed ({arn})")
        return False
    print(f"{group} version {args.version} is {status} ({arn}): {reason}")
    description = registry.describe_model_package({"ModelPackageName": arn})
    endpoint = serving(registry).get(model_data(description) or "")
    if status == "Rejected" and endpoint:
        print(
            f"  it stays live on endpoint {endpoint}: a rejection does not undeploy; approve "
            f"another version to replace it (`mlstack local approve --env {args.env} "
            "--version N`)"
        )
    # What SageMaker sends EventBridge, delivered in the account: an approval starts the release.
    pending = registry.saved.setdefault("pending_events", {})
    for kind, detail in registry.events:
        pending[str(uuid.uuid4())] = {"detail-type": kind, "detail": detail}
    registry._save_registry()
    return True


def release(args: argparse.Namespace) -> int:
    """Run what the account's pending events start (the release), as a local run without a
    training execution. Ctrl-C or SIGTERM stops it as ``local run`` is stopped: one line, the
    status of a command the signal ended (128 + its number)."""
    from mlstack.cli.local import forget_stopped_jsii
    from mlstack.local.runner import RunOptions, format_summary, run
    from mlstack.local.ui import reporter_for

    options = RunOptions(
        environment=args.env,
        workdir=args.workdir,
        cdk_out=getattr(args, "cdk_out", None),
        release_only=True,
    )
    try:
        with interruptible():
            report = run(options, reporter_for(sys.stdout, plain=True))
    except Interrupted as stop:  # before the release started (synthesizing, starting S3)
        forget_stopped_jsii()
        print(
            f"mlstack local approve: {signal.Signals(stop.signum).name} before the release "
            f"started: version {args.version} stays Approved, no endpoint was touched; its "
            "release did not run",
            file=sys.stderr,
        )
        return 128 + stop.signum
    if report.interrupted is not None:
        forget_stopped_jsii()
        stopped = ", ".join(report.stopped_jobs) if report.stopped_jobs else "no job was running"
        print(
            f"mlstack local approve: {signal.Signals(report.interrupted).name} stopped the "
            f"release of version {args.version} in state {report.interrupted_in or '(none)'}; "
            f"stopped: {stopped}; kept: version {args.version} stays Approved, its release "
            "unfinished (an endpoint update in progress rolls back to the live configuration, "
            "a creation in progress ends Failed, as in SageMaker)",
            file=sys.stderr,
        )
        return 128 + report.interrupted
    print()
    print(format_summary(report))
    if not report.ok:
        failed = [r for r in report.releases if r["status"] != "SUCCEEDED"]
        print(f"mlstack local approve: the release failed: {failed[0]['error']}", file=sys.stderr)
        return 1
    return 0

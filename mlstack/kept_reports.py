"""cdk-nag's packs in synth, each stack's report kept between synths while nothing it reads changed.

A cdk-nag pack (``AwsSolutionsChecks`` and the compliance packs) walks the construct tree on every
synth and runs each of its rules on every CloudFormation resource, then leaves out the findings
acknowledged on the resource or a construct above it. :class:`KeptNagPack` runs the same pack one
stack at a time (the pack's own ``validate_scope``) and keeps each stack's report under a key made
of everything that report is computed from:

- the pack: its name, cdk-nag's package (the archive's SHA-256: its version and its rules) and
  aws-cdk-lib's version (the rules read resources through aws-cdk-lib's classes);
- the stack's template, byte for byte: every resource's type, properties and options as the rules
  resolve them, and the other resources of the stack that some rules look up;
- the stack's construct metadata from the cloud assembly (its ``*.metadata.json``): each
  resource's construct path (which the report names) and every acknowledgement on a construct of
  the stack, with its reason; stack traces are left out, they name source lines, not rules;
- the acknowledgements on the constructs above the stack (its stage, the app).

Any change to one of them runs the pack on that stack again; a stack whose key is kept is not
walked. The report is the pack's own, findings included, so a kept finding still fails synth.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cdk_nag
import jsii
from aws_cdk import (
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
    Validations,
)
from cdk_nag import NagPack
from constructs import IConstruct

# Bump when what is kept changes shape: older kept reports are then never read.
_FORMAT = "1"
# Construct metadata that says where code ran, not what the rules read.
_TRACE_TYPES = frozenset({"aws:cdk:creationStack"})


@functools.cache
def _cdk_nag_digest() -> str:
    """SHA-256 of cdk-nag's package (its version and its rules), as jsii loads it."""
    (package,) = (Path(cdk_nag.__file__).parent / "_jsii").glob("*.jsii.tgz")
    return hashlib.sha256(package.read_bytes()).hexdigest()


def _metadata_entries(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in entry.items() if k != "trace"}
        for entry in entries
        if entry.get("type") not in _TRACE_TYPES
    ]


@functools.cache
def _artifacts(manifest_path: Path, mtime_ns: int) -> dict[str, dict[str, Any]]:
    """The cloud assembly's stack artifacts by template file name."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return {
        artifact["properties"]["templateFile"]: artifact
        for artifact in manifest.get("artifacts", {}).values()
        if artifact.get("type") == "aws:cloudformation:stack"
    }


def stack_metadata(template_path: Path) -> dict[str, list[dict[str, Any]]]:
    """The construct metadata the cloud assembly keeps for the stack of ``template_path`` (each
    construct path with its logical ID, acknowledgements, ...), stack traces left out."""
    manifest = template_path.parent / "manifest.json"
    artifact = _artifacts(manifest, manifest.stat().st_mtime_ns).get(template_path.name)
    if artifact is None:
        raise RuntimeError(
            f"no stack artifact with template {template_path.name} in {manifest}: the cloud "
            "assembly is not the one the CDK is validating"
        )
    metadata = artifact.get("metadata")
    if metadata is None and "additionalMetadataFile" in artifact:
        extra = template_path.parent / artifact["additionalMetadataFile"]
        metadata = json.loads(extra.read_text(encoding="utf-8"))
    return {path: _metadata_entries(entries) for path, entries in (metadata or {}).items()}


def _find_stack(app: IConstruct, stack_path: str) -> IConstruct:
    node = app
    for part in stack_path.split("/"):
        node = node.node.find_child(part)
    return node


def _acknowledgements_above(app: IConstruct, stack_path: str) -> list[Any]:
    """Acknowledgements on the constructs above the stack at ``stack_path`` (its stages, the
    app): cdk-nag honours them for its findings; the stack's own are in its assembly metadata."""
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    scopes, node = [app], app
    for part in stack_path.split("/")[:-1]:
        node = node.node.find_child(part)
        scopes.append(node)
    return [
        [scope.node.path, entry.data]
        for scope in scopes
        for entry in scope.node.metadata
        if entry.type == key
    ]


# Each stack's digest, computed once a synth for the three packs: by the app's jsii reference
# (unique per app object), the stack and its template file as written (path, time, size).
_DIGESTS: dict[tuple[str, str, str, int, int], str] = {}


def stack_digest(app: IConstruct, stack_path: str, template_path: Path) -> str:
    """SHA-256 of what any pack's report about a stack is computed from, besides the pack: the
    stack's path, its template's bytes, its construct metadata and the acknowledgements above it.
    """
    stat = template_path.stat()
    memo = (app.__jsii_ref__.ref, stack_path, str(template_path), stat.st_mtime_ns, stat.st_size)  # type: ignore[attr-defined]
    if memo not in _DIGESTS:
        digest = hashlib.sha256(f"{stack_path}\n".encode())
        for part in (
            template_path.read_bytes(),
            json.dumps(stack_metadata(template_path), sort_keys=True).encode(),
            json.dumps(_acknowledgements_above(app, stack_path), sort_keys=True).encode(),
        ):
            digest.update(f"\n{len(part)}\n".encode())
            digest.update(part)
        if len(_DIGESTS) > 256:
            _DIGESTS.clear()
        _DIGESTS[memo] = digest.hexdigest()
    return _DIGESTS[memo]


def report_to_json(report: PolicyValidationPluginReport, template_path: str) -> dict[str, Any]:
    """A report about one template, its template path recorded as ``true`` (this template)."""
    return {
        "success": report.success,
        "metadata": dict(report.metadata or {}),
        "violations": [
            {
                "rule_name": v.rule_name,
                "description": v.description,
                "fix": v.fix,
                "severity": v.severity,
                "rule_metadata": dict(v.rule_metadata or {}),
                "violating_resources": [
                    {
                        "construct_path": r.construct_path,
                        "resource_logical_id": r.resource_logical_id,
                        "template_path": r.template_path == template_path
                        if r.template_path is not None
                        else None,
                        "locations": list(r.locations),
                    }
                    for r in v.violating_resources
                ],
            }
            for v in report.violations
        ],
    }


def violation_from_json(
    data: dict[str, Any], resources: list[PolicyViolatingResource]
) -> PolicyViolation:
    """A violation :func:`report_to_json` kept, with ``resources`` as its resources."""
    return PolicyViolation(
        rule_name=data["rule_name"],
        description=data["description"],
        fix=data["fix"],
        severity=data["severity"],
        rule_metadata=data["rule_metadata"] or None,
        violating_resources=resources,
    )


def resource_from_json(data: dict[str, Any], template_path: str) -> PolicyViolatingResource:
    """A resource :func:`report_to_json` kept, in the template now at ``template_path``."""
    kept_path = data["template_path"]
    if kept_path is False:
        raise RuntimeError("a kept report names a template other than its own")
    return PolicyViolatingResource(
        construct_path=data["construct_path"],
        resource_logical_id=data["resource_logical_id"],
        template_path=template_path if kept_path else None,
        locations=data["locations"],
    )


def merge_reports(reports: Iterable[tuple[dict[str, Any], str]]) -> PolicyValidationPluginReport:
    """One report from the stacks' reports (each with its template path), in their order, each
    rule's findings under one violation as cdk-nag groups them when it walks the whole app."""
    grouped: dict[str, tuple[dict[str, Any], list[PolicyViolatingResource]]] = {}
    success, metadata = True, {}
    for data, template_path in reports:
        success = success and data["success"]
        metadata.update(data["metadata"])
        for v in data["violations"]:
            _, resources = grouped.setdefault(v["rule_name"], (v, []))
            resources.extend(resource_from_json(r, template_path) for r in v["violating_resources"])
    return PolicyValidationPluginReport(
        success=success,
        violations=[violation_from_json(v, resources) for v, resources in grouped.values()],
        metadata=metadata or None,
    )


class ReportStore:
    """Kept reports: one JSON file per key under ``directory`` (cdk-nag's here, Guard's in
    :mod:`mlstack.guard`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.directory / f"{key}.json"
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def put(self, key: str, data: dict[str, Any]) -> None:
        path = self.directory / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")  # another synth may write it too
        partial.write_text(json.dumps(data), encoding="utf-8")
        partial.replace(path)


@jsii.implements(IPolicyValidationPlugin)
class KeptNagPack:
    """A cdk-nag pack whose report is kept per stack between synths.

    Args:
        pack: the pack (``AwsSolutionsChecks(app)``, ...); its name, version and rule IDs are
            this plugin's, so the report and the templates' metadata are the pack's own.
        cache_dir: where to keep the reports (keyed as the module says); ``None`` runs the pack
            on the whole app every time, as if it were registered itself.
    """

    def __init__(self, pack: NagPack, *, cache_dir: Path | None) -> None:
        self._pack = pack
        self._store = ReportStore(cache_dir) if cache_dir is not None else None
        self._read: tuple[str, str | None, list[str] | None] | None = None

    # Read once (jsii sees plain properties only): the CDK asks for them at every stack's
    # synthesis (its analytics metadata).
    @property
    def name(self) -> str:
        return self._about()[0]

    @property
    def version(self) -> str | None:
        return self._about()[1]

    @property
    def rule_ids(self) -> list[str] | None:
        return self._about()[2]

    def _about(self) -> tuple[str, str | None, list[str] | None]:
        if self._read is None:
            self._read = (self._pack.name, self._pack.version, self._pack.rule_ids)
        return self._read

    def key(self, app: IConstruct, stack_path: str, template_path: Path) -> str:
        """What the pack's report about a stack depends on (the module's list)."""
        about = (_FORMAT, self.name, _cdk_nag_digest(), importlib.metadata.version("aws-cdk-lib"))
        pack = "\n".join(about)
        stack = stack_digest(app, stack_path, template_path)
        return hashlib.sha256(f"{pack}\n{stack}".encode()).hexdigest()

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        if self._store is None:
            return self._pack.validate(context)
        return merge_reports(self._stack_reports(context))

    def _stack_reports(self, context: IPolicyValidationContext) -> Iterator[tuple[dict, str]]:
        assert self._store is not None
        app = context.app_construct
        for stack in context.stack_templates:
            key = self.key(app, stack.stack_construct_path, Path(stack.template_path))
            kept = self._store.get(key)
            if kept is None:
                scope = _find_stack(app, stack.stack_construct_path)
                kept = report_to_json(self._pack.validate_scope(scope), stack.template_path)
                self._store.put(key, kept)
            yield kept, stack.template_path

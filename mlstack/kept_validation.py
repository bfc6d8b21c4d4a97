"""aws-cdk-lib's built-in CloudFormation validation, each template's report kept between synths.

aws-cdk-lib (2.275) validates every synthesized template with its "CloudFormation Validate"
plugin (``CloudFormationValidatePlugin``: cfn-lint's rules and aws-cdk-lib's Rego rules in a
WASM engine). Building the engine takes seconds of CPU, on every synth, even when no template
changed. ``mlstack.app.new_app`` turns that built-in plugin off (the App's
``builtin_cloud_formation_validation``) and registers :class:`KeptCloudFormationValidation` in
its place, under the same name (the CDK downgrades this plugin's errors to warnings by its
name). Each template's report is kept under a key of everything it is computed from:

- aws-cdk-lib's version: the plugin's code, the engine it bundles (``@aws/cloudformation-validate``)
  and its rules, the rules it ignores, the options it validates with;
- the plugin's version (the engine's), kept with its rule IDs under aws-cdk-lib's version;
- the template's bytes, its file name and its stack's construct path (the report names the
  stack for findings that are not about a resource);
- the stack's account and region, which the plugin passes to the engine as pseudo parameters.

Only the templates with no kept report are validated, by aws-cdk-lib's own plugin, built once a
process and only then. The user's off switches are aws-cdk-lib's: ``CDK_VALIDATION=false`` (which
``cdk synth --no-validation`` sets for the app) or ``builtin_cloud_formation_validation=False``
register nothing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    CloudFormationValidatePlugin,
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyValidationStack,
    PolicyViolatingResource,
)
from constructs import IConstruct

from mlstack.kept_reports import (
    ReportStore,
    report_to_json,
    resource_from_json,
    violation_from_json,
)

# aws-cdk-lib's CloudFormationValidatePlugin.PLUGIN_NAME: the CDK turns this plugin's errors into
# warnings by this name (unless the "validate against default rules" feature flag is set).
PLUGIN_NAME = "CloudFormation Validate"
# Bump when what is kept changes shape: older kept reports are then never read.
_FORMAT = "2"
_FAILING = frozenset({"error", "fatal"})


def _aws_cdk_lib_version() -> str:
    return importlib.metadata.version("aws-cdk-lib")


@functools.cache
def _engine() -> CloudFormationValidatePlugin:
    """aws-cdk-lib's plugin with its defaults, as the built-in one: its constructor builds the
    WASM engine (seconds of CPU), so once a process and only when a report is not kept."""
    return CloudFormationValidatePlugin()


def validation_enabled() -> bool:
    """aws-cdk-lib's own test for its built-in validation (``defaultValidationEnabled``):
    off only when ``CDK_VALIDATION`` is the string ``false``."""
    return os.environ.get("CDK_VALIDATION") != "false"


@jsii.implements(IPolicyValidationContext)
class _Templates:
    """The validation context of some of the synth's templates (the ones not kept)."""

    def __init__(self, app: IConstruct, stacks: list[PolicyValidationStack]) -> None:
        self._app, self._stacks = app, stacks

    @property
    def app_construct(self) -> IConstruct:
        return self._app

    @property
    def stack_templates(self) -> list[PolicyValidationStack]:
        return self._stacks

    @property
    def template_paths(self) -> list[str]:
        return [stack.template_path for stack in self._stacks]

    @property
    def account_id(self) -> str | None:
        return _same(stack.account_id for stack in self._stacks)

    @property
    def region(self) -> str | None:
        return _same(stack.region for stack in self._stacks)


def _same(values: Iterable[str | None]) -> str | None:
    """The value when all are the same (as the CDK fills the context's deprecated fields)."""
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def merge_reports(reports: Iterable[tuple[dict[str, Any], str]]) -> PolicyValidationPluginReport:
    """One report from the templates' kept reports (:func:`kept_reports.report_to_json`), in
    their order, grouped as the plugin groups its findings over several templates: one violation
    per rule, severity and description."""
    grouped: dict[tuple[str, str, str], tuple[dict[str, Any], list[PolicyViolatingResource]]] = {}
    for data, template_path in reports:
        for v in data["violations"]:
            _, resources = grouped.setdefault(
                (v["rule_name"], v["severity"], v["description"]), (v, [])
            )
            resources.extend(resource_from_json(r, template_path) for r in v["violating_resources"])
    violations = [violation_from_json(v, resources) for v, resources in grouped.values()]
    return PolicyValidationPluginReport(
        success=all(v.severity not in _FAILING for v in violations), violations=violations
    )


@jsii.implements(IPolicyValidationPlugin)
class KeptCloudFormationValidation:
    """aws-cdk-lib's built-in CloudFormation validation with each template's report kept.

    Register it on the App in place of the built-in plugin (``mlstack.app.new_app``).

    Args:
        cache_dir: where to keep the reports (keyed as the module says); ``None`` validates
            every template every time with aws-cdk-lib's plugin, as the built-in one does.
    """

    def __init__(self, *, cache_dir: Path | None) -> None:
        self._store = ReportStore(cache_dir) if cache_dir is not None else None
        self._about: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return PLUGIN_NAME

    # The CDK asks for these at every stack's synthesis (its analytics metadata): kept too, so
    # that a synth whose reports are all kept never builds the engine.
    @property
    def version(self) -> str | None:
        version: str | None = self._read_about()["version"]
        return version

    @property
    def rule_ids(self) -> list[str] | None:
        rule_ids: list[str] | None = self._read_about()["rule_ids"]
        return rule_ids

    def _read_about(self) -> dict[str, Any]:
        if self._about is None:
            key = hashlib.sha256(f"{_FORMAT}\nabout\n{_aws_cdk_lib_version()}".encode()).hexdigest()
            about = self._store.get(key) if self._store is not None else None
            if about is None:
                engine = _engine()
                rule_ids = engine.rule_ids
                about = {
                    "version": engine.version,
                    "rule_ids": list(rule_ids) if rule_ids is not None else None,
                }
                if self._store is not None:
                    self._store.put(key, about)
            self._about = about
        return self._about

    def key(self, stack: PolicyValidationStack) -> str:
        """What the plugin's report about one stack's template depends on (the module's list)."""
        template = Path(stack.template_path)
        about = [_FORMAT, _aws_cdk_lib_version(), str(self.version), stack.stack_construct_path]
        about += [template.name, str(stack.account_id), str(stack.region)]
        digest = hashlib.sha256("\n".join(about).encode())
        digest.update(b"\n")
        digest.update(template.read_bytes())
        return digest.hexdigest()

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        if self._store is None:
            return _engine().validate(context)
        return merge_reports(self._template_reports(context))

    def _template_reports(self, context: IPolicyValidationContext) -> Iterator[tuple[dict, str]]:
        assert self._store is not None
        for stack in context.stack_templates:
            key = self.key(stack)
            kept = self._store.get(key)
            if kept is None:
                one = _Templates(context.app_construct, [_copy(stack)])
                kept = report_to_json(_engine().validate(one), stack.template_path)
                self._store.put(key, kept)
            yield kept, stack.template_path


def _copy(stack: PolicyValidationStack) -> PolicyValidationStack:
    return PolicyValidationStack(
        stack_construct_path=stack.stack_construct_path,
        template_path=stack.template_path,
        account_id=stack.account_id,
        region=stack.region,
    )

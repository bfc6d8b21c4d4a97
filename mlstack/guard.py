"""AWS Control Tower's proactive controls in synth, each Guard rule run only where it can apply.

``CfnGuardValidator`` (cdklabs-cdk-validator-cfnguard) runs ``cfn-guard`` once over every
template with all of Control Tower's rules (237 files). Each of those rules selects the resources
it checks by type (``Resources.*[ Type == 'AWS::S3::Bucket' ]``) and is skipped when a template
has none of them, so evaluating it against templates without those types finds nothing; yet
Guard still evaluates every rule against every template, which was most of a synth's time
(bench/README.md, "Synth"). :class:`ControlTowerGuardValidator` runs the same plugin, the same
binary and the same rule files, with the rules that name none of the templates' resource types
left out for that run. A rule that names no type, or one that the templates' types match, runs
as before; the plugin's name, version and rule IDs are the plugin's own, so acknowledgements and
the validation report are unchanged.

With a ``cache_dir``, Guard runs on each template alone, with the rules that name one of that
template's resource types, and its report on the template is kept under a key made of the
plugin's package (its version, ``cfn-guard`` binary and rule files: the archive's SHA-256), the
rules left out and the template's bytes; any change to one of them runs Guard again on that
template, and a synth that changed one stack runs Guard on that stack's template only.
Acknowledgements are not part of Guard's report: the CDK applies them to the report on every
synth, so a changed acknowledgement takes effect with or without the cache (cdk-nag's and
checkov's template metadata is part of the template's bytes).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    IPolicyValidationContextBeta1,
    IPolicyValidationPluginBeta1,
    PolicyValidationPluginReportBeta1,
    PolicyViolatingResourceBeta1,
    PolicyViolationBeta1,
)
from cdklabs import cdk_validator_cfnguard
from cdklabs.cdk_validator_cfnguard import CfnGuardValidator
from constructs import IConstruct

from mlstack.kept_reports import ReportStore

# Where the plugin's package keeps Control Tower's rules (its default rules path).
_RULES_PREFIX = "package/rules/control-tower/cfn-guard/"
_RESOURCE_TYPE = re.compile(r"AWS::[A-Za-z0-9]+::[A-Za-z0-9]+")


def rule_types(text: str) -> frozenset[str]:
    """The resource types a Guard rule file names outside its comments."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return frozenset(_RESOURCE_TYPE.findall(code))


def _plugin_package() -> Path:
    (package,) = (Path(cdk_validator_cfnguard.__file__).parent / "_jsii").glob("*.jsii.tgz")
    return package


@functools.cache
def plugin_package_digest() -> str:
    """SHA-256 of the plugin's package: its version, ``cfn-guard`` binary and rule files."""
    return hashlib.sha256(_plugin_package().read_bytes()).hexdigest()


@functools.cache
def control_tower_rules() -> Mapping[str, frozenset[str]]:
    """Each Control Tower rule the installed plugin ships (its file's stem, which the plugin's
    ``disabled_rules`` takes), with the resource types it names.

    Read from the plugin's own package, the one jsii loads, so a new rule pack is read as it is.
    """
    package = _plugin_package()
    rules: dict[str, frozenset[str]] = {}
    with tarfile.open(package, "r:gz") as archive:
        for member in archive:
            name = member.name
            if member.isfile() and name.startswith(_RULES_PREFIX) and name.endswith(".guard"):
                source = archive.extractfile(member)
                assert source is not None
                rules[Path(name).stem] = rule_types(source.read().decode("utf-8"))
    if not rules:
        raise RuntimeError(
            f"no Control Tower Guard rules under {_RULES_PREFIX} in {package}: reinstall the "
            "cdklabs-cdk-validator-cfnguard version pyproject.toml pins (make setup)"
        )
    return rules


def template_types(template_paths: Iterable[str]) -> frozenset[str]:
    """The resource types the templates declare."""
    types: set[str] = set()
    for path in template_paths:
        template = json.loads(Path(path).read_text(encoding="utf-8"))
        types.update(str(r.get("Type")) for r in template.get("Resources", {}).values())
    return frozenset(types)


def rules_that_cannot_apply(
    rules: Mapping[str, frozenset[str]], types: frozenset[str]
) -> list[str]:
    """The rules that name resource types, none of which is among ``types``."""
    return sorted(name for name, named in rules.items() if named and not named & types)


def cache_key(template_paths: Iterable[str], left_out: Iterable[str]) -> str:
    """What Guard's report depends on: the plugin's package, the rules left out, the templates."""
    digest = hashlib.sha256(plugin_package_digest().encode())
    digest.update(json.dumps(sorted(left_out)).encode())
    for path in template_paths:
        content = Path(path).read_bytes()
        digest.update(f"\n{len(content)}\n".encode())
        digest.update(content)
    return digest.hexdigest()


def report_to_json(
    report: PolicyValidationPluginReportBeta1, template_paths: list[str]
) -> dict[str, Any]:
    """The report with each template named by its place among ``template_paths``."""
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
                        "resource_logical_id": r.resource_logical_id,
                        "template": template_paths.index(r.template_path),
                        "locations": list(r.locations),
                    }
                    for r in v.violating_resources
                ],
            }
            for v in report.violations
        ],
    }


def report_from_json(
    data: dict[str, Any], template_paths: list[str]
) -> PolicyValidationPluginReportBeta1:
    """The report :func:`report_to_json` kept, for this synth's template paths."""
    violations = [
        PolicyViolationBeta1(
            rule_name=v["rule_name"],
            description=v["description"],
            fix=v["fix"],
            severity=v["severity"],
            rule_metadata=v["rule_metadata"] or None,
            violating_resources=[
                PolicyViolatingResourceBeta1(
                    resource_logical_id=r["resource_logical_id"],
                    template_path=template_paths[r["template"]],
                    locations=r["locations"],
                )
                for r in v["violating_resources"]
            ],
        )
        for v in data["violations"]
    ]
    return PolicyValidationPluginReportBeta1(
        success=data["success"], violations=violations, metadata=data["metadata"] or None
    )


# The plugin's own interface (its report's struct type is the Beta1 one).
@jsii.implements(IPolicyValidationPluginBeta1)
class ControlTowerGuardValidator:
    """``CfnGuardValidator`` with Control Tower's rules, the rules that cannot apply left out.

    Args:
        cache_dir: where to keep reports between synths (keyed as the module says); ``None``
            runs Guard every time.
    """

    def __init__(self, *, cache_dir: Path | None = None) -> None:
        self._plugin = CfnGuardValidator(control_tower_rules_enabled=True)
        self._rules = control_tower_rules()
        self._cache_dir = cache_dir

    @property
    def name(self) -> str:
        return self._plugin.name

    @property
    def version(self) -> str | None:
        return self._plugin.version

    @property
    def rule_ids(self) -> list[str] | None:
        return self._plugin.rule_ids

    def validate(self, context: IPolicyValidationContextBeta1) -> PolicyValidationPluginReportBeta1:
        paths = list(context.template_paths)
        if self._cache_dir is None:
            left_out = rules_that_cannot_apply(self._rules, template_types(paths))
            plugin = CfnGuardValidator(control_tower_rules_enabled=True, disabled_rules=left_out)
            return plugin.validate(context)
        reports = [self._template_report(context, path, self._cache_dir) for path in paths]
        return PolicyValidationPluginReportBeta1(
            success=all(r.success for r in reports),
            violations=[v for r in reports for v in r.violations],
            metadata={k: v for r in reports for k, v in (r.metadata or {}).items()} or None,
        )

    def _template_report(
        self, context: IPolicyValidationContextBeta1, path: str, cache_dir: Path
    ) -> PolicyValidationPluginReportBeta1:
        """Guard's report on one template, with the rules that name its resource types: kept,
        or Guard run on that template alone and its report kept."""
        left_out = rules_that_cannot_apply(self._rules, template_types([path]))
        store, key = ReportStore(cache_dir), cache_key([path], left_out)
        kept = store.get(key)
        if kept is not None:
            return report_from_json(kept, [path])
        plugin = CfnGuardValidator(control_tower_rules_enabled=True, disabled_rules=left_out)
        report = plugin.validate(_Templates(context, [path]))
        store.put(key, report_to_json(report, [path]))
        return report


@jsii.implements(IPolicyValidationContextBeta1)
class _Templates:
    """The validation context of one synth narrowed to some of its templates."""

    def __init__(self, context: IPolicyValidationContextBeta1, paths: list[str]) -> None:
        self._context = context
        self._paths = paths

    @property
    def app_construct(self) -> IConstruct:
        return self._context.app_construct

    @property
    def template_paths(self) -> list[str]:
        return self._paths

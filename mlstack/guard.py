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
"""

from __future__ import annotations

import functools
import json
import re
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import jsii
from aws_cdk import (
    IPolicyValidationContextBeta1,
    IPolicyValidationPluginBeta1,
    PolicyValidationPluginReportBeta1,
)
from cdklabs import cdk_validator_cfnguard
from cdklabs.cdk_validator_cfnguard import CfnGuardValidator

# Where the plugin's package keeps Control Tower's rules (its default rules path).
_RULES_PREFIX = "package/rules/control-tower/cfn-guard/"
_RESOURCE_TYPE = re.compile(r"AWS::[A-Za-z0-9]+::[A-Za-z0-9]+")


def rule_types(text: str) -> frozenset[str]:
    """The resource types a Guard rule file names outside its comments."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return frozenset(_RESOURCE_TYPE.findall(code))


@functools.cache
def control_tower_rules() -> Mapping[str, frozenset[str]]:
    """Each Control Tower rule the installed plugin ships (its file's stem, which the plugin's
    ``disabled_rules`` takes), with the resource types it names.

    Read from the plugin's own package, the one jsii loads, so a new rule pack is read as it is.
    """
    (package,) = (Path(cdk_validator_cfnguard.__file__).parent / "_jsii").glob("*.jsii.tgz")
    rules: dict[str, frozenset[str]] = {}
    with tarfile.open(package, "r:gz") as archive:
        for member in archive:
            name = member.name
            if member.isfile() and name.startswith(_RULES_PREFIX) and name.endswith(".guard"):
                source = archive.extractfile(member)
                assert source is not None
                rules[Path(name).stem] = rule_types(source.read().decode("utf-8"))
    if not rules:
        raise RuntimeError(f"no Control Tower Guard rules under {_RULES_PREFIX} in {package}")
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


# The plugin's own interface (its report's struct type is the Beta1 one).
@jsii.implements(IPolicyValidationPluginBeta1)
class ControlTowerGuardValidator:
    """``CfnGuardValidator`` with Control Tower's rules, the rules that cannot apply left out."""

    def __init__(self) -> None:
        self._plugin = CfnGuardValidator(control_tower_rules_enabled=True)
        self._rules = control_tower_rules()

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
        left_out = rules_that_cannot_apply(self._rules, template_types(context.template_paths))
        plugin = CfnGuardValidator(control_tower_rules_enabled=True, disabled_rules=left_out)
        return plugin.validate(context)

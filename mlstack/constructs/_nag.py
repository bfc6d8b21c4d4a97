"""Acknowledging cdk-nag findings precisely, on the narrowest construct.

cdk-nag names each wildcard finding after the flattened resource
(``AwsSolutions-IAM5[Resource::<Bucket.Arn>/datasets/*]``). Those strings contain logical IDs and,
across stacks, export names that only exist once the app is prepared, so
:func:`acknowledge_scoped_wildcards` computes them at validation time from the policy as it will
be written, and acknowledges only the resources whose wildcard is the expected key or name prefix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import jsii
from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct, IValidation


def default_policy(role: iam.Role) -> Construct:
    """The ``DefaultPolicy`` construct that ``role.add_to_policy`` creates."""
    policy = role.node.find_child("DefaultPolicy")
    assert isinstance(policy, Construct)
    return policy


def acknowledge(construct: Construct, rule_id: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def _flatten(node: Any) -> str:
    # Mirrors cdk-nag's flattenCfnReference.
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(_flatten(i) for i in items)
        if "Fn::Sub" in node:
            return _flatten(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if "Fn::ImportValue" in node:
            return _flatten(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{_flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


@jsii.implements(IValidation)
class _ScopedWildcards:
    def __init__(self, policy: Construct, suffixes: Sequence[tuple[str, str]]) -> None:
        self._policy = policy
        self._suffixes = suffixes

    def validate(self) -> list[str]:
        cfn = self._policy.node.default_child
        assert isinstance(cfn, iam.CfnPolicy)
        document = Stack.of(cfn).resolve(cfn.policy_document)
        for statement in document.get("Statement", []):
            resources = statement.get("Resource", [])
            for resource in resources if isinstance(resources, list) else [resources]:
                flat = _flatten(resource)
                for suffix, reason in self._suffixes:
                    if flat.endswith(suffix) and flat.count("*") == suffix.count("*"):
                        acknowledge(self._policy, f"AwsSolutions-IAM5[Resource::{flat}]", reason)
                        break
        return []


def acknowledge_scoped_wildcards(policy: Construct, suffixes: Iterable[tuple[str, str]]) -> None:
    """At validation time, acknowledge IAM5 findings of ``policy`` whose resource ends in one of
    the literal ``suffixes`` (for example ``/datasets/*``), each with its own reason."""
    policy.node.add_validation(_ScopedWildcards(policy, list(suffixes)))


# The compliance packs that run beside AwsSolutions (mlstack.app) and their rule-ID prefixes.
COMPLIANCE_PACKS = ("NIST.800.53.R5", "HIPAA.Security")
GUARD_PLUGIN = "cdk-validator-cfnguard"


def acknowledge_compliance(construct: Construct, rule: str, reason: str) -> None:
    """Acknowledge ``rule`` (such as ``LambdaDLQ``) of both compliance packs on ``construct``."""
    for pack in COMPLIANCE_PACKS:
        acknowledge(construct, f"{pack}-{rule}", reason)


def acknowledge_guard(construct: Construct, rule: str, reason: str) -> None:
    """Acknowledge the AWS Guard rule ``rule`` (such as ``lambda_inside_vpc_check``)."""
    acknowledge(construct, f"{GUARD_PLUGIN}::{rule}", reason)


INLINE_POLICY_REASON = (
    "The role's only policy, written for this role's resources alone and created and deleted "
    "with it; a customer managed policy would carry the same statements with a lifecycle of "
    "its own and could be attached to other roles, which is what least privilege avoids."
)


@jsii.implements(IValidation)
class _InlinePolicy:
    def __init__(self, role: iam.IRole) -> None:
        self._role = role

    def validate(self) -> list[str]:
        policy = self._role.node.try_find_child("DefaultPolicy")
        if isinstance(policy, Construct):
            acknowledge_compliance(policy, "IAMNoInlinePolicy", INLINE_POLICY_REASON)
        return []


def acknowledge_inline_policy(role: iam.IRole) -> None:
    """At validation time, acknowledge the compliance packs' IAMNoInlinePolicy finding of the
    ``DefaultPolicy`` of ``role`` (created by its first ``add_to_policy``)."""
    role.node.add_validation(_InlinePolicy(role))


def skip_checkov(construct: Construct, check_id: str, comment: str) -> None:
    """Skip checkov's ``check_id`` for the CloudFormation resource of ``construct`` only, with
    its reason: checkov reads ``Metadata.checkov.skip`` of each resource."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"skip_checkov: {construct.node.path} has no CloudFormation resource")
    checkov = resource.get_metadata("checkov") or {"skip": []}
    skips = [s for s in checkov["skip"] if s["id"] != check_id]
    skips.append({"id": check_id, "comment": comment})
    resource.add_metadata("checkov", {"skip": skips})

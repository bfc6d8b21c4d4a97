"""Acknowledging cdk-nag findings precisely, on the narrowest construct.

cdk-nag names each wildcard finding after the flattened resource
(``AwsSolutions-IAM5[Resource::<Bucket.Arn>/datasets/*]``). Those strings contain logical IDs and,
across stacks, export names that only exist once the app is prepared, so the acknowledgements of
:func:`acknowledge_wildcard_resources` and :func:`acknowledge_star` are computed at validation
time from the policy as it will be written. Each names exactly what it covers: a resource, compared
whole with the statements' resources, or, for ``Resource: "*"`` (one finding per policy, whatever
the statement), the statement by its Sid or by its actions (all among those named). A wildcard
resource nobody named stays a finding and fails synth; an acknowledgement that matches nothing
fails synth too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
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
    acknowledge_all(construct, [(rule_id, reason)])


def acknowledge_all(construct: Construct, rules: Iterable[tuple[str, str]]) -> None:
    """Acknowledge each ``(rule ID, reason)`` on ``construct``, in order, in one jsii call."""
    acknowledgments = [Acknowledgment(id=rule_id, reason=reason) for rule_id, reason in rules]
    if acknowledgments:
        Validations.of(construct).acknowledge(*acknowledgments)


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


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# A statement with ``Resource: "*"``: its Sid, or its actions when CDK wrote it without one.
StatementSelector = str | frozenset[str]


def _selector_text(selector: StatementSelector) -> str:
    return selector if isinstance(selector, str) else ", ".join(sorted(selector))


@jsii.implements(IValidation)
class _Wildcards:
    """The IAM5 acknowledgements of one policy, checked against its statements."""

    def __init__(self, policy: Construct) -> None:
        self._policy = policy
        self.resources: list[tuple[str, str]] = []
        self.stars: list[tuple[StatementSelector, str]] = []

    def validate(self) -> list[str]:
        cfn = self._policy.node.default_child
        assert isinstance(cfn, iam.CfnPolicy)
        stack = Stack.of(cfn)
        statements = stack.resolve(cfn.policy_document).get("Statement", [])
        present = {_flatten(r) for s in statements for r in _as_list(s.get("Resource", []))}
        errors = []
        reasons: dict[str, str] = {}
        for resource, reason in self.resources:
            flat = _flatten(stack.resolve(resource))
            if "*" not in flat or flat == "*":
                errors.append(
                    f"{self._policy.node.path}: the IAM5 acknowledgement of {flat} names no "
                    "wildcard resource (acknowledge Resource '*' by its statement)"
                )
            elif flat not in present:
                errors.append(
                    f"{self._policy.node.path}: the IAM5 acknowledgement of {flat} matches no "
                    "resource of the policy: remove it or name the resource as the statement does"
                )
            elif reasons.setdefault(flat, reason) != reason:
                errors.append(f"{self._policy.node.path}: {flat} is acknowledged with two reasons")
        acknowledge_all(
            self._policy,
            ((f"AwsSolutions-IAM5[Resource::{flat}]", reason) for flat, reason in reasons.items()),
        )
        errors.extend(self._acknowledge_star(statements))
        return errors

    def _acknowledge_star(self, statements: list[dict[str, Any]]) -> list[str]:
        starred = [s for s in statements if "*" in _as_list(s.get("Resource", []))]
        named = dict(self.stars)
        used: set[StatementSelector] = set()
        errors, reasons = [], []
        for statement in starred:
            sid = statement.get("Sid")
            actions = frozenset(_as_list(statement.get("Action", [])))
            # By Sid, or by actions: all of the statement's are among those named (CDK writes
            # the state machine's logging and tracing grants as one statement or two, depending
            # on the app's policy-minimizing feature flag).
            selector = (
                sid
                if sid in named
                else next((n for n in named if isinstance(n, frozenset) and actions <= n), None)
            )
            if selector is None:
                errors.append(
                    f"{self._policy.node.path}: the statement {sid or sorted(actions)} uses "
                    "Resource '*' and no acknowledgement names it"
                )
                continue
            reasons.append(f"{sid or ', '.join(sorted(actions))}: {named[selector]}")
            used.add(selector)
        for selector in set(named) - used:
            errors.append(
                f"{self._policy.node.path}: the Resource '*' acknowledgement of "
                f"{_selector_text(selector)} matches no statement with Resource '*'"
            )
        if reasons and not errors:
            acknowledge(self._policy, "AwsSolutions-IAM5[Resource::*]", " ".join(reasons))
        return errors


# One validation per policy, which every acknowledgement of that policy extends (keyed by the
# construct's jsii reference: unique per object, unlike its path across apps).
_WILDCARDS: dict[str, _Wildcards] = {}


def _wildcards(policy: Construct) -> _Wildcards:
    key = policy.__jsii_ref__.ref  # type: ignore[attr-defined]
    if key not in _WILDCARDS:
        _WILDCARDS[key] = _Wildcards(policy)
        policy.node.add_validation(_WILDCARDS[key])
    return _WILDCARDS[key]


def acknowledge_wildcard_resources(policy: Construct, resources: Iterable[tuple[str, str]]) -> None:
    """At validation time, acknowledge the IAM5 finding of each ``(resource, reason)``: the
    resource exactly as a statement of ``policy`` names it (tokens resolve as in the template).
    Synth fails when one matches no resource of the policy."""
    _wildcards(policy).resources.extend(resources)


def acknowledge_star(policy: Construct, statement: StatementSelector, reason: str) -> None:
    """At validation time, acknowledge ``Resource: "*"`` in the statement of ``policy`` with this
    Sid (or, for statements CDK writes without one, those whose actions are all among these).
    The finding is acknowledged only when every such statement is named; synth fails otherwise,
    and when nothing named has ``Resource: "*"``."""
    _wildcards(policy).stars.append((statement, reason))


# The compliance packs that run beside AwsSolutions (mlstack.app) and their rule-ID prefixes.
COMPLIANCE_PACKS = ("NIST.800.53.R5", "HIPAA.Security")
GUARD_PLUGIN = "cdk-validator-cfnguard"


def acknowledge_compliance(construct: Construct, rule: str, reason: str) -> None:
    """Acknowledge ``rule`` (such as ``LambdaDLQ``) of both compliance packs on ``construct``."""
    acknowledge_all(construct, ((f"{pack}-{rule}", reason) for pack in COMPLIANCE_PACKS))


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

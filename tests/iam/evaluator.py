"""Policy evaluation for the IAM proof: moto's evaluator, extended where AWS documents behaviour
it lacks, and the synthesized policies that decide each call.

moto (``moto.iam.access_control.IAMPolicy``) matches actions and resources and evaluates only
``StringEquals`` conditions, treating a key absent from the request as met and a condition that
does not match as a Deny. The IAM user guide says otherwise, and so does this module:

* "Condition element": a statement applies only when every condition matches; a condition on a
  key the request lacks does not match (unless the operator ends in ``IfExists``, or is
  ``Null``); an unmatched Deny does not deny ("Policy evaluation logic").
* "Condition operators": String*, Arn*, Bool, Numeric* and Null, values OR-ed, keys AND-ed;
  ``*`` and ``?`` wildcards for the ``Like`` operators.
* "IAM JSON policy elements: Action": action names are case-insensitive.
* "Policy evaluation logic" (same account): an explicit Deny in any applicable policy wins;
  otherwise the identity policy or a resource policy naming the principal allows. AWS KMS:
  "Key policies": a key policy must allow the call, itself or by allowing the account
  (``arn:aws:iam::<account>:root``), which delegates to the identity policies.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, PermissionResult

from mlstack.local.assembly import LocalAssembly
from tests.iam.access import Call, StackResolver


def _like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _operator(name: str, expected: str, actual: str) -> bool:
    if name in ("StringEquals", "ArnEquals"):
        return expected == actual
    if name == "StringEqualsIgnoreCase":
        return expected.lower() == actual.lower()
    if name in ("StringLike", "ArnLike"):
        return _like(expected, actual)
    if name == "Bool":
        return str(expected).lower() == actual.lower()
    numeric = {
        "NumericEquals": lambda a, b: a == b,
        "NumericLessThan": lambda a, b: a < b,
        "NumericLessThanEquals": lambda a, b: a <= b,
        "NumericGreaterThan": lambda a, b: a > b,
        "NumericGreaterThanEquals": lambda a, b: a >= b,
    }
    if name in numeric:
        return numeric[name](float(actual), float(expected))
    raise NotImplementedError(f"condition operator {name} is not evaluated here")


def condition_matches(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    values = expected if isinstance(expected, list) else [expected]
    qualifier, _, single = operator.rpartition(":")
    if qualifier in ("ForAllValues", "ForAnyValue"):
        # IAM User Guide, "Condition keys with multiple values": ForAllValues matches when every
        # value of the request's key matches (so also when the request has none), ForAnyValue
        # when at least one does.
        actual = context.get(key, ())
        items = actual if isinstance(actual, tuple) else (actual,)
        each = [condition_matches(single, key, expected, {key: item}) for item in items]
        return all(each) if qualifier == "ForAllValues" else any(each)
    if operator == "Null":
        return all((key not in context) == (str(v).lower() == "true") for v in values)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    negated = {
        "StringNotEquals": "StringEquals",
        "StringNotLike": "StringLike",
        "ArnNotEquals": "ArnEquals",
        "ArnNotLike": "ArnLike",
    }
    if key not in context:
        # A negated operator matches a request without the key (IAM user guide, "Condition
        # element": condition keys that are not present in the request).
        return if_exists or operator in negated
    actual = context[key]
    if isinstance(actual, tuple):
        raise NotImplementedError(f"{operator} on the multivalued key {key}: use ForAllValues")
    if operator in negated:
        return not any(_operator(negated[operator], str(v), actual) for v in values)
    return any(_operator(operator, str(v), actual) for v in values)


class AwsStatement(IAMPolicyStatement):
    """moto's statement with IAM's documented condition semantics and case-insensitive actions."""

    def is_action_permitted(
        self,
        action: str,
        resource: str = "*",
        principal: str | None = None,
        incoming_condition_values: dict[str, str] | None = None,
    ) -> PermissionResult:
        if not self._check_conditions(incoming_condition_values):
            return PermissionResult.NEUTRAL
        return super().is_action_permitted(action, resource, None, incoming_condition_values)

    def _check_conditions(self, incoming_condition_values: dict[str, str] | None) -> bool:
        context = incoming_condition_values or {}
        for operator, keys in self._statement.get("Condition", {}).items():
            for key, expected in keys.items():
                if not condition_matches(operator, key, expected, context):
                    return False
        return True

    def _check_element_matches(self, statement_element: Any, value: str) -> bool:
        patterns = self._statement[statement_element]
        patterns = patterns if isinstance(patterns, list) else [patterns]
        if statement_element in ("Action", "NotAction"):
            return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)
        return any(_like(p, value) for p in patterns)


class AwsPolicy(IAMPolicy):
    """One policy document; ``decide`` says which statements allow or deny a call."""

    def __init__(self, document: Mapping[str, Any], name: str) -> None:
        super().__init__(json.dumps(document))
        self.name = name
        statements = self._policy_json["Statement"]
        self.statements = statements if isinstance(statements, list) else [statements]

    def decide(self, call: Call) -> tuple[list[int], list[int]]:
        """(indexes of the statements that allow ``call``, of those that deny it)."""
        allowing, denying = [], []
        for index, statement in enumerate(self.statements):
            result = AwsStatement(statement).is_action_permitted(
                call.action, call.resource, None, call.context_map
            )
            if result == PermissionResult.PERMITTED:
                allowing.append(index)
            elif result == PermissionResult.DENIED:
                denying.append(index)
        return allowing, denying

    def is_action_permitted(
        self,
        action: str,
        resource: str = "*",
        principal: str | None = None,
        incoming_condition_values: dict[str, str] | None = None,
    ) -> PermissionResult:
        allowing, denying = self.decide(
            Call("", action, resource, tuple((incoming_condition_values or {}).items()))
        )
        if denying:
            return PermissionResult.DENIED
        return PermissionResult.PERMITTED if allowing else PermissionResult.NEUTRAL


@dataclass
class Decision:
    call: Call
    allowed: bool
    missing: str = ""
    # (policy name, statement index) of the identity statements that allowed the call
    used: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class SynthesizedPolicies:
    """The policies of one environment's assembly, tokens resolved as local mode resolves them."""

    assembly: LocalAssembly
    identity: dict[str, list[AwsPolicy]] = field(default_factory=dict)  # role ARN -> policies
    role_names: dict[str, str] = field(default_factory=dict)  # role ARN -> "stack/logical id"
    resource: dict[str, AwsPolicy] = field(default_factory=dict)  # resource ARN -> its policy

    def __post_init__(self) -> None:
        a = self.assembly
        r = StackResolver(a.templates, region=a.region, account=a.account)
        self.account_root = f"arn:aws:iam::{a.account}:root"
        roles: dict[tuple[str, str], str] = {}
        for stack, template in a.templates.items():
            for lid, res in template.get("Resources", {}).items():
                if res["Type"] == "AWS::IAM::Role":
                    arn = r.attribute(stack, lid, "Arn")
                    roles[(stack, lid)] = arn
                    self.role_names[arn] = f"{stack}/{lid}"
                    self.identity[arn] = [
                        AwsPolicy(r.resolve(stack, p["PolicyDocument"]), f"{lid}/{p['PolicyName']}")
                        for p in res.get("Properties", {}).get("Policies", [])
                    ]
        for stack, template in a.templates.items():
            for lid, res in template.get("Resources", {}).items():
                props = res.get("Properties", {})
                kind = res["Type"]
                if kind == "AWS::IAM::Policy":
                    document = AwsPolicy(r.resolve(stack, props["PolicyDocument"]), lid)
                    for role in props.get("Roles", []):
                        role_lid = role["Ref"]
                        self.identity[roles[(stack, role_lid)]].append(document)
                elif kind == "AWS::KMS::Key":
                    arn = r.attribute(stack, lid, "Arn")
                    self.resource[arn] = AwsPolicy(r.resolve(stack, props["KeyPolicy"]), lid)
                elif kind == "AWS::S3::BucketPolicy":
                    bucket = str(r.resolve(stack, props["Bucket"]))
                    self.resource[f"arn:aws:s3:::{bucket}"] = AwsPolicy(
                        r.resolve(stack, props["PolicyDocument"]), lid
                    )
                elif kind == "AWS::SNS::TopicPolicy":
                    for topic in r.resolve(stack, props["Topics"]):
                        self.resource[str(topic)] = AwsPolicy(
                            r.resolve(stack, props["PolicyDocument"]), lid
                        )

    def _resource_policy(self, call: Call) -> AwsPolicy | None:
        if call.resource.startswith("arn:aws:s3:::"):
            bucket = call.resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
            return self.resource.get(f"arn:aws:s3:::{bucket}")
        return self.resource.get(call.resource)

    def _applicable(
        self, policy: AwsPolicy, principal: str
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Statements of a resource policy naming ``principal`` (directly, or the account for a
        role of the account, or everyone), each without its Principal."""
        for index, statement in enumerate(policy.statements):
            named = statement.get("Principal", {})
            if named == "*":
                named = {"AWS": "*"}
            aws = named.get("AWS", [])
            aws = aws if isinstance(aws, list) else [aws]
            services = named.get("Service", [])
            services = services if isinstance(services, list) else [services]
            if principal.endswith(".amazonaws.com"):
                matches = principal in services or "*" in aws
                via_account = False
            else:
                matches = "*" in aws or principal in aws
                via_account = self.account_root in aws
            if matches or via_account:
                stripped = {k: v for k, v in statement.items() if k != "Principal"}
                yield (index if matches else -1 - index), stripped

    def decide(self, call: Call) -> Decision:
        identity_allows: list[tuple[str, int]] = []
        identity_denies = []
        for policy in self.identity.get(call.principal, []):
            allowing, denying = policy.decide(call)
            identity_allows += [(policy.name, i) for i in allowing]
            identity_denies += [(policy.name, i) for i in denying]
        direct_allow = delegated_allow = resource_deny = False
        policy = self._resource_policy(call)
        if policy is not None:
            for index, statement in self._applicable(policy, call.principal):
                single = AwsPolicy({"Statement": [statement]}, policy.name)
                allowing, denying = single.decide(call)
                if denying:
                    resource_deny = True
                if allowing:
                    direct_allow |= index >= 0
                    delegated_allow |= index < 0
        if identity_denies or resource_deny:
            return Decision(call, False, "an explicit Deny applies")
        if call.action.lower().startswith("kms:"):
            if policy is None:
                return Decision(call, False, "no key policy for this key")
            if direct_allow:
                return Decision(call, True, used=identity_allows)
            if delegated_allow and identity_allows:
                return Decision(call, True, used=identity_allows)
            if not delegated_allow:
                return Decision(call, False, "the key policy allows neither it nor the account")
            return Decision(call, False, "no identity-policy statement allows it")
        if identity_allows or direct_allow:
            return Decision(call, True, used=identity_allows)
        return Decision(call, False, "no identity-policy statement allows it")

"""AWS Control Tower's Guard rules in synth (mlstack/guard.py): leaving out the rules that no
template's resource type can match reports exactly what the whole rule pack reports.

The expected findings are the upstream plugin's own: ``CfnGuardValidator`` with every Control
Tower rule, run by the CDK on the same templates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsii
import pytest
from aws_cdk import (
    IPolicyValidationContextBeta1,
    IPolicyValidationPluginBeta1,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from cdklabs.cdk_validator_cfnguard import CfnGuardValidator

from mlstack.app import validation_failures
from mlstack.guard import (
    ControlTowerGuardValidator,
    control_tower_rules,
    rule_types,
    rules_that_cannot_apply,
    template_types,
)
from tests.infra.conftest import new_app


def non_compliant_stack(outdir: Path, plugin: Any, *, extra_queue: bool = False) -> Path:
    """A stack whose resources break Control Tower controls of several services, synthesized
    with ``plugin`` alone; the validation report's path."""
    app = new_app(outdir=str(outdir))
    stack = Stack(app, "NonCompliant")
    if extra_queue:
        sqs.Queue(stack, "Another", encryption=sqs.QueueEncryption.UNENCRYPTED)
    logs.LogGroup(stack, "Plain", retention=logs.RetentionDays.ONE_WEEK)  # no key, a week
    s3.Bucket(stack, "Bucket")  # no versioning, no logging, no KMS
    sqs.Queue(stack, "Queue", encryption=sqs.QueueEncryption.UNENCRYPTED)
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0, restrict_default_security_group=False)
    group = ec2.SecurityGroup(stack, "Open", vpc=vpc)
    group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(22))
    logs.LogGroup(stack, "Kept", retention=logs.RetentionDays.ONE_YEAR).apply_removal_policy(
        RemovalPolicy.RETAIN
    )
    Validations.of(app).add_plugins(plugin)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    return outdir


def guard_findings(outdir: Path) -> list[tuple[str, str]]:
    """(rule, logical ID) of every Guard finding in the assembly's validation report."""
    report = json.loads((outdir / "validation-report.json").read_text())
    (guard,) = [p for p in report["pluginReports"] if p["pluginName"] == "cdk-validator-cfnguard"]
    return sorted(
        (violation["ruleName"], resource.get("cloudFormationResource", {}).get("logicalId", ""))
        for violation in guard["violations"]
        for resource in violation["violatingConstructs"]
    )


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    whole = non_compliant_stack(
        tmp_path_factory.mktemp("whole"), CfnGuardValidator(control_tower_rules_enabled=True)
    )
    filtered = non_compliant_stack(
        tmp_path_factory.mktemp("filtered"), ControlTowerGuardValidator()
    )
    return whole, filtered


def test_the_filtered_rules_report_exactly_what_the_whole_pack_reports(
    both: tuple[Path, Path],
) -> None:
    whole, filtered = both
    expected = guard_findings(whole)
    rules = {rule for rule, _ in expected}
    # The whole pack does find something in each service the stack breaks.
    assert {
        "cloudwatch_log_group_encrypted_check",
        "cloudwatch_log_group_retention_period_check",
        "sqs_queue_encrypted_check",
    } <= rules, rules
    assert any(rule.startswith("s3_") for rule in rules), rules
    assert guard_findings(filtered) == expected
    assert validation_failures(filtered) == validation_failures(whole)


def test_rules_for_types_the_templates_lack_are_left_out_and_the_others_kept(
    both: tuple[Path, Path],
) -> None:
    whole, _ = both
    types = template_types(str(p) for p in whole.glob("*.template.json"))
    assert {"AWS::Logs::LogGroup", "AWS::S3::Bucket", "AWS::SQS::Queue"} <= types
    rules = control_tower_rules()
    left_out = set(rules_that_cannot_apply(rules, types))
    # Control Tower's rule files are named ct-<service>-pr-<n> (CT.RDS.PR.1, ...).
    assert "ct-rds-pr-1" in left_out and "ct-sqs-pr-2" not in left_out
    assert "ct-cloudwatch-pr-3" not in left_out  # log groups encrypted (names AWS::KMS::Key too)
    assert len(left_out) > len(rules) / 2  # most of the pack names types this stack lacks
    for name in left_out:
        assert rules[name] and not rules[name] & types


def test_every_control_tower_rule_names_the_resource_types_it_checks() -> None:
    rules = control_tower_rules()
    assert len(rules) > 200  # the pack ships 237 rule files (cdk-validator-cfnguard 0.0.62)
    assert all(types for types in rules.values()), [n for n, t in rules.items() if not t]


def test_rule_types_ignores_types_named_only_in_comments() -> None:
    # From the plugin's ct-s3-pr-1.guard: the header names the type, the body selects it.
    text = (
        "# Reports on:\n#   AWS::RDS::DBInstance\n"
        'let S3_BUCKET_TYPE = "AWS::S3::Bucket"\n'
        "let s3_buckets = Resources.*[ Type == %S3_BUCKET_TYPE ]\n"
    )
    assert rule_types(text) == {"AWS::S3::Bucket"}


@jsii.implements(IPolicyValidationPluginBeta1)
class BrokenPlugin:
    @property
    def name(self) -> str:
        return "broken"

    def validate(self, context: IPolicyValidationContextBeta1) -> Any:
        raise OSError("cfn-guard: No such file or directory")


def test_a_plugin_that_fails_to_run_fails_synth(tmp_path: Path) -> None:
    """A plugin that raises (a missing binary, a report of the wrong type) reports no violation,
    only its error: before, ``validation_failures`` returned nothing and ``cdk synth`` passed."""
    app = new_app(outdir=str(tmp_path))
    logs.LogGroup(Stack(app, "Logs"), "Group")
    Validations.of(app).add_plugins(BrokenPlugin())
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    (failure,) = validation_failures(tmp_path)
    assert failure.startswith("broken: the plugin failed:")
    assert "No such file or directory" in failure


def test_a_kept_report_is_used_until_a_template_changes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = non_compliant_stack(tmp_path / "1", ControlTowerGuardValidator(cache_dir=cache))
    expected = guard_findings(first)
    (kept,) = cache.glob("*.json")
    # Mark the kept report: a synth that reads it says so in its findings' descriptions.
    report = json.loads(kept.read_text())
    for violation in report["violations"]:
        violation["description"] = "from the cache"
    kept.write_text(json.dumps(report))

    # Same templates, another output directory: the kept report, and the findings still fail.
    second = non_compliant_stack(tmp_path / "2", ControlTowerGuardValidator(cache_dir=cache))
    assert guard_findings(second) == expected
    assert "from the cache" in (second / "validation-report.json").read_text()
    assert validation_failures(second) == validation_failures(first) != []

    # One more resource in the template: Guard runs again and reports it.
    third = non_compliant_stack(
        tmp_path / "3", ControlTowerGuardValidator(cache_dir=cache), extra_queue=True
    )
    assert "from the cache" not in (third / "validation-report.json").read_text()
    assert any(
        rule == "sqs_queue_encrypted_check" and logical_id.startswith("Another")
        for rule, logical_id in guard_findings(third)
    )
    assert len(list(cache.glob("*.json"))) == 2


def two_stacks(outdir: Path, plugin: Any, *, second_queue: bool = False) -> Path:
    """A log group's stack and a queue's stack, both breaking Control Tower controls."""
    app = new_app(outdir=str(outdir))
    logs.LogGroup(Stack(app, "Logs"), "Plain", retention=logs.RetentionDays.ONE_WEEK)
    queues = Stack(app, "Queues")
    sqs.Queue(queues, "Queue", encryption=sqs.QueueEncryption.UNENCRYPTED)
    if second_queue:
        sqs.Queue(queues, "Another", encryption=sqs.QueueEncryption.UNENCRYPTED)
    Validations.of(app).add_plugins(plugin)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    return outdir


def test_a_changed_stack_runs_guard_on_its_template_only(tmp_path: Path) -> None:
    whole = two_stacks(
        tmp_path / "whole", CfnGuardValidator(control_tower_rules_enabled=True), second_queue=True
    )
    cache = tmp_path / "cache"
    two_stacks(tmp_path / "1", ControlTowerGuardValidator(cache_dir=cache))
    # One kept report per template; each marked, so a synth that reads it says so.
    kept = sorted(cache.glob("*.json"))
    assert len(kept) == 2
    for path in kept:
        report = json.loads(path.read_text())
        for violation in report["violations"]:
            violation["description"] = "from the cache"
        path.write_text(json.dumps(report))

    changed = two_stacks(
        tmp_path / "2", ControlTowerGuardValidator(cache_dir=cache), second_queue=True
    )
    # The upstream plugin over both templates with every rule finds the same.
    assert guard_findings(changed) == guard_findings(whole)
    report = json.loads((changed / "validation-report.json").read_text())
    (guard,) = [p for p in report["pluginReports"] if p["pluginName"] == "cdk-validator-cfnguard"]
    by_template: dict[str, set[str]] = {}
    for violation in guard["violations"]:
        for resource in violation["violatingConstructs"]:
            template = resource["cloudFormationResource"]["templatePath"]
            by_template.setdefault(template, set()).add(violation["description"])
    assert by_template["Logs.template.json"] == {"from the cache"}  # unchanged: kept
    assert "from the cache" not in by_template["Queues.template.json"]  # changed: Guard ran
    assert validation_failures(changed) == validation_failures(whole)

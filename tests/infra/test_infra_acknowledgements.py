"""Acknowledgements cover exactly the finding they were written for (docs/security.md, issue 27).

cdk-nag's AwsSolutions-IAM5 names each wildcard finding after its resource
(``AwsSolutions-IAM5[Resource::<resource>]``, one ``Resource::*`` finding per policy): an
acknowledgement names one resource exactly, or a ``Resource: "*"`` statement by its Sid, so a
broader resource added later stays a finding and fails synth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import (
    Acknowledgment,
    App,
    IPolicyValidationPlugin,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from mlstack.app import build_app, validation_failures
from mlstack.config import load_environment
from mlstack.constructs import DataBucket
from mlstack.constructs._nag import acknowledge_wildcard_resources, default_policy
from mlstack.constructs.roles import SeedFunctionRole, allow_sagemaker_metrics
from tests.infra.conftest import new_app, released_config

# The resource the issue names: every object of every bucket.
EVERY_OBJECT = "arn:aws:s3:::*"


def seeder_role(app: App) -> tuple[Stack, DataBucket, iam.Role]:
    stack = Stack(app, "Acks")
    data = DataBucket(stack, "Data", removal_policy=RemovalPolicy.RETAIN)
    log_group = logs.LogGroup(stack, "Logs")
    role = SeedFunctionRole(stack, "Seeder", bucket=data.bucket, log_group=log_group).role
    return stack, data, role


def iam5_failures(app: App, tmp_path: Path) -> str:
    """Synthesize ``app`` with cdk-nag's AwsSolutions pack; the failures it reports."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    return "\n".join(validation_failures(tmp_path))


def test_a_broad_resource_added_to_an_acknowledged_policy_fails_synth(tmp_path: Path) -> None:
    app = new_app(outdir=str(tmp_path))
    _, _, role = seeder_role(app)
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[EVERY_OBJECT]))
    failures = iam5_failures(app, tmp_path)
    assert f"AwsSolutions-IAM5[Resource::{EVERY_OBJECT}]" in failures
    # The seeder's own wildcard (its datasets prefix) is still acknowledged.
    assert failures.count("AwsSolutions-IAM5") == 1, failures


def test_the_acknowledged_policy_alone_synthesizes_clean(tmp_path: Path) -> None:
    app = new_app(outdir=str(tmp_path))
    seeder_role(app)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    assert validation_failures(tmp_path) == []


def test_a_star_statement_nobody_named_fails_synth(tmp_path: Path) -> None:
    """``Resource: "*"`` is one finding per policy: the PutSageMakerMetrics acknowledgement must
    not cover another statement's '*'."""
    app = new_app(outdir=str(tmp_path))
    _, _, role = seeder_role(app)
    allow_sagemaker_metrics(role)
    role.add_to_policy(
        iam.PolicyStatement(sid="EveryBucket", actions=["s3:ListAllMyBuckets"], resources=["*"])
    )
    with pytest.raises(RuntimeError, match="EveryBucket uses Resource '\\*'"):
        app.synth()


def test_an_acknowledgement_that_matches_nothing_fails_synth(tmp_path: Path) -> None:
    app = new_app(outdir=str(tmp_path))
    _, data, role = seeder_role(app)
    acknowledge_wildcard_resources(
        default_policy(role), [(data.bucket.arn_for_objects("models/*"), "Models only.")]
    )
    with pytest.raises(RuntimeError, match="models/\\* matches no resource of the policy"):
        app.synth()


def test_every_acknowledgement_of_the_shipped_environments_matches_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Build dev and released prod with acknowledgements recorded instead of made, run every
    engine, and require each acknowledgement to name a finding on its construct (or below it):
    one that matches nothing is stale (the issue's example: AwsSolutions-S1 on the access-log
    bucket, which cdk-nag does not report for a server access log destination)."""
    recorded: list[tuple[str, str]] = []
    validations_of = Validations.of

    class Recording:
        def __init__(self, scope: IConstruct) -> None:
            self._scope = scope

        def acknowledge(self, *rules: Acknowledgment) -> None:
            recorded.extend((self._scope.node.path, rule.id) for rule in rules)

        def add_plugins(self, *plugins: IPolicyValidationPlugin) -> None:
            validations_of(self._scope).add_plugins(*plugins)

    monkeypatch.setattr(Validations, "of", Recording)
    app = build_app(
        new_app(outdir=str(tmp_path)),
        environments={"dev": load_environment("dev"), "prod": released_config("prod")},
    )
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()  # nothing is acknowledged: the engines report every finding
    report = json.loads((tmp_path / "validation-report.json").read_text())
    findings = [
        (rule_id, construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        # cdk-nag's rule names are their IDs; the Guard plugin's are prefixed with its name.
        for rule_id in (violation["ruleName"], f"{plugin['pluginName']}::{violation['ruleName']}")
        for construct in violation["violatingConstructs"]
    ]
    stale = [
        f"{rule} at {path}"
        for path, rule in recorded
        if not any(r == rule and (at == path or at.startswith(f"{path}/")) for r, at in findings)
    ]
    assert len(recorded) > 100
    assert stale == []

"""Security and compliance (docs/security.md): the policy engines in synth, checkov and parliament
over every synthesized template, log encryption, Lambda concurrency and prod's isolated network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_logs as logs

from mlstack.app import policy_engines, validation_failures
from mlstack.constructs import LogGroupEncryption
from tests.infra.conftest import SynthesizedApp, new_app
from tests.infra.security_scan import parliament_findings, run_checkov, templates


def resources_of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.fixture(scope="module")
def all_templates(synthesized: SynthesizedApp, released: SynthesizedApp) -> list[Path]:
    """Every template the shipped environments synthesize, prod's Serving stack included."""
    files = templates(Path(synthesized.app.outdir)) + templates(Path(released.app.outdir))
    assert {f.name.split(".")[0].rstrip("0123456789ABCDEF") for f in files} >= {
        "devData",
        "devWorkflow",
        "prodData",
        "prodWorkflow",
        "prodServing",
    }
    return files


@pytest.fixture(scope="module")
def checkov_reports(all_templates: list[Path]) -> list[dict[str, Any]]:
    return run_checkov(all_templates)


def test_checkov_passes_every_template(checkov_reports: list[dict[str, Any]]) -> None:
    failed = [
        f"{c['check_id']} {c['file_path']} {c['resource']}"
        for report in checkov_reports
        for c in report.get("results", {}).get("failed_checks", [])
    ]
    assert failed == []
    (report,) = checkov_reports
    assert report["summary"]["passed"] > 100  # it did check something
    assert report["summary"]["parsing_errors"] == 0


def test_checkov_skips_are_on_their_resource_with_a_reason(all_templates: list[Path]) -> None:
    for file in all_templates:
        template = json.loads(file.read_text())
        for logical_id, resource in template["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert skip["id"].startswith("CKV_AWS_"), (file.name, logical_id)
                assert len(skip["comment"]) > 40, (file.name, logical_id, skip)


def test_parliament_finds_nothing_but_documented_false_positives(
    all_templates: list[Path],
) -> None:
    findings = [line for file in all_templates for line in parliament_findings(file)]
    assert findings == []


def test_synth_fails_on_an_unacknowledged_finding_of_each_engine(tmp_path: Path) -> None:
    app = new_app(outdir=str(tmp_path))
    stack = Stack(app, "Bare")
    logs.LogGroup(stack, "Plain", retention=logs.RetentionDays.ONE_WEEK)  # no key, a week
    from aws_cdk import Validations

    Validations.of(app).add_plugins(*policy_engines(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    failures = "\n".join(validation_failures(tmp_path))
    assert "NIST.800.53.R5-CloudWatchLogGroupEncrypted" in failures
    assert "HIPAA.Security-CloudWatchLogGroupEncrypted" in failures
    assert "cloudwatch_log_group_encrypted_check" in failures  # AWS Guard (Control Tower)
    assert "cloudwatch_log_group_retention_period_check" in failures


def test_log_group_encryption_key_serves_only_its_log_groups() -> None:
    app = new_app()
    stack = Stack(app, "Logs")
    LogGroupEncryption(stack, "LogsKey")
    logs.LogGroup(stack, "Unnamed")
    logs.LogGroup(stack, "Named", log_group_name="/mlstack/named")
    template = app.synth().get_stack_by_name("Logs").template
    groups = resources_of(template, "AWS::Logs::LogGroup")
    ((key_id, key),) = resources_of(template, "AWS::KMS::Key").items()
    for group in groups.values():
        assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    (statement,) = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if "Service" in s["Principal"]
    ]
    # "Encrypt log data in CloudWatch Logs using AWS KMS": the service principal of the region,
    # conditioned on the log group's ARN in the encryption context.
    assert statement["Principal"]["Service"] == {
        "Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]
    }
    arns = statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    suffixes = [a["Fn::Join"][1][-1] for a in arns]
    # CloudFormation names an unnamed log group <stack name>-<logical id>-<suffix>.
    assert sorted(suffixes) == [":log-group:/mlstack/named", ":log-group:Logs-*"]


def test_every_log_group_of_the_app_is_encrypted(synthesized: SynthesizedApp) -> None:
    for env in ("dev", "prod"):
        groups = resources_of(synthesized.json(env, "workflow"), "AWS::Logs::LogGroup")
        assert groups
        for logical_id, group in groups.items():
            assert "KmsKeyId" in group["Properties"], (env, logical_id)


@pytest.mark.parametrize("function", ["Seeder6BEE5FF8", "WorkflowInputValidator4FBBBE6C"])
def test_lambdas_the_workflow_invokes_have_reserved_concurrency(
    synthesized: SynthesizedApp, function: str
) -> None:
    for env in ("dev", "prod"):
        template = synthesized.json(env, "workflow")
        assert template["Resources"][function]["Properties"]["ReservedConcurrentExecutions"] == 5


def test_every_key_denies_grants_except_for_aws_resources(synthesized: SynthesizedApp) -> None:
    # AWS Control Tower CT.KMS.PR.3.
    for env in ("dev", "prod"):
        for stack in ("data", "workflow"):
            for key in resources_of(synthesized.json(env, stack), "AWS::KMS::Key").values():
                statements = key["Properties"]["KeyPolicy"]["Statement"]
                assert {
                    "Action": "kms:CreateGrant",
                    "Condition": {
                        "BoolIfExists": {
                            "kms:GrantIsForAWSResource": "false",
                            "aws:PrincipalIsAWSService": "false",
                        }
                    },
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Resource": "*",
                    "Sid": "DenyGrantsExceptForAwsResources",
                } in statements


# --- prod's isolated network ---------------------------------------------------------------------


def test_prod_vpc_has_only_isolated_subnets_in_two_zones(synthesized: SynthesizedApp) -> None:
    template = synthesized.json("prod", "workflow")
    assert len(resources_of(template, "AWS::EC2::Subnet")) == 2
    for kind in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EIP"):
        assert resources_of(template, kind) == {}
    for route in resources_of(template, "AWS::EC2::Route").values():
        raise AssertionError(f"unexpected route {route}")


def test_prod_vpc_has_the_endpoints_the_workload_calls(synthesized: SynthesizedApp) -> None:
    template = synthesized.json("prod", "workflow")
    names = set()
    for endpoint in resources_of(template, "AWS::EC2::VPCEndpoint").values():
        service = endpoint["Properties"]["ServiceName"]
        flat = json.dumps(service)
        names.add(flat.rsplit(".", 1)[-1].strip('"]}'))
        assert "PolicyDocument" in endpoint["Properties"]
    assert names >= {"s3", "api", "runtime", "dkr", "logs", "monitoring", "sts", "kms"}


def test_dev_has_no_vpc_by_default(synthesized: SynthesizedApp) -> None:
    assert resources_of(synthesized.json("dev", "workflow"), "AWS::EC2::VPC") == {}


def test_prod_seeder_runs_in_the_isolated_subnets(synthesized: SynthesizedApp) -> None:
    template = synthesized.json("prod", "workflow")
    config = template["Resources"]["Seeder6BEE5FF8"]["Properties"]["VpcConfig"]
    subnets = set(resources_of(template, "AWS::EC2::Subnet"))
    assert {s["Ref"] for s in config["SubnetIds"]} == subnets

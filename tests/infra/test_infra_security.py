"""Security and compliance (docs/security.md): the policy engines in synth, checkov and parliament
over every synthesized template, log encryption, Lambda concurrency and prod's isolated network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs

from mlstack.app import policy_engines, validation_failures
from mlstack.constructs import LogGroupEncryption
from tests.infra.conftest import SynthesizedApp, new_app, render_tokens
from tests.infra.security_scan import parliament_findings, run_checkov, templates


def resources_of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.fixture(scope="module")
def all_templates(synthesized: SynthesizedApp, released: SynthesizedApp) -> list[Path]:
    """Every template the shipped environments synthesize, prod's Serving stack included."""
    files = templates(synthesized.directory) + templates(released.directory)
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
    # cdk-nag reports an open default security group as a warning: that fails synth too.
    ec2.Vpc(stack, "Vpc", restrict_default_security_group=False)
    from aws_cdk import Validations

    Validations.of(app).add_plugins(*policy_engines(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    failures = "\n".join(validation_failures(tmp_path))
    assert "NIST.800.53.R5-CloudWatchLogGroupEncrypted" in failures
    assert "HIPAA.Security-CloudWatchLogGroupEncrypted" in failures
    assert "cloudwatch_log_group_encrypted_check" in failures  # AWS Guard (Control Tower)
    assert "cloudwatch_log_group_retention_period_check" in failures
    assert "NIST.800.53.R5-VPCDefaultSecurityGroupClosed" in failures


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
def test_prod_lambdas_the_workflow_invokes_have_reserved_concurrency(
    synthesized: SynthesizedApp, function: str
) -> None:
    # prod seeds up to 20 shards at once (dataset.seeding_concurrency): its functions reserve 20.
    # dev reserves none (the default): tests/infra/test_infra_review_findings.py.
    template = synthesized.json("prod", "workflow")
    properties = template["Resources"][function]["Properties"]
    assert properties["ReservedConcurrentExecutions"] == 20


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


def endpoint_statements(template: dict[str, Any], service: str) -> list[dict[str, Any]]:
    (endpoint,) = [
        e
        for e in resources_of(template, "AWS::EC2::VPCEndpoint").values()
        if json.dumps(e["Properties"]["ServiceName"]).strip('"]}').endswith(f".{service}")
    ]
    return endpoint["Properties"]["PolicyDocument"]["Statement"]  # type: ignore[no-any-return]


def test_prod_s3_endpoint_limits_the_data_bucket_to_this_account(
    synthesized: SynthesizedApp,
) -> None:
    statements = {
        s["Sid"]: s for s in endpoint_statements(synthesized.json("prod", "workflow"), "s3")
    }
    account = {"StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}
    assert statements["OurBucket"]["Condition"] == account
    # ECR's layer bucket: GetObject alone, the minimum policy of the ECR User Guide ("Minimum
    # Amazon S3 bucket permissions for Amazon ECR"), which has no principal condition.
    assert statements["EcrImageLayers"]["Action"] == "s3:GetObject"
    assert "Condition" not in statements["EcrImageLayers"]


def test_prod_sts_endpoint_allows_no_role_assumption(synthesized: SynthesizedApp) -> None:
    actions = [
        s["Action"] for s in endpoint_statements(synthesized.json("prod", "workflow"), "sts")
    ]
    assert actions == ["sts:GetCallerIdentity"]


def test_prod_sagemaker_endpoints_allow_only_the_environments_resources(
    synthesized: SynthesizedApp,
) -> None:
    """Every SageMaker name the workload creates starts with mlstack-<env> (docs/configuration.md);
    the interface endpoints allow nothing else."""
    template = synthesized.json("prod", "workflow")
    (runtime,) = endpoint_statements(template, "sagemaker.runtime")
    assert render_tokens(runtime["Resource"]) == (
        "arn:aws:sagemaker:us-east-1:123456789012:endpoint/mlstack-prod*"
    )
    (api,) = endpoint_statements(template, "sagemaker.api")
    assert {render_tokens(r).rsplit(":", 1)[-1] for r in api["Resource"]} == {
        f"{kind}/mlstack-prod*"
        for kind in (
            "training-job",
            "transform-job",
            "hyper-parameter-tuning-job",
            "model",
            "endpoint",
            "endpoint-config",
        )
    }


def test_state_machine_roles_trust_step_functions_of_this_account_only(
    synthesized: SynthesizedApp,
) -> None:
    """Step Functions Developer Guide, "Cross-service confused deputy prevention": the trust
    policy conditions aws:SourceAccount and aws:SourceArn (ArnLike, arn:aws:states:...)."""
    trusted = [
        statement
        for env in ("dev", "prod")
        for role in resources_of(synthesized.json(env, "workflow"), "AWS::IAM::Role").values()
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        if statement["Principal"].get("Service") == "states.amazonaws.com"
    ]
    assert len(trusted) == 4  # the workflow's and the release's, in dev and prod
    for statement in trusted:
        condition = statement["Condition"]
        assert render_tokens(condition["StringEquals"]["aws:SourceAccount"]) == "123456789012"
        assert render_tokens(condition["ArnLike"]["aws:SourceArn"]) == (
            "arn:aws:states:us-east-1:123456789012:*"
        )


def _trusting(template: dict[str, Any], service: str) -> dict[str, dict[str, Any]]:
    """Role logical ID -> its trust statement for ``service``."""
    return {
        lid: statement
        for lid, role in resources_of(template, "AWS::IAM::Role").items()
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        if statement["Principal"].get("Service") == service
    }


def test_sagemaker_roles_trust_sagemaker_of_this_account_and_region_only(
    synthesized: SynthesizedApp, released: SynthesizedApp
) -> None:
    """SageMaker developer guide, "Cross-service confused deputy prevention": training,
    processing and batch transform jobs' aws:SourceArn is arn:aws:sagemaker:<region>:<account>:
    <kind>/<name>, inference's arn:aws:sagemaker:<region>:<account>:* itself; the account is in
    the ARN, so no aws:SourceAccount."""
    execution = [
        statement
        for env in ("dev", "prod")
        for statement in _trusting(synthesized.json(env, "workflow"), "sagemaker.amazonaws.com")
        .values()
    ]  # fmt: skip
    serving = _trusting(released.json("prod", "serving"), "sagemaker.amazonaws.com")
    endpoint = [s for lid, s in serving.items() if lid.startswith("EndpointRole")]
    assert len(execution) == 2 and len(endpoint) == 1
    for statement in execution + endpoint:
        condition = statement["Condition"]
        assert set(condition) == {"ArnLike"}
        assert render_tokens(condition["ArnLike"]["aws:SourceArn"]) == (
            "arn:aws:sagemaker:us-east-1:123456789012:*"
        )


def test_release_events_role_trusts_eventbridge_rules_of_this_account_only(
    synthesized: SynthesizedApp,
) -> None:
    """EventBridge user guide, "Using IAM policy conditions in Amazon EventBridge":
    aws:SourceAccount is the rule's account, aws:SourceArn the rule's ARN."""
    trusted = [
        statement
        for env in ("dev", "prod")
        for statement in _trusting(synthesized.json(env, "workflow"), "events.amazonaws.com")
        .values()
    ]  # fmt: skip
    assert len(trusted) == 2  # the release's, in dev and prod
    for statement in trusted:
        condition = statement["Condition"]
        assert render_tokens(condition["StringEquals"]["aws:SourceAccount"]) == "123456789012"
        assert render_tokens(condition["ArnLike"]["aws:SourceArn"]) == (
            "arn:aws:events:us-east-1:123456789012:rule/*"
        )


def test_dev_has_no_vpc_by_default(synthesized: SynthesizedApp) -> None:
    assert resources_of(synthesized.json("dev", "workflow"), "AWS::EC2::VPC") == {}


def test_prod_seeder_runs_in_the_isolated_subnets(synthesized: SynthesizedApp) -> None:
    template = synthesized.json("prod", "workflow")
    config = template["Resources"]["Seeder6BEE5FF8"]["Properties"]["VpcConfig"]
    subnets = set(resources_of(template, "AWS::EC2::Subnet"))
    assert {s["Ref"] for s in config["SubnetIds"]} == subnets


def _definition(synthesized: SynthesizedApp, env: str) -> dict[str, Any]:
    from tests.infra.conftest import state_machine_definition

    return state_machine_definition(synthesized.json(env, "workflow"))


def _group_id(template: dict[str, Any], name: str) -> str:
    (logical_id,) = [
        k
        for k, v in resources_of(template, "AWS::EC2::SecurityGroup").items()
        if k.startswith(f"Network{name}")
    ]
    return logical_id


def test_prod_training_runs_in_the_vpc_with_encrypted_inter_host_traffic(
    synthesized: SynthesizedApp,
) -> None:
    from mlstack.constructs.state_names import SAVE_MODEL, TRAIN_MODEL, TUNE_MODEL

    states = _definition(synthesized, "prod")["States"]
    flat = json.dumps(states)
    train = next(s for s in _walk(states) if _is(s, TRAIN_MODEL))
    parameters = train["Parameters"]
    assert parameters["EnableInterContainerTrafficEncryption"] is True
    assert parameters["EnableNetworkIsolation"] is True
    assert set(parameters["VpcConfig"]) == {"SecurityGroupIds", "Subnets"}
    assert len(parameters["VpcConfig"]["Subnets"]) == 2
    assert "networktraining" in json.dumps(parameters["VpcConfig"]["SecurityGroupIds"])
    tune = next((s for s in _walk(states) if _is(s, TUNE_MODEL)), None)
    if tune is not None:
        definition = tune["Parameters"]["TrainingJobDefinition"]
        assert definition["VpcConfig"] == parameters["VpcConfig"]
        assert definition["EnableInterContainerTrafficEncryption"] is True
    model = next(s for s in _walk(states) if _is(s, SAVE_MODEL))["Parameters"]
    assert "networkinference" in json.dumps(model["VpcConfig"]["SecurityGroupIds"])
    assert model["EnableNetworkIsolation"] is True
    assert "VpcConfig" not in json.dumps(_definition(synthesized, "dev"))
    assert flat.count('"VpcConfig"') >= 2


def _walk(states: dict[str, Any]) -> list[dict[str, Any]]:
    """Every state, nested ones included, each tagged with its name."""
    found = []
    for name, state in states.items():
        tagged = {**state, "__name": name}
        found.append(tagged)
        for branch in state.get("Branches", []):
            found += _walk(branch["States"])
        if "Iterator" in state:
            found += _walk(state["Iterator"]["States"])
        if "ItemProcessor" in state:
            found += _walk(state["ItemProcessor"]["States"])
    return found


def _is(state: dict[str, Any], name: str) -> bool:
    return bool(state.get("__name") == name)


def test_prod_serving_models_run_in_the_vpc(released: SynthesizedApp) -> None:
    template = released.json("prod", "serving")
    models = resources_of(template, "AWS::SageMaker::Model")
    assert models
    for model in models.values():
        config = model["Properties"]["VpcConfig"]
        assert len(config["Subnets"]) == 2
        assert "NetworkInference" in json.dumps(config["SecurityGroupIds"])


def test_prod_lambdas_run_in_the_vpc(synthesized: SynthesizedApp) -> None:
    template = synthesized.json("prod", "workflow")
    functions = resources_of(template, "AWS::Lambda::Function")
    assert functions
    for function in functions.values():
        groups = function["Properties"]["VpcConfig"]["SecurityGroupIds"]
        assert groups == [{"Fn::GetAtt": [_group_id(template, "Functions"), "GroupId"]}]


def test_security_groups_are_least_privilege(synthesized: SynthesizedApp) -> None:
    template = synthesized.json("prod", "workflow")
    training = _group_id(template, "Training")
    endpoints = _group_id(template, "Endpoints")
    groups = resources_of(template, "AWS::EC2::SecurityGroup")
    for logical_id, group in groups.items():
        # No group admits traffic from an address range: only from our groups.
        assert "SecurityGroupIngress" not in group["Properties"], logical_id
        for rule in group["Properties"].get("SecurityGroupEgress", []):
            if rule.get("CidrIp") == "255.255.255.255/32":
                continue  # CDK's placeholder for "no egress" (the endpoints' group)
            assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)
    ingress = resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
    sources = {
        (
            r["Properties"]["GroupId"]["Fn::GetAtt"][0],
            r["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0],
            r["Properties"]["IpProtocol"],
            r["Properties"].get("FromPort"),
        )
        for r in ingress
    }
    # Multi-host training: its own self-referencing rule, all traffic.
    assert (training, training, "-1", None) in sources
    # The endpoints admit HTTPS from the three workload groups only.
    assert {s for s in sources if s[0] == endpoints} == {
        (endpoints, _group_id(template, name), "tcp", 443)
        for name in ("Training", "Inference", "Functions")
    }
    assert {s for s in sources if s[0] != endpoints} == {(training, training, "-1", None)}


def test_execution_role_gets_the_documented_vpc_permissions_scoped(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.json("prod", "workflow")
    (policy,) = [
        p
        for k, p in resources_of(template, "AWS::IAM::Policy").items()
        if k.startswith("WorkflowExecutionRole")
    ]
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    create = statements["CreateNetworkInterfacesInOurSubnets"]
    assert create["Action"] == "ec2:CreateNetworkInterface"
    flat = json.dumps(create["Resource"])
    assert flat.count(":subnet/") == 2 and "NetworkTraining" in flat and "NetworkInference" in flat
    manage = statements["ManageNetworkInterfacesInOurVpc"]
    # "Give SageMaker access to resources in your Amazon VPC".
    assert sorted(manage["Action"]) == [
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DeleteNetworkInterface",
        "ec2:DeleteNetworkInterfacePermission",
    ]
    assert "NetworkVpc" in json.dumps(manage["Condition"]["ArnEquals"]["ec2:Vpc"])
    assert sorted(statements["DescribeNetwork"]["Action"]) == [
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
    ]


def test_an_existing_vpc_is_used_as_configured(tmp_path: Path) -> None:
    from mlstack.app import build_app
    from mlstack.config import parse_environment
    from tests.infra.conftest import REPO

    data = json.loads((REPO / "environments" / "dev.json").read_text())
    data["network"] = {
        "vpc": {
            "vpc_id": "vpc-0123456789abcdef0",
            "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
            "security_group_ids": ["sg-0123456789abcdef0"],
        }
    }
    app = build_app(
        new_app(outdir=str(tmp_path)), environments={"dev": parse_environment("dev", data)}
    )
    app.synth()  # the four engines pass
    stage = app.node.find_child("dev")
    template = json.loads(
        (tmp_path / "assembly-dev" / f"{stage.workflow.artifact_id}.template.json").read_text()  # type: ignore[attr-defined]
    )
    assert resources_of(template, "AWS::EC2::VPC") == {}
    assert resources_of(template, "AWS::EC2::VPCEndpoint") == {}
    for group in resources_of(template, "AWS::EC2::SecurityGroup").values():
        assert group["Properties"]["VpcId"] == "vpc-0123456789abcdef0"
    seeder = template["Resources"]["Seeder6BEE5FF8"]["Properties"]["VpcConfig"]
    assert seeder["SubnetIds"] == ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    assert "sg-0123456789abcdef0" in seeder["SecurityGroupIds"]


def test_local_mode_says_it_ignores_the_network(synthesized: SynthesizedApp) -> None:
    from mlstack.local.runner import NETWORK_IGNORED, network_notice

    assert network_notice(_definition(synthesized, "prod")) == NETWORK_IGNORED
    assert network_notice(_definition(synthesized, "dev")) is None

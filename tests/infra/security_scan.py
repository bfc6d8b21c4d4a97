"""checkov and parliament over synthesized templates (docs/security.md): helpers for the tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# checkov pins a boto3 older than ours, so it lives in a virtual environment of its own
# (`make setup` builds it from requirements-checkov.txt).
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"

ACCOUNT = "123456789012"
REGION = "us-east-1"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "stack",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/stack/guid",
    "AWS::NoValue": "",
}


def templates(assembly: Path) -> list[Path]:
    return sorted(assembly.glob("assembly-*/*.template.json"))


def checkov_binary() -> str:
    if CHECKOV.is_file():
        return str(CHECKOV)
    found = shutil.which("checkov")
    if found is None:
        raise AssertionError(
            "checkov is not installed: run `make setup` (requirements-checkov.txt)"
        )
    return found


def run_checkov(files: list[Path]) -> list[dict[str, Any]]:
    """checkov's CloudFormation checks over ``files``, offline; its JSON reports."""
    command = [checkov_binary(), "--framework", "cloudformation", "--skip-download", "--quiet"]
    command += ["--compact", "--output", "json"]
    for file in files:
        command += ["--file", str(file)]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    if not result.stdout.strip():
        raise AssertionError(f"checkov printed no report (rc {result.returncode}): {result.stderr}")
    report = json.loads(result.stdout)
    return report if isinstance(report, list) else [report]


# --- every policy document of a template, tokens rendered as plausible literals ----------------

ARN_OF_TYPE = {
    "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{{id}}",
    "AWS::S3::Bucket": "arn:aws:s3:::{id}",
    "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{{id}}",
    "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{{id}}",
    "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{{id}}:*",
    "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{{id}}",
    "AWS::StepFunctions::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{{id}}",
    "AWS::SageMaker::Endpoint": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{{id}}",
    "AWS::EC2::VPC": f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/{{id}}",
    "AWS::CloudWatch::Alarm": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{{id}}",
}
# Resources whose Ref is their ARN.
REF_IS_ARN = ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine")


class _Renderer:
    def __init__(self, template: dict[str, Any]) -> None:
        self._resources = template.get("Resources", {})

    def render(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
            return {k: self.render(v) for k, v in value.items()}
        ((function, argument),) = value.items()
        if function == "Ref":
            kind = self._resources.get(argument, {}).get("Type", "")
            if kind in REF_IS_ARN:
                return ARN_OF_TYPE[kind].format(id=argument.lower())
            return PSEUDO.get(argument, argument.lower())
        if function == "Fn::Join":
            delimiter, parts = argument
            return str(delimiter).join(str(self.render(p)) for p in parts)
        if function == "Fn::GetAtt":
            resource, attribute = argument
            kind = self._resources.get(resource, {}).get("Type", "")
            if attribute == "Arn" and kind in ARN_OF_TYPE:
                return ARN_OF_TYPE[kind].format(id=resource.lower())
            return f"{resource.lower()}-{attribute.lower()}"
        if function == "Fn::Select":
            index, items = argument
            rendered = self.render(items)
            return rendered[int(index)] if isinstance(rendered, list) else rendered
        if function == "Fn::Split":
            delimiter, text = argument
            return str(self.render(text)).split(delimiter)
        if function == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            for name, literal in PSEUDO.items():
                text = text.replace("${" + name + "}", literal)
            return text
        if function == "Fn::GetAZs":
            return [f"{REGION}a", f"{REGION}b"]
        if function in ("Fn::ImportValue", "Fn::GetStackOutput"):
            name = str(
                self.render(
                    argument.get("OutputName") if function == "Fn::GetStackOutput" else argument
                )
            )
            if "Key" in name and "Arn" in name:
                return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/imported"
            if "Arn" in name:
                return "arn:aws:s3:::imported-bucket"
            return "imported-bucket"
        raise AssertionError(f"unexpected intrinsic {function}")


POLICY_PROPERTIES = {
    "AWS::IAM::Policy": ("PolicyDocument",),
    "AWS::IAM::ManagedPolicy": ("PolicyDocument",),
    "AWS::IAM::Role": ("AssumeRolePolicyDocument",),
    "AWS::KMS::Key": ("KeyPolicy",),
    "AWS::S3::BucketPolicy": ("PolicyDocument",),
    "AWS::SNS::TopicPolicy": ("PolicyDocument",),
    "AWS::EC2::VPCEndpoint": ("PolicyDocument",),
}


def policy_documents(template_file: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(logical ID, property, document) of every policy in a template, inline role policies
    included, with its tokens rendered."""
    template = json.loads(template_file.read_text(encoding="utf-8"))
    renderer = _Renderer(template)
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        for name in POLICY_PROPERTIES.get(resource["Type"], ()):
            if name in properties:
                yield logical_id, name, renderer.render(properties[name])
        for index, inline in enumerate(
            properties.get("Policies", []) if resource["Type"] == "AWS::IAM::Role" else []
        ):
            yield logical_id, f"Policies[{index}]", renderer.render(inline["PolicyDocument"])


# Findings of parliament that are false positives, with why (docs/security.md lists them):
# (property, statement Sid or None for any, issue) -> reason. parliament audits identity
# policies; run over the other kinds of policy it reports what those kinds are.
FALSE_POSITIVES = {
    ("AssumeRolePolicyDocument", None, "MALFORMED"): (
        "A trust policy says who may assume a role: it has no Resource by definition."
    ),
    ("KeyPolicy", None, "RESOURCE_STAR"): (
        "In a key policy, Resource '*' means the key the policy is attached to (AWS KMS "
        "Developer Guide, 'Key policies in AWS KMS'): it is the only form a key policy takes."
    ),
    ("KeyPolicy", "CloudWatchLogsForTheseLogGroupsOnly", "UNKNOWN_CONDITION_FOR_ACTION"): (
        "AWS's documented key policy for CloudWatch Logs ('Encrypt log data in CloudWatch Logs "
        "using AWS KMS') conditions kms:Describe* on the log group's encryption context too."
    ),
    ("KeyPolicy", "CloudWatchLogsForTheseLogGroupsOnly", "MISMATCHED_TYPE"): (
        "The same documented policy matches kms:EncryptionContext:aws:logs:arn with ArnLike; "
        "the key's value is an ARN."
    ),
    ("PolicyDocument", "FollowSeedingChildExecutions", "RESOURCE_MISMATCH"): (
        "parliament 1.6.4 matches states:DescribeExecution/StopExecution only against its "
        "'express' ARN format: it flags even the canonical execution:<machine>:* of the "
        "developer guide's nested-workflow policy; the Distributed Map's child executions are "
        "execution:<machine>/<label>:<name> ('IAM policies for using Distributed Map states')."
    ),
    ("PolicyDocument", AUTO_DELETE := "CDK auto-delete", "RESOURCE_MISMATCH"): (
        "CDK's auto-delete-objects statement (dev only) lists s3:List* on the bucket it empties."
    ),
    ("PolicyDocument", AUTO_DELETE, "RESOURCE_POLICY_PRIVILEGE_ESCALATION"): (
        "CDK's auto-delete-objects provider (dev only) puts a deny-writes bucket policy before "
        "it empties the bucket on `cdk destroy`."
    ),
}


def _sid(statement: dict[str, Any]) -> str | None:
    actions = statement.get("Action", [])
    if "s3:PutBucketPolicy" in (actions if isinstance(actions, list) else [actions]):
        principal = json.dumps(statement.get("Principal", {}))
        if "s3autodeleteobjectscustomresourceproviderrole" in principal.lower():
            return AUTO_DELETE
    return statement.get("Sid")


def parliament_findings(template_file: Path) -> list[str]:
    """parliament's findings for every Allow statement of every policy of ``template_file``,
    less the documented false positives, as ``<file> <logical id> <property> <sid>: <issue>``.

    Deny statements only take access away (the TLS-only ``s3:*`` deny of every bucket, the
    grant-creation deny of every key); parliament's checks are about what is allowed, and it
    reads a Deny of ``s3:*`` as a resource mismatch.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from parliament import analyze_policy_string

    findings = []
    for logical_id, name, document in policy_documents(template_file):
        for statement in document.get("Statement", []):
            if statement.get("Effect") != "Allow":
                continue
            single = {"Version": "2012-10-17", "Statement": [statement]}
            policy = analyze_policy_string(json.dumps(single), ignore_private_auditors=True)
            sid = _sid(statement)
            for finding in policy.findings:
                if (name, None, finding.issue) in FALSE_POSITIVES:
                    continue
                if (name, sid, finding.issue) in FALSE_POSITIVES:
                    continue
                findings.append(
                    f"{template_file.name} {logical_id} {name} {sid}: {finding.issue} "
                    f"{finding.detail}"
                )
    return findings


if __name__ == "__main__":  # pragma: no cover - `python tests/infra/security_scan.py cdk.out`
    directory = Path(sys.argv[1])
    for file in templates(directory):
        for line in parliament_findings(file):
            print(line)

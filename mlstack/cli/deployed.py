"""``mlstack run``, ``mlstack invoke`` and the registry commands (``mlstack models``,
``approve``, ``reject``): drive the deployed workflow, endpoint and model registry with boto3.

The state machine, the endpoint and the model package group are found from the stacks' outputs
(``<env>-Workflow`` ``StateMachineArn``, ``<env>-Serving`` ``EndpointName``, ``<env>-Data``
``ModelPackageGroupName``). The region is ``--region``, else
``AWS_REGION``, else boto3's chain; credentials come from boto3's standard chain; a missing one,
or a stack that is not deployed, is a one-line message naming what was read. ``invoke`` with an
``--endpoint-url`` on this machine (``mlstack local serve``) needs neither: it signs with dummy
credentials and any region.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.parse
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from mlstack.cli import records
from mlstack.cli.models import RegistryError, listing, set_status
from mlstack.local.processes import Interrupted, interruptible
from mlstack.local.s3 import parse_uri
from mlstack.local.ui import Reporter, reporter_for, short_cause

NO_CREDENTIALS = (
    "no AWS credentials found (boto3's standard chain: AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, the profile AWS_PROFILE names in ~/.aws/credentials or ~/.aws/config "
    "(AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE), SSO, a container or instance role). "
    "Configure credentials, or run the workflow offline with `mlstack local run`."
)
NO_REGION = (
    "no AWS region: pass --region, or set AWS_REGION or AWS_DEFAULT_REGION, or `region` in the "
    "profile of ~/.aws/config (AWS_CONFIG_FILE, AWS_PROFILE)"
)
# A server on this machine (`mlstack local serve`) checks neither the region nor the signature,
# but SigV4 signing needs both: these stand in when none is configured.
LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class CommandError(Exception):
    """A message for the user; the command exits 1."""


def is_local(endpoint_url: str | None) -> bool:
    """``endpoint_url`` names a server on this machine (a loopback address)."""
    if not endpoint_url:
        return False
    host = urllib.parse.urlsplit(endpoint_url).hostname or ""
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def _region(region: str | None) -> str | None:
    """``--region``, else AWS_REGION, else boto3's own chain (AWS_DEFAULT_REGION, the profile)."""
    return region or os.environ.get("AWS_REGION") or None


def _client(service: str, region: str | None, endpoint_url: str | None = None) -> Any:
    region = _region(region)
    if is_local(endpoint_url):
        # Real credentials are never sent to a local server, and none are looked up (no wait
        # on an instance metadata service that a laptop does not have).
        return boto3.client(
            service,
            region_name=region or LOCAL_REGION,
            endpoint_url=endpoint_url,
            **LOCAL_CREDENTIALS,
        )
    try:
        return boto3.client(service, region_name=region, endpoint_url=endpoint_url)
    except NoRegionError:
        raise CommandError(NO_REGION) from None


def stack_output(env: str, stack: str, key: str, region: str | None) -> str:
    """Output ``key`` of the deployed stack ``<env>-<stack>``."""
    name = f"{env}-{stack}"
    cfn = _client("cloudformation", region)
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except NoCredentialsError:
        raise CommandError(NO_CREDENTIALS) from None
    except ClientError as err:
        if "does not exist" in str(err):
            raise CommandError(
                f"stack {name} is not deployed in {cfn.meta.region_name} "
                f"(deploy it with `npx cdk deploy '{env}/*'`)"
            ) from None
        raise CommandError(f"cannot read stack {name}: {err}") from None
    for output in stacks[0].get("Outputs", []):
        if output.get("OutputKey") == key:
            return str(output["OutputValue"])
    raise CommandError(f"stack {name} has no output {key}; is it an mlstack {stack} stack?")


def _guard(fn: Any, args: argparse.Namespace, command: str) -> int:
    try:
        return int(fn(args))
    except (CommandError, RegistryError) as err:
        print(f"mlstack {command}: {err}", file=sys.stderr)
    except NoCredentialsError:
        print(f"mlstack {command}: {NO_CREDENTIALS}", file=sys.stderr)
    except (ClientError, BotoCoreError) as err:
        print(f"mlstack {command}: {err}", file=sys.stderr)
    return 1


def run_execution(args: argparse.Namespace) -> int:
    return _guard(_run_execution, args, "run")


def invoke(args: argparse.Namespace) -> int:
    return _guard(_invoke, args, "invoke")


_ENTERED = "StateEntered"
_EXITED = "StateExited"


def _run_execution(args: argparse.Namespace) -> int:
    arn = stack_output(args.env, "Workflow", "StateMachineArn", args.region)
    sfn = _client("stepfunctions", args.region)
    start: dict[str, Any] = {"stateMachineArn": arn, "input": json.dumps(args.input)}
    if args.name:
        start["name"] = args.name
    execution_arn = sfn.start_execution(**start)["executionArn"]
    reporter = reporter_for(sys.stdout, plain=True if args.plain else None, title="mlstack run")
    reporter.info(f"started {execution_arn}")
    try:
        with interruptible():
            description = _follow(sfn, execution_arn, reporter, args.poll)
    except Interrupted as stop:
        # Only the following stops: the execution is AWS's, and runs on.
        print(
            f"mlstack run: {signal.Signals(stop.signum).name}: stopped following "
            f"{execution_arn}; the execution goes on in AWS (stop it with `aws stepfunctions "
            f"stop-execution --execution-arn {execution_arn}`)",
            file=sys.stderr,
        )
        return 128 + stop.signum
    status = description["status"]
    print(f"\nExecution {description.get('name', execution_arn)}: {status}")
    if status == "SUCCEEDED":
        print(json.dumps(json.loads(description.get("output") or "null"), indent=2))
        return 0
    error = description.get("error", "")
    cause = description.get("cause", "")
    print(f"mlstack run: {status}: {error}: {short_cause(cause, 2000)}", file=sys.stderr)
    return 1


def _follow(sfn: Any, execution_arn: str, reporter: Reporter, poll: float) -> dict[str, Any]:
    """Show the execution's states as its history grows; its description once it ended."""
    seen = 0
    entered: dict[str, datetime] = {}
    with reporter:
        while True:
            events = _history(sfn, execution_arn)
            for event in events[seen:]:
                kind = event["type"]
                if kind.endswith(_ENTERED):
                    details = event["stateEnteredEventDetails"]
                    entered[details["name"]] = event["timestamp"]
                    reporter.state_entered(details["name"], kind[: -len(_ENTERED)], None)
                elif kind.endswith(_EXITED):
                    details = event["stateExitedEventDetails"]
                    began = entered.get(details["name"], event["timestamp"])
                    seconds = (event["timestamp"] - began).total_seconds()
                    reporter.state_exited(details["name"], kind[: -len(_EXITED)], None, seconds)
            seen = len(events)
            description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if description["status"] != "RUNNING":
                return description
            time.sleep(poll)


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def endpoint_name(env: str, region: str | None) -> str:
    """The endpoint of ``env``: the Serving stack's (``EndpointName``, deployed when a version
    is pinned), else the one the workflow's deploy stage creates (the Workflow stack's
    ``DeployEndpointName``, ``mlstack-<env>-live``)."""
    try:
        return stack_output(env, "Serving", "EndpointName", region)
    except CommandError as err:
        if "is not deployed" not in str(err):
            raise
        serving = str(err).split(" (deploy it", 1)[0]
    try:
        return stack_output(env, "Workflow", "DeployEndpointName", region)
    except CommandError as workflow:
        raise CommandError(
            f"{env} has no endpoint to call: {serving}, and {workflow}. The endpoint is created "
            f"by a run of the workflow (`mlstack run --env {env}`: its deploy stage) or by the "
            f"{env}-Serving stack when a version is pinned; or name one with --endpoint-name"
        ) from None


def _invoke(args: argparse.Namespace) -> int:
    name = args.endpoint_name or endpoint_name(args.env, args.region)
    request = _invoke_request(args)
    if args.output:  # the inference image's per-request answer keys (docs/serving.md)
        request["CustomAttributes"] = f"output={args.output}"
    runtime = _client("sagemaker-runtime", args.region, args.endpoint_url)
    answer = runtime.invoke_endpoint(EndpointName=name, **request)
    data = answer["Body"].read()
    lines = records.readable(data) if args.file is None else None
    if lines is not None:  # raw records: one line a record, for a person
        print("\n".join(lines), flush=True)
        return 0
    sys.stdout.buffer.write(data)
    if not data.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    return 0


def _invoke_request(args: argparse.Namespace) -> dict[str, Any]:
    """InvokeEndpoint's Body, ContentType and Accept from ``--file``, ``--json`` or ``--jsonl``."""
    try:
        if args.json is not None:
            raw = records.from_json(args.json)
        elif args.jsonl is not None:
            raw = records.read_jsonl(args.jsonl, sys.stdin.buffer)
        else:
            raw = None
    except records.RecordsError as err:
        raise CommandError(str(err)) from None
    if raw is not None:
        if args.content_type:
            raise CommandError(
                f"--content-type goes with --file; --json sends application/json and --jsonl "
                f"application/jsonlines (got --content-type {args.content_type})"
            )
        return {
            "Body": raw.body,
            "ContentType": raw.content_type,
            "Accept": args.accept or "application/json",
        }
    if str(args.file) == "-":
        body = sys.stdin.buffer.read()
    else:
        try:
            body = args.file.read_bytes()
        except OSError as err:
            raise CommandError(f"cannot read {args.file}: {err.strerror}") from None
    request: dict[str, Any] = {"Body": body, "ContentType": args.content_type or "text/csv"}
    if args.accept:
        request["Accept"] = args.accept
    return request


def models(args: argparse.Namespace) -> int:
    return _guard(_models, args, "models")


def approve(args: argparse.Namespace) -> int:
    return _guard(_approve, args, "approve")


def reject(args: argparse.Namespace) -> int:
    return _guard(_reject, args, "reject")


def _group(args: argparse.Namespace) -> str:
    return stack_output(args.env, "Data", "ModelPackageGroupName", args.region)


def _models(args: argparse.Namespace) -> int:
    group = _group(args)
    sagemaker = _client("sagemaker", args.region)
    s3 = _client("s3", args.region)

    def read(uri: str) -> bytes:
        bucket, key = parse_uri(uri)
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    for line in listing(sagemaker, group, read):
        print(line)
    return 0


def _approve(args: argparse.Namespace) -> int:
    return _set_status(args, "Approved", args.reason or "approved with `mlstack approve`")


def _reject(args: argparse.Namespace) -> int:
    return _set_status(args, "Rejected", args.reason)


def _set_status(args: argparse.Namespace, status: str, reason: str) -> int:
    group = _group(args)
    arn, changed = set_status(
        _client("sagemaker", args.region), group, args.version, status, reason
    )
    if not changed:
        print(f"{group} version {args.version} is already {status}: nothing changed ({arn})")
    elif status == "Approved":
        print(
            f"{group} version {args.version} is Approved ({arn}); its approval starts the "
            "release state machine, which deploys it (see the Release executions)"
        )
    else:
        print(f"{group} version {args.version} is {status} ({arn}): {reason}")
    return 0

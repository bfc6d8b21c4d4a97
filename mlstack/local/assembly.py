"""The synthesized cloud assembly of one environment, with its tokens resolved to local values.

The local run executes what ``cdk synth`` produced — the state machine's ``DefinitionString``,
the Lambda function's code asset, handler and environment, the image assets — so there is one
source of truth. CloudFormation intrinsics (``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``,
``Fn::Select``, ``Fn::Split``, ``Fn::GetStackOutput``, ``Fn::ImportValue``) are resolved with a
local mapping: every resource gets a well-formed fake physical name and ARN in account
``000000000000`` of the chosen region; buckets become buckets of the embedded S3 server, the
seeding function's ARN leads to its handler, and image URIs to the ``train``/``serve`` programs
of the image asset's directory.

:func:`load` reuses ``cdk.out/assembly-<env>`` when it is newer than every source the app reads
(what ``make run`` just synthesized), else synthesizes the environment in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LOCAL_ACCOUNT = "000000000000"
LOCAL_REGION = "us-east-1"
# What the app reads when it synthesizes; cdk.json's "watch" list says the same.
SOURCES = ("app.py", "cdk.json", "mlstack", "environments", "lambda", "containers")
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


class AssemblyError(ValueError):
    """The assembly lacks what the local run needs, or uses something it cannot resolve."""


@dataclass(frozen=True)
class LambdaFunction:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    runtime: str
    environment: Mapping[str, str]
    timeout_seconds: int
    memory_mb: int


@dataclass(frozen=True)
class Image:
    """A Docker image asset: SageMaker runs ``train`` or ``serve`` from its build context."""

    uri: str
    directory: Path  # the asset's build context (a copy of containers/)
    dockerfile: str  # relative to directory, e.g. "training/Dockerfile"

    def program(self, name: str) -> Path:
        """The launcher the Dockerfile puts on PATH as ``name`` (next to the Dockerfile)."""
        candidates = [self.directory / Path(self.dockerfile).parent / name, self.directory / name]
        for path in candidates:
            if path.is_file():
                return path
        raise AssemblyError(f"image {self.uri}: no program {name!r} in its build context")

    @property
    def python_path(self) -> Path | None:
        """The image's shared package source (``common/``), put first on the program's path."""
        common = self.directory / "common"
        return common if common.is_dir() else None


@dataclass(frozen=True)
class StateMachine:
    """A state machine of the app other than the training workflow (the release)."""

    name: str
    arn: str
    role_arn: str
    definition: dict[str, Any]


@dataclass(frozen=True)
class EventRule:
    """An EventBridge rule: its event pattern and the ARNs of its targets."""

    name: str
    pattern: dict[str, Any]
    targets: tuple[str, ...]


@dataclass
class LocalAssembly:
    """One environment's stacks, resolved for a local run."""

    environment: str
    directory: Path
    region: str
    account: str
    templates: dict[str, dict[str, Any]]  # by stack name
    definition: dict[str, Any]
    state_machine_name: str
    state_machine_arn: str
    state_machine_role_arn: str
    lambdas: dict[str, LambdaFunction]  # by ARN and by name
    images: dict[str, Image]  # by URI
    buckets: list[str]
    topics: list[str]
    model_package_groups: list[str] = field(default_factory=list)  # by name
    # The other state machines (the release, which a rule starts; the drift monitor and
    # retraining on drift, on released prod), by ARN, and the rules.
    state_machines: dict[str, StateMachine] = field(default_factory=dict)
    event_rules: list[EventRule] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # stack -> key -> value
    synthesized: bool = False  # True when load() had to synthesize
    seconds: float = 0.0

    def lambda_function(self, name_or_arn: str) -> LambdaFunction:
        key = name_or_arn
        if re.fullmatch(r"arn:[^:]+:lambda:[^:]+:\d+:function:[^:]+:[^:]+", key):
            key = key.rsplit(":", 1)[0]  # a qualified ARN (version or alias)
        fn = self.lambdas.get(key)
        if fn is None:
            raise AssemblyError(f"no Lambda function {name_or_arn!r} in the {self.environment} app")
        return fn


# --- freshness and synthesis ---------------------------------------------------------------------


def newest_source_mtime(root: Path = REPO) -> float:
    newest = 0.0
    for name in SOURCES:
        path = root / name
        if path.is_file():
            newest = max(newest, path.stat().st_mtime)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [
                d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info")
            ]
            for f in filenames:
                if not f.endswith(".pyc"):
                    newest = max(newest, os.stat(os.path.join(dirpath, f)).st_mtime)
    return newest


def fresh_assembly_dir(cdk_out: Path, environment: str) -> Path | None:
    """``cdk_out/assembly-<env>`` when it was synthesized after the last change to the sources."""
    manifest = cdk_out / f"assembly-{environment}" / "manifest.json"
    if not manifest.is_file():
        return None
    if manifest.stat().st_mtime < newest_source_mtime():
        return None
    return manifest.parent


def synthesize(environment: str, outdir: Path, environments_dir: Path | None = None) -> Path:
    """Synthesize one environment in-process, as ``cdk synth`` would (cdk.json's context)."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    from mlstack.app import build_app
    from mlstack.config import ENVIRONMENTS_DIR, load_environment

    context = json.loads((REPO / "cdk.json").read_text(encoding="utf-8"))["context"]
    config = load_environment(environment, environments_dir or ENVIRONMENTS_DIR)
    outdir.mkdir(parents=True, exist_ok=True)
    app = build_app(environments={environment: config}, outdir=str(outdir), context=context)
    app.synth()
    return outdir / f"assembly-{environment}"


def load(
    environment: str,
    *,
    cdk_out: Path | None = None,
    environments_dir: Path | None = None,
    synth_dir: Path | None = None,
    region: str = LOCAL_REGION,
) -> LocalAssembly:
    """The environment's resolved assembly: a fresh ``cdk_out`` one, else synthesized now.

    With ``environments_dir`` the app is always synthesized (into ``synth_dir`` or a temporary
    directory) from that directory's environment files.
    """
    started = time.perf_counter()
    cdk_out = cdk_out or REPO / "cdk.out"
    directory = None if environments_dir else fresh_assembly_dir(cdk_out, environment)
    synthesized = directory is None
    if directory is None:
        outdir = synth_dir or Path(tempfile.mkdtemp(prefix="mlstack-synth-"))
        directory = synthesize(environment, outdir, environments_dir)
    assembly = read(directory, environment, region=region)
    assembly.synthesized = synthesized
    assembly.seconds = time.perf_counter() - started
    return assembly


# --- reading -------------------------------------------------------------------------------------


def read(directory: Path, environment: str, *, region: str = LOCAL_REGION) -> LocalAssembly:
    """Resolve the stacks of the nested assembly ``directory`` (``cdk.out/assembly-<env>``)."""
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    templates: dict[str, dict[str, Any]] = {}
    asset_files: list[Path] = []
    for artifact in manifest.get("artifacts", {}).values():
        props = artifact.get("properties", {})
        if artifact.get("type") == "aws:cloudformation:stack":
            name = props.get("stackName") or artifact.get("displayName")
            templates[name] = json.loads((directory / props["templateFile"]).read_text("utf-8"))
        elif artifact.get("type") == "cdk:asset-manifest":
            asset_files.append(directory / props["file"])
    if not templates:
        raise AssemblyError(f"{directory}: no stacks in the assembly")
    resolver = Resolver(templates, region=region, account=LOCAL_ACCOUNT)

    images, file_assets = _assets(resolver, asset_files, region)

    lambdas: dict[str, LambdaFunction] = {}
    buckets: list[str] = []
    topics: list[str] = []
    groups: list[str] = []
    rules: list[EventRule] = []
    machines: list[tuple[str, str, dict[str, Any]]] = []
    for stack, template in templates.items():
        for logical_id, resource in template.get("Resources", {}).items():
            kind = resource.get("Type")
            props = resource.get("Properties", {})
            if kind == "AWS::S3::Bucket":
                buckets.append(resolver.ref(stack, logical_id))
            elif kind == "AWS::SNS::Topic":
                topics.append(resolver.ref(stack, logical_id))
            elif kind == "AWS::SageMaker::ModelPackageGroup":
                groups.append(str(resolver.resolve(stack, props["ModelPackageGroupName"])))
            elif kind == "AWS::StepFunctions::StateMachine":
                machines.append((stack, logical_id, resource))
            elif kind == "AWS::Events::Rule" and "EventPattern" in props:
                rules.append(
                    EventRule(
                        name=logical_id,
                        pattern=resolver.resolve(stack, props["EventPattern"]),
                        targets=tuple(
                            str(resolver.resolve(stack, t["Arn"])) for t in props.get("Targets", [])
                        ),
                    )
                )
            elif kind == "AWS::Lambda::Function":
                fn = _lambda_function(resolver, directory, stack, logical_id, resource, file_assets)
                lambdas[fn.arn] = fn
                lambdas[fn.name] = fn
    others, (stack, logical_id, resource) = _split_machines(resolver, environment, machines, rules)
    props = resource["Properties"]
    definition = _definition(resolver, stack, props)
    outputs = {
        name: {k: resolver.resolve(name, v.get("Value")) for k, v in t.get("Outputs", {}).items()}
        for name, t in templates.items()
    }
    return LocalAssembly(
        environment=environment,
        directory=directory,
        region=region,
        account=LOCAL_ACCOUNT,
        templates=templates,
        definition=definition,
        state_machine_name=resolver.attribute(stack, logical_id, "Name"),
        state_machine_arn=resolver.ref(stack, logical_id),
        state_machine_role_arn=str(resolver.resolve(stack, props.get("RoleArn", ""))),
        lambdas=lambdas,
        images=images,
        buckets=buckets,
        topics=topics,
        model_package_groups=groups,
        state_machines=others,
        event_rules=rules,
        outputs=outputs,
    )


def _assets(
    resolver: Resolver, asset_files: list[Path], region: str
) -> tuple[dict[str, Image], dict[str, str]]:
    """The image assets by URI, and the file assets (object key -> path relative to the
    assembly)."""
    images: dict[str, Image] = {}
    file_assets: dict[str, str] = {}  # object key -> asset path (relative to directory)
    for path in asset_files:
        assets = json.loads(path.read_text(encoding="utf-8"))
        for asset in assets.get("files", {}).values():
            for dest in asset.get("destinations", {}).values():
                file_assets[dest["objectKey"]] = asset["source"]["path"]
        for asset in assets.get("dockerImages", {}).values():
            source = asset["source"]
            for dest in asset.get("destinations", {}).values():
                repository = resolver.substitute(dest["repositoryName"])
                registry = f"{LOCAL_ACCOUNT}.dkr.ecr.{region}.amazonaws.com"
                uri = f"{registry}/{repository}:{dest['imageTag']}"
                images[uri] = Image(
                    uri=uri,
                    directory=(path.parent / source["directory"]).resolve(),
                    dockerfile=source.get("dockerFile", "Dockerfile"),
                )
    return images, file_assets


def _split_machines(
    resolver: Resolver,
    environment: str,
    machines: list[tuple[str, str, dict[str, Any]]],
    rules: list[EventRule],
) -> tuple[dict[str, StateMachine], tuple[str, str, dict[str, Any]]]:
    """The training workflow: the one no rule starts (where a schedule starts another one too,
    the drift monitor, the one the stack's ``StateMachineArn`` output names); and the others
    by ARN (those EventBridge rules start, and the drift monitor)."""
    started = {arn for rule in rules for arn in rule.targets}
    training = [m for m in machines if resolver.ref(m[0], m[1]) not in started]
    if len(training) > 1:
        named = {
            str(resolver.resolve(st, t["Outputs"]["StateMachineArn"]["Value"]))
            for st, t in resolver.templates.items()
            if "StateMachineArn" in t.get("Outputs", {})
        }
        training = [m for m in training if resolver.ref(m[0], m[1]) in named]
    if len(training) != 1:
        raise AssemblyError(
            f"environment {environment!r}: expected one training state machine, found "
            f"{len(training)}"
        )
    others = {
        resolver.ref(st, lid): StateMachine(
            name=resolver.attribute(st, lid, "Name"),
            arn=resolver.ref(st, lid),
            role_arn=str(resolver.resolve(st, res["Properties"].get("RoleArn", ""))),
            definition=_definition(resolver, st, res["Properties"]),
        )
        for st, lid, res in machines
        if (st, lid) != training[0][:2]
    }
    return others, training[0]


def _definition(resolver: Resolver, stack: str, props: Mapping[str, Any]) -> dict[str, Any]:
    if "DefinitionString" in props:
        text = resolver.resolve(stack, props["DefinitionString"])
        if not isinstance(text, str):
            raise AssemblyError("DefinitionString does not resolve to a string")
    elif "Definition" in props:
        text = json.dumps(resolver.resolve(stack, props["Definition"]))
    else:
        raise AssemblyError("the state machine has neither DefinitionString nor Definition")
    for key, value in (resolver.resolve(stack, props.get("DefinitionSubstitutions")) or {}).items():
        text = text.replace("${" + key + "}", str(value))
    definition: dict[str, Any] = json.loads(text)
    return definition


def _lambda_function(
    resolver: Resolver,
    directory: Path,
    stack: str,
    logical_id: str,
    resource: Mapping[str, Any],
    file_assets: Mapping[str, str],
) -> LambdaFunction:
    props = resource.get("Properties", {})
    asset_path = resource.get("Metadata", {}).get("aws:asset:path")
    if asset_path is None:  # no asset metadata: find the code's object key in the asset manifests
        s3_key = props.get("Code", {}).get("S3Key")
        asset_path = file_assets.get(s3_key) if isinstance(s3_key, str) else None
    if asset_path is None:
        raise AssemblyError(f"function {logical_id}: no code asset in the assembly")
    code_dir = (directory / asset_path).resolve()
    env = resolver.resolve(stack, props.get("Environment", {}).get("Variables", {}))
    return LambdaFunction(
        logical_id=logical_id,
        name=resolver.ref(stack, logical_id),
        arn=resolver.attribute(stack, logical_id, "Arn"),
        code_dir=code_dir,
        handler=str(props.get("Handler", "")),
        runtime=str(props.get("Runtime", "")),
        environment={k: str(v) for k, v in env.items()},
        timeout_seconds=int(props.get("Timeout", 3)),
        memory_mb=int(props.get("MemorySize", 128)),
    )


# --- resolving -----------------------------------------------------------------------------------

# Ref of these types is the resource's ARN (CloudFormation's documented return values).
_REF_IS_ARN = {
    "AWS::SNS::Topic",
    "AWS::StepFunctions::StateMachine",
    "AWS::SageMaker::Model",
    "AWS::SageMaker::EndpointConfig",
    "AWS::SageMaker::Endpoint",
}
_ARN_FORMATS = {
    "AWS::S3::Bucket": "arn:aws:s3:::{name}",
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{name}",
    "AWS::IAM::Policy": "arn:aws:iam::{account}:policy/{name}",
    "AWS::Lambda::Function": "arn:aws:lambda:{region}:{account}:function:{name}",
    "AWS::KMS::Key": "arn:aws:kms:{region}:{account}:key/{name}",
    "AWS::SNS::Topic": "arn:aws:sns:{region}:{account}:{name}",
    "AWS::SQS::Queue": "arn:aws:sqs:{region}:{account}:{name}",
    "AWS::Logs::LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}:*",
    "AWS::StepFunctions::StateMachine": "arn:aws:states:{region}:{account}:stateMachine:{name}",
    "AWS::SageMaker::Model": "arn:aws:sagemaker:{region}:{account}:model/{lower}",
    "AWS::SageMaker::EndpointConfig": (
        "arn:aws:sagemaker:{region}:{account}:endpoint-config/{lower}"
    ),
    "AWS::SageMaker::Endpoint": "arn:aws:sagemaker:{region}:{account}:endpoint/{lower}",
}
_NAME_PROPS = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::SageMaker::Model": "ModelName",
    "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
    "AWS::SageMaker::Endpoint": "EndpointName",
}


# Stand-in EC2 identifiers look like EC2's (a prefix, "-", 17 hex digits): SageMaker's VpcConfig
# takes nothing else (botocore's sagemaker model: SecurityGroupId and SubnetId are [-0-9a-zA-Z]+,
# at most 32 characters).
_EC2_ID_PREFIXES = {
    "AWS::EC2::SecurityGroup": "sg",
    "AWS::EC2::Subnet": "subnet",
    "AWS::EC2::VPC": "vpc",
}


class Resolver:
    """Resolves CloudFormation intrinsics across the stacks of one assembly to local values."""

    def __init__(self, templates: Mapping[str, Mapping[str, Any]], *, region: str, account: str):
        self.templates = templates
        self.region = region
        self.account = account
        self.pseudo: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
            "AWS::NotificationARNs": [],
        }

    def _resource(self, stack: str, logical_id: str) -> Mapping[str, Any]:
        resource = self.templates[stack].get("Resources", {}).get(logical_id)
        if resource is None:
            raise AssemblyError(f"stack {stack}: no resource {logical_id!r}")
        return resource

    def name(self, stack: str, logical_id: str) -> str:
        resource = self._resource(stack, logical_id)
        kind = resource["Type"]
        if kind in _EC2_ID_PREFIXES:
            digest = hashlib.sha1(f"{stack}/{logical_id}".encode()).hexdigest()[:17]
            return f"{_EC2_ID_PREFIXES[kind]}-{digest}"
        given = resource.get("Properties", {}).get(_NAME_PROPS.get(kind, ""))
        if given is not None:
            return str(self.resolve(stack, given))
        digest = hashlib.sha1(f"{stack}/{logical_id}".encode()).hexdigest()[:8]
        if kind == "AWS::KMS::Key":
            return str(_uuid_from(digest + stack + logical_id))
        base = f"{stack}-{logical_id}"
        if kind == "AWS::S3::Bucket":
            base = re.sub(r"[^a-z0-9-]", "-", base.lower())
            return f"{base[:54]}-{digest}"
        return f"{base[:55]}-{digest}"

    def ref(self, stack: str, logical_id: str) -> str:
        kind = self._resource(stack, logical_id)["Type"]
        if kind in _REF_IS_ARN:
            return self.attribute(stack, logical_id, "Arn")
        return self.name(stack, logical_id)

    def attribute(self, stack: str, logical_id: str, attr: str) -> str:
        kind = self._resource(stack, logical_id)["Type"]
        name = self.name(stack, logical_id)
        if attr in ("Arn", "TopicArn") or attr.endswith("Arn"):
            fmt = _ARN_FORMATS.get(kind)
            if fmt is None:
                service, resource_type = (part.lower() for part in kind.split("::")[1:3])
                fmt = f"arn:aws:{service}:{{region}}:{{account}}:{resource_type}/{{name}}"
            return fmt.format(
                region=self.region, account=self.account, name=name, lower=name.lower()
            )
        if attr in ("Name", "TopicName") or attr.endswith("Name"):
            return name
        if attr == "KeyId" or (attr, kind) == ("GroupId", "AWS::EC2::SecurityGroup"):
            return name
        if attr in ("DomainName", "RegionalDomainName"):
            return f"{name}.s3.amazonaws.com"
        return f"{name}.{attr}"

    def substitute(self, text: str, stack: str | None = None, extra: Mapping[str, Any] = {}) -> str:
        def repl(m: re.Match[str]) -> str:
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in extra:
                return str(extra[expr])
            if expr in self.pseudo:
                return str(self.pseudo[expr])
            if stack is None:
                raise AssemblyError(f"cannot resolve ${{{expr}}} outside a stack")
            if "." in expr:
                logical_id, attr = expr.split(".", 1)
                return self.attribute(stack, logical_id, attr)
            return self._ref_any(stack, expr)

        return re.sub(r"\$\{([^}]*)\}", repl, text)

    def _ref_any(self, stack: str, name: str) -> str:
        if name in self.pseudo:
            return str(self.pseudo[name])
        params = self.templates[stack].get("Parameters", {})
        if name in params:
            return str(params[name].get("Default", ""))
        return self.ref(stack, name)

    def resolve(self, stack: str, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(stack, v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref_any(stack, arg)
            if key == "Fn::GetAtt":
                logical_id, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attribute(stack, logical_id, attr)
            if key == "Fn::Join":
                sep, items = arg
                return str(sep).join(
                    str(self.resolve(stack, v)) for v in self.resolve(stack, items)
                )
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else arg
                return self.substitute(text, stack, self.resolve(stack, extra))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(stack, items)[int(self.resolve(stack, index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(stack, text)).split(sep)
            if key == "Fn::GetStackOutput":
                other = arg["StackName"]
                output = self.templates.get(other, {}).get("Outputs", {}).get(arg["OutputName"])
                if output is None:
                    raise AssemblyError(f"no output {arg['OutputName']} in stack {other}")
                return self.resolve(other, output["Value"])
            if key == "Fn::ImportValue":
                export = self.resolve(stack, arg)
                for other, template in self.templates.items():
                    for output in template.get("Outputs", {}).values():
                        name = output.get("Export", {}).get("Name")
                        if name is not None and self.resolve(other, name) == export:
                            return self.resolve(other, output["Value"])
                raise AssemblyError(f"no stack exports {export!r}")
            if key.startswith("Fn::"):
                raise AssemblyError(f"stack {stack}: {key} is not supported by the local run")
        return {k: self.resolve(stack, v) for k, v in value.items()}


def _uuid_from(text: str) -> str:
    h = hashlib.md5(text.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

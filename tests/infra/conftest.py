"""Shared fixtures: the whole app is synthesized once per test session."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from mlstack import app as mlstack_app
from mlstack.app import build_app
from mlstack.config import EnvironmentConfig, parse_environment
from mlstack.stacks import MlStackStage
from tests import once

REPO = Path(__file__).resolve().parents[2]
# What the release step (docs/deploying.md) puts into prod's config once a version is approved:
# the version of the environment's model package group the Serving endpoint serves.
RELEASED_VERSION = 1


def cdk_context() -> dict[str, Any]:
    """The context (feature flags) of cdk.json, as the CLI would hand them to the app."""
    context: dict[str, Any] = json.loads((REPO / "cdk.json").read_text())["context"]
    return context


def new_app(**kwargs: Any) -> App:
    """An app made as the product makes it (mlstack.app.new_app: aws-cdk-lib's validation with
    its reports kept), with cdk.json's context."""
    return mlstack_app.new_app(context=cdk_context(), **kwargs)


def new_stack(name: str = "Test") -> Stack:
    return Stack(new_app(), name)


class SynthesizedApp:
    """A synthesized app: its cloud assembly, shared by every file that reads the same app
    (tests/once.py), and, for the tests that read its constructs, the app object (the one
    that wrote the assembly when this process did, else the same app built again here)."""

    def __init__(self, directory: Path, build: Callable[[], App], app: App | None = None) -> None:
        self.directory = directory  # the cloud assembly (cdk.out); read it, never write it
        self._build = build
        self._app = app

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = self._build()
        return self._app

    @property
    def stages(self) -> dict[str, MlStackStage]:
        return {c.node.id: c for c in self.app.node.children if isinstance(c, MlStackStage)}

    def json(self, env: str, stack: str) -> dict[str, Any]:
        """The stack's template as synth wrote it (``stack``: the stage's attribute, e.g.
        "workflow", whose construct ID is "Workflow"); a new dict each call."""
        nested = self.directory / f"assembly-{env}"
        manifest = json.loads((nested / "manifest.json").read_text(encoding="utf-8"))
        wanted = f"{env}/{stack.capitalize()}"
        for artifact in manifest["artifacts"].values():
            if artifact["type"] == "aws:cloudformation:stack" and artifact["displayName"] == wanted:
                template_file = nested / artifact["properties"]["templateFile"]
                return json.loads(template_file.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        raise KeyError(f"no stack {wanted} in {nested}")

    def template(self, env: str, stack: str) -> Template:
        # The same JSON Template.from_stack reads from the assembly the synth wrote.
        return Template.from_json(self.json(env, stack))


def synthesized_app(
    tmp_path_factory: pytest.TempPathFactory,
    environments: Mapping[str, EnvironmentConfig] | None = None,
) -> SynthesizedApp:
    """The app of ``environments`` (every shipped one when None) with cdk.json's context,
    synthesized once per session (the four policy engines run; a finding raises)."""
    built: list[App] = []
    # A config is a frozen dataclass whose repr shows every field: the assembly's key.
    inputs = {name: repr(config) for name, config in (environments or {}).items()}

    def build() -> App:
        # Synthesized too: synth completes the constructs (a stack's dependencies on the stacks
        # whose values it reads are added then).
        app = build_app(
            new_app(outdir=str(tmp_path_factory.mktemp("cdk.out"))), environments=environments
        )
        app.synth()
        return app

    def synth(outdir: Path) -> Path:
        app = build_app(new_app(outdir=str(outdir)), environments=environments)
        app.synth()  # runs the four policy engines (docs/security.md); raises on a finding
        built.append(app)
        return outdir

    directory = once.per_session(tmp_path_factory, inputs, synth)
    return SynthesizedApp(directory, build, built[0] if built else None)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    return synthesized_app(tmp_path_factory)


def environment_file(name: str) -> dict[str, Any]:
    """A shipped environment as its file has it: the values a test expects in a template are
    ours, so they are read from here, not copied."""
    data: dict[str, Any] = json.loads((REPO / "environments" / f"{name}.json").read_text())
    return data


def released_config(name: str = "prod") -> EnvironmentConfig:
    """A shipped environment's config after the release step: it names an approved version."""
    data = json.loads((REPO / "environments" / f"{name}.json").read_text())
    data["endpoint"]["model_package_version"] = RELEASED_VERSION
    return parse_environment(name, data)


@pytest.fixture(scope="session")
def released(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    """prod after its first release: the same config plus an approved model package version."""
    return synthesized_app(tmp_path_factory, {"prod": released_config("prod")})


# The drift monitor's and retraining on drift's state machines (released prod; docs/monitoring.md).
MONITOR_MACHINES = ("DriftMonitor", "RetrainOnDrift")


def training_machine_id(template: dict[str, Any]) -> str:
    """The logical ID of the training workflow's state machine (not the release's)."""
    (machine,) = [
        k
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
        and not k.startswith(("Release", *MONITOR_MACHINES))
    ]
    return machine


def state_machine_definition(template: dict[str, Any], release: bool = False) -> dict[str, Any]:
    """The training workflow's definition (``release``: the release state machine's, which an
    EventBridge rule starts), tokens rendered as readable placeholders."""
    started = {
        target["Arn"]["Ref"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Events::Rule"
        for target in r["Properties"].get("Targets", [])
        if isinstance(target.get("Arn"), dict) and "Ref" in target["Arn"]
    }
    machines = [
        r
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
        and (k in started) == release
        and not k.startswith(MONITOR_MACHINES)
    ]
    assert len(machines) == 1
    return json.loads(render_tokens(machines[0]["Properties"]["DefinitionString"]))  # type: ignore[no-any-return]


PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
}


def render_tokens(value: Any) -> str:
    """Flatten Fn::Join/Ref/GetAtt/ImportValue into plausible literal strings (partition aws)."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return str(delimiter).join(render_tokens(p) for p in parts)
    if "Ref" in value:
        return PSEUDO.get(value["Ref"], f"ref-{value['Ref'].lower()}")
    if "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        if attribute == "Arn":
            return f"arn:aws:lambda:us-east-1:123456789012:function:{resource}"
        return f"{resource.lower()}-{attribute.lower()}"
    if "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for name, literal in PSEUDO.items():
            text = text.replace("${" + name + "}", literal)
        return str(text)
    if "Fn::Select" in value:
        index, items = value["Fn::Select"]
        if "Fn::Split" in items and items["Fn::Split"][1] == {"Ref": "AWS::StackId"}:
            stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/s/0000-stack-guid"
            return stack_id.split(items["Fn::Split"][0])[index]
    if "Fn::ImportValue" in value or "Fn::GetStackOutput" in value:
        reference = value.get("Fn::ImportValue") or value["Fn::GetStackOutput"]["OutputName"]
        name = render_tokens(reference)
        if "Arn" in name:
            return "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
        return "imported-bucket-name"
    raise AssertionError(f"unexpected token {value}")

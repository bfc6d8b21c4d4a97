"""The real CLI: `cdk synth` with no AWS credentials, then cfn-lint and asl-validator on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import REPO, state_machine_definition

ENVIRONMENTS = sorted(
    p.stem for p in (REPO / "environments").glob("*.json") if p.name != "schema.json"
)
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


def offline_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    env.update(
        CDK_DISABLE_CLI_TELEMETRY="true",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        # no shared credentials or config file either
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp / "no-config"),
        PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def cdk(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npx", "--no-install", "cdk", "--no-notices", *args],
        cwd=REPO,
        env=offline_env(tmp),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    out = tmp / "cdk.out"
    result = cdk(["synth", "--quiet", "--output", str(out)], tmp)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def templates(out: Path) -> list[Path]:
    return sorted(out.glob("assembly-*/*.template.json"))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_has_templates(cdk_out: Path, env: str) -> None:
    names = {p.name for p in (cdk_out / f"assembly-{env}").glob("*.template.json")}
    assert any(n.startswith(f"{env}Data") for n in names)
    assert any(n.startswith(f"{env}Workflow") for n in names)


def test_synth_reports_no_unacknowledged_nag_findings(cdk_out: Path) -> None:
    report = json.loads((cdk_out / "validation-report.json").read_text())
    violations = [v for r in report["pluginReports"] for v in r.get("violations", [])]
    assert violations == []


def test_templates_pass_cfn_lint(cdk_out: Path) -> None:
    paths = templates(cdk_out)
    assert len(paths) >= 2 * len(ENVIRONMENTS)
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "cfn-lint"), *map(str, paths)],
        cwd=REPO,  # picks up .cfnlintrc
        capture_output=True,
        text=True,
        timeout=300,
    )
    # cfn-lint exits 0 when clean, and with bit 2 set when there are errors (4: warnings only)
    assert result.returncode & 2 == 0, result.stdout[-4000:]
    assert result.returncode == 0, f"warnings not ignored in .cfnlintrc:\n{result.stdout[-4000:]}"


def workflow_template(out: Path, env: str) -> dict[str, Any]:
    (path,) = (out / f"assembly-{env}").glob(f"{env}Workflow*.template.json")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_state_machine_definition_passes_asl_validator(
    cdk_out: Path, env: str, tmp_path: Path
) -> None:
    definition = state_machine_definition(workflow_template(cdk_out, env))
    path = tmp_path / f"{env}.asl.json"
    path.write_text(json.dumps(definition, indent=2))
    result = subprocess.run(
        ["npx", "--no-install", "asl-validator", "--json-path", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_config_fails_synth_naming_environment_key_and_expectation(tmp_path: Path) -> None:
    envs = tmp_path / "environments"
    envs.mkdir()
    shutil.copy(REPO / "environments" / "dev.json", envs / "dev.json")
    config = json.loads((envs / "dev.json").read_text())
    config["training"]["instance_count"] = "two"
    (envs / "dev.json").write_text(json.dumps(config))
    out = str(tmp_path / "out")
    result = cdk(["synth", "--quiet", "--output", out, "-c", f"environments_dir={envs}"], tmp_path)
    assert result.returncode != 0
    assert "environment 'dev'" in result.stderr
    assert "'training.instance_count'" in result.stderr
    assert "expected an integer from 1 to 100" in result.stderr

"""Builds the CDK app: one stage per environment file, checked by cdk-nag's AwsSolutions pack."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from mlstack.config import ENVIRONMENTS_DIR, EnvironmentConfig, load_environments
from mlstack.stacks import MlStackStage


def build_app(
    app: App | None = None,
    *,
    environments: Mapping[str, EnvironmentConfig] | None = None,
    environments_dir: Path = ENVIRONMENTS_DIR,
    **app_kwargs: Any,
) -> App:
    """Add every environment's stage to ``app`` and register the AwsSolutions checks."""
    app = app or App(**app_kwargs)
    if environments is None:
        # `cdk synth -c environments_dir=<dir>` checks another set of environment files.
        override = app.node.try_get_context("environments_dir")
        environments = load_environments(Path(override) if override else environments_dir)
    for name, config in environments.items():
        MlStackStage(app, name, config=config)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def validation_failures(assembly_directory: Path) -> list[str]:
    """Unacknowledged findings of the validation plugins (cdk-nag) in a synthesized assembly.

    When the CDK CLI runs the app, the CDK reports plugin failures without failing the app's
    process, so the app checks the report itself and exits non-zero.
    """
    report_file = assembly_directory / "validation-report.json"
    if not report_file.is_file():
        return []
    report = json.loads(report_file.read_text(encoding="utf-8"))
    failures = []
    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            if violation.get("severity") not in ("error", "fatal"):
                continue
            for construct in violation.get("violatingConstructs", []):
                failures.append(f"{violation['ruleName']} at {construct.get('constructPath')}")
    return failures

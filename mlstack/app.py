"""Builds the CDK app: one stage per environment file, checked by four policy engines.

cdk-nag's AwsSolutions, NIST 800-53 rev 5 and HIPAA Security packs, and AWS Control Tower's
proactive controls as AWS Guard rules (cdklabs-cdk-validator-cfnguard, which runs cfn-guard on
the synthesized templates; mlstack/guard.py leaves out the rules no template's resource type
can match). Every finding is fixed or acknowledged on its construct with a
reason (docs/security.md); any other fails synth. aws-cdk-lib's own CloudFormation validation runs
too, its reports kept (mlstack/kept_validation.py, through :func:`new_app`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks

from mlstack.config import ENVIRONMENTS_DIR, EnvironmentConfig, load_environments
from mlstack.guard import ControlTowerGuardValidator
from mlstack.kept_reports import KeptNagPack
from mlstack.kept_validation import KeptCloudFormationValidation, validation_enabled
from mlstack.stacks import MlStackStage


def build_app(
    app: App | None = None,
    *,
    environments: Mapping[str, EnvironmentConfig] | None = None,
    environments_dir: Path = ENVIRONMENTS_DIR,
    **app_kwargs: Any,
) -> App:
    """Add every environment's stage to ``app`` and register the policy engines.

    Without ``app``, the app is :func:`new_app`'s (``app_kwargs`` are its props).
    """
    app = app or new_app(**app_kwargs)
    if environments is None:
        # `cdk synth -c environments_dir=<dir>` checks another set of environment files.
        override = app.node.try_get_context("environments_dir")
        environments = load_environments(Path(override) if override else environments_dir)
    for name, config in environments.items():
        MlStackStage(app, name, config=config)
    Validations.of(app).add_plugins(*policy_engines(app))
    return app


# The engines' reports kept between synths, keyed by what each report is computed from
# (mlstack/guard.py, mlstack/kept_reports.py, mlstack/kept_validation.py); `cdk synth -c
# policy_cache_dir=` (empty) runs every engine, and the built-in validation, every time.
POLICY_CACHE_DIR = Path.home() / ".cache" / "mlstack" / "policy-reports"


def kept_reports_dir(app: App, engine: str) -> Path | None:
    """Where ``engine``'s reports are kept for ``app``'s synth; ``None``: run it every time."""
    cache_dir = app.node.try_get_context("policy_cache_dir")
    cache = POLICY_CACHE_DIR if cache_dir is None else (Path(cache_dir) if cache_dir else None)
    return cache / engine if cache else None


def new_app(**app_kwargs: Any) -> App:
    """An ``App`` whose built-in CloudFormation validation keeps each template's report.

    aws-cdk-lib's built-in plugin is turned off (``builtin_cloud_formation_validation``) and
    the same validation is registered in its place, first, with its reports kept
    (mlstack/kept_validation.py). aws-cdk-lib's off switches are honoured:
    ``builtin_cloud_formation_validation=False`` and ``CDK_VALIDATION=false`` (which
    ``cdk synth --no-validation`` sets) register nothing. An ``App`` made otherwise keeps
    aws-cdk-lib's own plugin.
    """
    enabled = app_kwargs.pop("builtin_cloud_formation_validation", None) is not False
    app = App(builtin_cloud_formation_validation=False, **app_kwargs)
    if enabled and validation_enabled():
        kept = KeptCloudFormationValidation(
            cache_dir=kept_reports_dir(app, "cloudformation-validate")
        )
        Validations.of(app).add_plugins(kept)
    return app


def policy_engines(app: App) -> list[Any]:
    """The validation plugins every synth runs (docs/security.md)."""
    nag = kept_reports_dir(app, "cdk-nag")
    return [
        KeptNagPack(AwsSolutionsChecks(app), cache_dir=nag),
        KeptNagPack(NIST80053R5Checks(app), cache_dir=nag),
        KeptNagPack(HIPAASecurityChecks(app), cache_dir=nag),
        # AWS Control Tower's proactive controls (the Guard rules the plugin ships), each rule
        # run only on templates with a resource type it names (mlstack/guard.py).
        ControlTowerGuardValidator(cache_dir=kept_reports_dir(app, "cfn-guard")),
    ]


def validation_failures(assembly_directory: Path) -> list[str]:
    """Unacknowledged findings of the validation plugins in a synthesized assembly.

    When the CDK CLI runs the app, the CDK reports plugin failures without failing the app's
    process, so the app checks the report itself and exits non-zero.
    """
    report_file = assembly_directory / "validation-report.json"
    if not report_file.is_file():
        return []
    report = json.loads(report_file.read_text(encoding="utf-8"))
    failures = []
    for plugin in report.get("pluginReports", []):
        # A plugin that raised is reported with no violations, only its error: that fails too.
        error = (plugin.get("metadata") or {}).get("error")
        if error:
            failures.append(f"{plugin.get('pluginName')}: the plugin failed: {error}")
        for violation in plugin.get("violations", []):
            # The compliance packs report some rules as warnings: those fail synth too.
            if violation.get("severity") not in ("warning", "error", "fatal"):
                continue
            for construct in violation.get("violatingConstructs", []):
                path = construct.get("constructPath") or construct.get(
                    "cloudFormationResource", {}
                ).get("logicalId")
                failures.append(f"{plugin.get('pluginName')}: {violation['ruleName']} at {path}")
    return failures

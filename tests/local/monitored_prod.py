"""prod as released with its monitoring: an approved model package version (so the Serving stack
has the endpoint that captures data, and the Workflow stack the DriftMonitor) and
``monitoring.retrain_on_drift`` with a quality threshold (RetrainOnDrift on both alarms), as
tests/infra/test_infra_retrain_on_drift.py configures it. Synthesized once per test session
(tests/once.py) for the JSONata differential test and the IAM proof of the two monitoring state
machines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.local import assembly as assembly_mod
from tests import once

REPO = Path(__file__).resolve().parents[2]
RELEASED_VERSION = 1
MONITORING = {"retrain_on_drift": True, "quality_threshold": 0.8}


def monitored_prod_config() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO / "environments" / "prod.json").read_text())
    data["endpoint"]["model_package_version"] = RELEASED_VERSION
    data["monitoring"] = MONITORING
    return data


def monitored_prod(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cloud assembly directory of monitored prod."""
    config = monitored_prod_config()

    def synthesize(directory: Path) -> Path:
        environments = directory / "environments"
        environments.mkdir(parents=True)
        (environments / "prod.json").write_text(json.dumps(config))
        return assembly_mod.synthesize("prod", directory / "cdk.out", environments)

    return once.per_session(tmp_path_factory, {"monitored prod": config}, synthesize)


def monitored_assembly(tmp_path_factory: pytest.TempPathFactory) -> assembly_mod.LocalAssembly:
    return assembly_mod.read(monitored_prod(tmp_path_factory), "prod")

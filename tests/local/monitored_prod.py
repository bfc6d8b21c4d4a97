"""prod as released with its monitoring: an approved model package version (so the Serving stack
has the endpoint that captures data, and the Workflow stack the DriftMonitor) and
``monitoring.retrain_on_drift`` with a quality threshold (RetrainOnDrift on both alarms), as
tests/infra/test_infra_retrain_on_drift.py configures it. Synthesized once per test session
for the JSONata differential test and the IAM proof of the two monitoring state machines."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from mlstack.local import assembly as assembly_mod

REPO = Path(__file__).resolve().parents[2]
RELEASED_VERSION = 1
MONITORING = {"retrain_on_drift": True, "quality_threshold": 0.8}

_lock = threading.Lock()
_synthesized: dict[str, Path] = {}


def monitored_prod_config() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO / "environments" / "prod.json").read_text())
    data["endpoint"]["model_package_version"] = RELEASED_VERSION
    data["monitoring"] = MONITORING
    return data


def monitored_prod(tmp: Path) -> Path:
    """The cloud assembly directory of monitored prod (synthesized under ``tmp`` the first
    time in this process)."""
    with _lock:
        if "prod" not in _synthesized:
            environments = tmp / "environments"
            environments.mkdir(parents=True)
            (environments / "prod.json").write_text(json.dumps(monitored_prod_config()))
            _synthesized["prod"] = assembly_mod.synthesize("prod", tmp / "cdk.out", environments)
        return _synthesized["prod"]


def monitored_assembly(tmp: Path) -> assembly_mod.LocalAssembly:
    return assembly_mod.read(monitored_prod(tmp), "prod")

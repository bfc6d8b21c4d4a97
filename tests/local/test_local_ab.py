"""A/B in the release, locally, with a prod-like A/B config (dev with ``deploy.candidate_weight``
0.1): the live configuration's Candidate becomes Live only when its version's gate metric
(validation:rmse, ``less_than_or_equal``) is at least as good as the Live version's; otherwise
the Live model stays and the candidate is dropped. Version 1 comes from a real local run (its
rmse measured by the training job); versions 2-4 are registered beside it with known rmse
values (the same model artifact) and released as an approval releases them."""

from __future__ import annotations

import io
import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli.local_registry import RegistryFile
from mlstack.constructs import state_names as sn
from mlstack.local import assembly as assembly_mod
from mlstack.local.account import LocalAccount
from mlstack.local.runner import RunOptions, RunReport, format_summary, run
from mlstack.local.ui import Reporter
from tests import programs
from tests.local.conftest import LOCAL_RUN_ROWS

REPO = Path(__file__).resolve().parents[2]
GROUP = "mlstack-dev"
ENDPOINT = "mlstack-dev-live"


def ab_environments(tmp: Path) -> Path:
    envs = tmp / "environments"
    shutil.copytree(REPO / "environments", envs)
    config = json.loads((envs / "dev.json").read_text())
    config["deploy"]["candidate_weight"] = 0.1
    (envs / "dev.json").write_text(json.dumps(config))
    return envs


def registry(workdir: Path) -> dict[str, Any]:
    account = LocalAccount.of(workdir, "dev")
    return json.loads((account.directory / "sagemaker" / "registry.json").read_text())


def variants(workdir: Path) -> dict[str, int]:
    """The live configuration's variant -> the version its model serves ('mlstack-dev-v<N>-')."""
    saved = registry(workdir)
    config_name = saved["endpoints"][ENDPOINT]["config_name"]
    config = saved["endpoint_configs"][config_name.lower()]
    return {
        v["VariantName"]: int(re.match(r"mlstack-dev-v(\d+)-", v["ModelName"]).group(1))  # type: ignore[union-attr]
        for v in config["ProductionVariants"]
    }


def register_and_release(
    workdir: Path, cdk_out: Path, rmse: float, name: str
) -> tuple[int, RunReport]:
    """Register a version of version 1's model with ``rmse`` as its gate value, Approved (the
    event waits in the account as after `mlstack local approve`), and run the release."""
    path = LocalAccount.of(workdir, "dev").directory / "sagemaker" / "registry.json"
    reg = RegistryFile(path)
    first = next(p for p in reg.model_packages.values() if p["ModelPackageVersion"] == 1)
    metadata = {**first["CustomerMetadataProperties"], "gate_value": json.dumps(rmse)}
    arn = reg.create_model_package(
        {
            "ModelPackageGroupName": GROUP,
            "InferenceSpecification": first["InferenceSpecification"],
            "ModelMetrics": first["ModelMetrics"],
            "ModelApprovalStatus": "Approved",
            "CustomerMetadataProperties": metadata,
        }
    )["ModelPackageArn"]
    pending = reg.saved.setdefault("pending_events", {})
    for kind, detail in reg.events:
        pending[str(uuid.uuid4())] = {"detail-type": kind, "detail": detail}
    reg._save_registry()
    report = run(
        RunOptions(
            environment="dev", workdir=workdir, cdk_out=cdk_out, release_only=True, name=name
        ),
        Reporter(out=io.StringIO()),
    )
    return int(arn.rsplit("/", 1)[1]), report


def release_output(report: RunReport) -> dict[str, Any]:
    (release,) = report.releases
    assert release["status"] == "SUCCEEDED", release["cause"]
    return release


@pytest.fixture(scope="module")
def ab_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("ab")
    cdk_out = tmp / "cdk.out"
    assembly_mod.synthesize("dev", cdk_out, ab_environments(tmp))
    workdir = tmp / "work"
    # The programs forked with their libraries imported (tests/programs.py).
    with pytest.MonkeyPatch.context() as mp, programs.forked_python():
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        first = run(
            RunOptions(
                environment="dev",
                rows=LOCAL_RUN_ROWS,
                workdir=workdir,
                cdk_out=cdk_out,
                name="ab-run-1",
            ),
            Reporter(out=io.StringIO()),
        )
        assert first.ok, first.failure_reason
        v1 = next(p for p in registry(workdir)["model_packages"].values())
        rmse1 = float(json.loads(v1["CustomerMetadataProperties"]["gate_value"]))
        steps: dict[str, Any] = {"first": first, "rmse1": rmse1, "v1": v1}
        steps["after1"] = variants(workdir)
        # v2 is worse than v1 (higher rmse), v3 better, v4 anything.
        for version, rmse in ((2, rmse1 * 2 + 1), (3, rmse1 / 2), (4, rmse1)):
            number, report = register_and_release(workdir, cdk_out, rmse, f"ab-release-{version}")
            assert number == version
            steps[f"release{version}"] = release_output(report)
            steps[f"after{version}"] = variants(workdir)
            steps[f"summary{version}"] = format_summary(report)
    return steps


def test_the_registered_version_carries_the_gate_metric(ab_runs: dict[str, Any]) -> None:
    metadata = ab_runs["v1"]["CustomerMetadataProperties"]
    assert metadata["gate_metric"] == "validation:rmse"
    # The value the training job reported for the gate's metric.
    (job,) = ab_runs["first"].training_jobs
    assert json.loads(metadata["gate_value"]) == pytest.approx(job["metrics"]["validation:rmse"])


def test_the_first_release_creates_the_endpoint_with_both_variants(
    ab_runs: dict[str, Any],
) -> None:
    (release,) = ab_runs["first"].releases
    assert release["output"]["ab"]["decision"] == "none"
    assert sn.READ_LIVE_VARIANTS not in release["states"]
    assert ab_runs["after1"] == {"Live": 1, "Candidate": 1}


def test_a_candidate_as_good_as_live_is_promoted(ab_runs: dict[str, Any]) -> None:
    # Release 2: Live and Candidate are both version 1 (equal rmse passes <=).
    ab = ab_runs["release2"]["output"]["ab"]
    assert ab["decision"] == "promoted", ab
    assert ab_runs["after2"] == {"Live": 1, "Candidate": 2}


def test_a_worse_candidate_is_dropped_and_live_stays(ab_runs: dict[str, Any]) -> None:
    # Release 3: the candidate (version 2, rmse 2x+1) against Live (version 1).
    release = ab_runs["release3"]
    ab = release["output"]["ab"]
    assert ab["decision"] == "kept live", ab
    assert "candidate version 2" in ab["reason"] and "live version 1" in ab["reason"]
    assert sn.KEEP_LIVE in release["states"] and sn.PROMOTE_CANDIDATE not in release["states"]
    assert ab_runs["after3"] == {"Live": 1, "Candidate": 3}
    assert f"  A/B               kept live: {ab['reason']}" in ab_runs["summary3"]


def test_a_better_candidate_is_promoted_to_live(ab_runs: dict[str, Any]) -> None:
    # Release 4: the candidate (version 3, rmse / 2) against Live (version 1).
    release = ab_runs["release4"]
    ab = release["output"]["ab"]
    assert ab["decision"] == "promoted", ab
    assert "candidate version 3" in ab["reason"] and "live version 1" in ab["reason"]
    assert sn.PROMOTE_CANDIDATE in release["states"]
    assert ab_runs["after4"] == {"Live": 3, "Candidate": 4}

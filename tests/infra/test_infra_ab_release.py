"""A/B in prod's release (deploy.candidate_weight 0.1, gate validation:rmse less_than_or_equal):
the rendered definition executed with stand-in task results. The live configuration's
Candidate becomes Live only when its version's gate value passes the gate's comparison against
the Live version's; otherwise the Live model stays and the candidate is dropped; a version
without a comparable value is no evidence."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.constructs import state_names as sn
from mlstack.local.asl import Interpreter, StatesError, TaskCall
from mlstack.local.intrinsics import evaluate as evaluate_intrinsic
from tests.infra.conftest import SynthesizedApp, state_machine_definition

GROUP_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlstack-prod"
EVENT = {
    "detail-type": "SageMaker Model Package State Change",
    "source": "aws.sagemaker",
    "detail": {
        "ModelPackageGroupName": "mlstack-prod",
        "ModelPackageVersion": 3,
        "ModelPackageArn": f"{GROUP_ARN}/3",
        "ModelApprovalStatus": "Approved",
    },
}
LIVE_MODEL = "mlstack-prod-v1-0a1b2c3d-0"
CANDIDATE_MODEL = "mlstack-prod-v2-4e5f6a7b-0"


class StandIns:
    """Task results: the endpoint serves LIVE_MODEL (v1) and CANDIDATE_MODEL (v2); each version's
    metadata from ``metadata``; what the update's new configuration holds."""

    def __init__(self, metadata: dict[int, dict[str, str]], live: str = LIVE_MODEL) -> None:
        self.metadata = {3: gate(0.3), **metadata}  # 3: the released version
        self.live = live
        self.described: list[str] = []
        self.variants: list[dict[str, Any]] = []

    def __call__(self, call: TaskCall) -> Any:
        action = call.resource.rsplit(":", 1)[-1]
        p = call.parameters
        if action == "describeModelPackage":
            arn = p["ModelPackageName"]
            self.described.append(arn)
            version = int(arn.rsplit("/", 1)[1])
            if version not in self.metadata:
                raise StatesError("SageMaker.ValidationException", f"{arn} does not exist.")
            return {
                "ModelPackageArn": arn,
                "ModelPackageVersion": version,
                "ModelApprovalStatus": "Approved",
                "InferenceSpecification": {
                    "Containers": [{"Image": "image", "ModelDataUrl": "s3://b/m.tar.gz"}]
                },
                "CustomerMetadataProperties": {"run_id": "r", **self.metadata[version]},
            }
        if action == "describeEndpoint":
            return {
                "EndpointName": "mlstack-prod-live",
                "EndpointConfigName": f"{CANDIDATE_MODEL}-0",
                "EndpointStatus": "InService",
            }
        if action == "describeEndpointConfig":
            assert p["EndpointConfigName"] == f"{CANDIDATE_MODEL}-0"
            return {
                "ProductionVariants": [
                    {"VariantName": "Live", "ModelName": self.live},
                    {"VariantName": "Candidate", "ModelName": CANDIDATE_MODEL},
                ]
            }
        if action == "createModel":
            return {"ModelArn": f"arn:aws:sagemaker:r:1:model/{p['ModelName']}"}
        if action == "createEndpointConfig":
            self.variants = p["ProductionVariants"]
            name = p["EndpointConfigName"]
            return {"EndpointConfigArn": f"arn:aws:sagemaker:r:1:endpoint-config/{name}"}
        return {}


@pytest.fixture(scope="module")
def release(synthesized: SynthesizedApp) -> dict[str, Any]:
    return state_machine_definition(synthesized.json("prod", "workflow"), release=True)


def gate(rmse: float) -> dict[str, str]:
    return {"gate_metric": "validation:rmse", "gate_value": str(rmse)}


def execute(release: dict[str, Any], stand_ins: StandIns) -> Any:
    # The update never reaches InService on the new configuration here: the decision and the
    # new configuration are what these tests read.
    result = Interpreter(release, stand_ins, time_scale=0).execute(EVENT, name="release")
    return result


def live_and_candidate(stand_ins: StandIns) -> dict[str, str]:
    return {v["VariantName"]: v["ModelName"] for v in stand_ins.variants}


def decision(result: Any) -> dict[str, Any]:
    names = [h.name for h in result.history]
    assert sn.READ_LIVE_VARIANTS in names
    (state,) = [
        h
        for h in result.history
        if h.name in (sn.PROMOTE_CANDIDATE, sn.KEEP_LIVE, sn.KEEP_LIVE_UNMEASURED)
    ]
    return {"state": state.name}


def test_a_candidate_with_a_lower_rmse_is_promoted(release: dict[str, Any]) -> None:
    stand_ins = StandIns({1: gate(0.5), 2: gate(0.4)})
    result = execute(release, stand_ins)
    assert decision(result)["state"] == sn.PROMOTE_CANDIDATE
    # The versions described: the released one, then Live's and Candidate's from their models.
    assert stand_ins.described == [f"{GROUP_ARN}/3", f"{GROUP_ARN}/1", f"{GROUP_ARN}/2"]
    variants = live_and_candidate(stand_ins)
    assert variants["Live"] == CANDIDATE_MODEL
    assert variants["Candidate"].startswith("mlstack-prod-v3-")


def test_a_candidate_with_a_higher_rmse_is_dropped(release: dict[str, Any]) -> None:
    stand_ins = StandIns({1: gate(0.4), 2: gate(0.5)})
    result = execute(release, stand_ins)
    assert decision(result)["state"] == sn.KEEP_LIVE
    variants = live_and_candidate(stand_ins)
    assert variants["Live"] == LIVE_MODEL
    assert variants["Candidate"].startswith("mlstack-prod-v3-")


def test_an_equal_rmse_passes_the_gates_comparison(release: dict[str, Any]) -> None:
    # less_than_or_equal: as good as Live is good enough.
    stand_ins = StandIns({1: gate(0.4), 2: gate(0.4)})
    assert decision(execute(release, stand_ins))["state"] == sn.PROMOTE_CANDIDATE


def accuracy(value: float) -> dict[str, str]:
    """A table version's gate (the multiclass default: higher is better)."""
    return {
        "gate_metric": "evaluation:accuracy",
        "gate_value": str(value),
        "gate_comparison": "greater_than",
    }


@pytest.mark.parametrize(
    ("live", "candidate", "state"),
    [(0.8, 0.9, sn.PROMOTE_CANDIDATE), (0.9, 0.8, sn.KEEP_LIVE), (0.9, 0.9, sn.KEEP_LIVE)],
)
def test_a_table_versions_are_compared_by_their_own_gates_comparison(
    release: dict[str, Any], live: float, candidate: float, state: str
) -> None:
    # prod's deploy.comparison is less_than_or_equal (for its RMSE); a table's accuracy gate is
    # greater_than, and the versions say so: the higher accuracy wins, a tie keeps Live.
    stand_ins = StandIns({1: accuracy(live), 2: accuracy(candidate)})
    assert decision(execute(release, stand_ins))["state"] == state


@pytest.mark.parametrize(
    "metadata",
    [
        {1: {}, 2: gate(0.1)},  # Live's version registered without a gate value
        {1: gate(0.5), 2: {"gate_metric": "validation:mae", "gate_value": "0.1"}},  # not comparable
        {2: gate(0.1)},  # Live's model is no release's version
    ],
)
def test_without_comparable_evidence_live_stays(
    release: dict[str, Any], metadata: dict[int, dict[str, str]]
) -> None:
    stand_ins = StandIns(metadata)
    result = execute(release, stand_ins)
    assert decision(result)["state"] == sn.KEEP_LIVE_UNMEASURED
    assert live_and_candidate(stand_ins)["Live"] == LIVE_MODEL


def test_a_model_not_named_as_a_release_is_no_evidence(release: dict[str, Any]) -> None:
    stand_ins = StandIns({1: gate(0.5), 2: gate(0.1)}, live="mlstack-prod-abc")
    result = execute(release, stand_ins)
    assert decision(result)["state"] == sn.KEEP_LIVE_UNMEASURED
    assert live_and_candidate(stand_ins)["Live"] == "mlstack-prod-abc"


def test_only_prod_reads_the_live_variants(synthesized: SynthesizedApp) -> None:
    dev = state_machine_definition(synthesized.json("dev", "workflow"), release=True)
    assert sn.READ_LIVE_VARIANTS not in dev["States"]


def test_the_registration_keeps_the_gate_metric_and_value(synthesized: SynthesizedApp) -> None:
    states = state_machine_definition(synthesized.json("prod", "workflow"))["States"]
    metadata = states[sn.DESCRIBE_VERSION]["Parameters"]["common"]
    # The gate that passed (prod's validation:rmse on the seeder, a table's own on a table).
    assert metadata["gate_metric.$"] == "$.gate.metric"
    assert metadata["gate_comparison.$"] == "$.gate.comparison"
    assert states[sn.DESCRIBE_TABLE_VERSION]["Parameters"]["common"] == {
        **metadata,
        "schema_uri.$": "$.dataset.schema_uri",
    }
    # The number's text: a CustomerMetadataValue allows digits, '.', '-', '+' and letters, no
    # brackets (botocore's sagemaker model), and the A/B decision reads it with StringToJson.
    assert metadata["gate_value.$"] == "States.Format('{}', $.gate.values[0])"
    value = evaluate_intrinsic(metadata["gate_value.$"], {"gate": {"values": [0.0976949]}}, {})
    assert value == "0.0976949"

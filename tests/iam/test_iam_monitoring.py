"""The IAM proof of monitored prod's two monitoring state machines (issue #21): the DriftMonitor
and RetrainOnDrift, their JSONata states run by local mode's interpreter (tests/iam/monitoring.py
says what ran). Every recorded call is evaluated against the synthesized policies (identity, key,
bucket, topic); the reverse, every action their principals are granted is exercised or listed in
UNEXERCISED with the call that needs it."""

from __future__ import annotations

import pytest

from tests.iam.access import TLS, Call
from tests.iam.evaluator import SynthesizedPolicies
from tests.iam.monitoring import Monitored
from tests.iam.test_iam_proof import unexercised, unique

# Granted actions no recorded run exercises, by principal kind, each with the call that needs it.
UNEXERCISED = {
    ("monitor-machine", "sagemaker:StopProcessingJob"): (
        "Step Functions stops the .sync monitor job when the execution is stopped or times out "
        "(Step Functions: 'Run a Job (.sync)'; its SageMaker policy lists StopProcessingJob)"
    ),
    ("monitor-job", "s3:AbortMultipartUpload"): (
        "SageMaker uploads a large report in parts and aborts a failed upload"
    ),
}


@pytest.fixture(scope="module")
def policies(monitored: Monitored) -> SynthesizedPolicies:
    return SynthesizedPolicies(monitored.log.assembly)


def kinds(m: Monitored) -> dict[str, str]:
    """Role ARN -> kind, for the two machines' principals."""
    found = {
        m.monitor.role_arn: "monitor-machine",
        m.job_role: "monitor-job",
        m.retrain.role_arn: "retrain-machine",
    }
    for call in m.log.calls:
        if call.action == "states:StartExecution" and call.resource == m.monitor.arn:
            found[call.principal] = "monitor-scheduler"
        if call.action == "states:StartExecution" and call.resource == m.retrain.arn:
            found[call.principal] = "retrain-events"
    return found


def actions(m: Monitored) -> dict[str, set[str]]:
    by_kind: dict[str, set[str]] = {}
    roles = kinds(m)
    for call in m.log.calls:
        by_kind.setdefault(roles.get(call.principal, call.principal), set()).add(call.action)
    return by_kind


def test_every_path_of_both_machines_ran(monitored: Monitored) -> None:
    paths = monitored.paths
    assert paths["monitor captured"][-4:] == [
        "Monitor endpoint",
        "Read metrics",
        "Publish metrics",
        "Monitored",
    ]
    assert paths["monitor quiet"][-1] == "No captured data"
    assert "Monitor endpoint" not in paths["monitor quiet"]
    assert paths["monitor failing"][-2:] == ["Notify monitor failure", "Monitor failed"]
    assert paths["retrain outside"][-2:] == ["Start retraining", "Retraining started"]
    assert paths["retrain inside"][-1] == "Cooling down"
    assert "Start retraining" not in paths["retrain inside"]
    assert paths["retrain exists"][-2:] == ["Start retraining", "Cooling down"]
    assert paths["retrain fails"][-2:] == ["Notify retrain failure", "Retrain failed"]


def test_the_proof_covers_both_machines_principals(monitored: Monitored) -> None:
    # The monitor's state machine and job roles, the scheduler's role, retraining's state
    # machine role and its rule's role each made the calls of their grants.
    found = actions(monitored)
    assert set(kinds(monitored).values()) <= set(found)
    assert {
        "s3:ListBucket",
        "sagemaker:CreateProcessingJob",
        "sagemaker:DescribeProcessingJob",
        "iam:PassRole",
        "s3:GetObject",
        "kms:Decrypt",
        "cloudwatch:PutMetricData",
        "sns:Publish",
        "kms:GenerateDataKey",
    } <= found["monitor-machine"]
    assert {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:CreateGrant",
        "ecr:BatchGetImage",
        "logs:PutLogEvents",
    } <= found["monitor-job"]
    assert found["monitor-scheduler"] == {"states:StartExecution"}
    assert found["retrain-events"] == {"states:StartExecution"}
    assert {
        "states:ListExecutions",
        "states:StartExecution",
        "sns:Publish",
        "kms:GenerateDataKey",
    } <= found["retrain-machine"]
    # The alarms notify the encrypted failure topic.
    assert {"sns:Publish", "kms:GenerateDataKey"} <= found["cloudwatch.amazonaws.com"]


def test_every_recorded_call_is_allowed(
    monitored: Monitored, policies: SynthesizedPolicies
) -> None:
    names = policies.role_names
    missing = [
        f"{names.get(d.call.principal, d.call.principal)} may not {d.call} "
        f"({d.call.why}): {d.missing}"
        for d in map(policies.decide, unique(monitored.log.calls))
        if not d.allowed
    ]
    assert missing == [], "\n".join(missing)


def test_every_grant_is_exercised_or_explained(
    monitored: Monitored, policies: SynthesizedPolicies
) -> None:
    found = unexercised(monitored, policies, kinds(monitored))
    assert {k: v for k, v in found.items() if k not in UNEXERCISED} == {}
    assert set(UNEXERCISED) - set(found) == set()  # every explanation is still needed


def test_metrics_go_to_the_environments_namespace_only(
    monitored: Monitored, policies: SynthesizedPolicies
) -> None:
    (put,) = {c for c in monitored.log.calls if c.action == "cloudwatch:PutMetricData"
              and c.principal == monitored.monitor.role_arn}  # fmt: skip
    assert put.context_map["cloudwatch:namespace"] == "mlstack/prod"
    assert policies.decide(put).allowed
    for namespace in ("AWS/SageMaker", "mlstack/dev"):
        other = Call(
            put.principal, put.action, put.resource, (("cloudwatch:namespace", namespace),)
        )
        assert not policies.decide(other).allowed, namespace


def test_the_monitor_reads_only_metric_data_and_its_job_writes_only_reports(
    monitored: Monitored, policies: SynthesizedPolicies
) -> None:
    m = monitored
    (bucket,) = m.log.bucket_keys
    tls = tuple(TLS.items())
    (read,) = {c.resource for c in m.log.calls if c.action == "s3:GetObject"
               and c.principal == m.monitor.role_arn}  # fmt: skip
    assert read.endswith("/metric_data.json") and "/monitoring/" in read
    for key in ("monitoring/x/report.json", "data-capture/x/y.jsonl", "models/x/model.tar.gz"):
        call = Call(m.monitor.role_arn, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}", tls)
        assert not policies.decide(call).allowed, key
    writes = {c.resource for c in m.log.calls if c.action == "s3:PutObject"
              and c.principal == m.job_role}  # fmt: skip
    assert writes and all("/monitoring/" in w for w in writes)
    for key in ("baselines/latest/feature_baseline.json", "releases/v1/model.tar.gz"):
        call = Call(m.job_role, "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}", tls)
        assert not policies.decide(call).allowed, key


def test_retraining_may_start_the_training_workflow_only(
    monitored: Monitored, policies: SynthesizedPolicies
) -> None:
    m = monitored
    workflow = m.log.assembly.state_machine_arn
    starts = {c for c in m.log.calls if c.action == "states:StartExecution"
              and c.principal == m.retrain.role_arn}  # fmt: skip
    assert {c.resource for c in starts} == {workflow}
    for other in (m.monitor.arn, m.retrain.arn):
        assert not policies.decide(Call(m.retrain.role_arn, "states:StartExecution", other)).allowed
    # The scheduler's role starts the monitor only.
    (scheduler,) = {p for p, k in kinds(m).items() if k == "monitor-scheduler"}
    assert not policies.decide(Call(scheduler, "states:StartExecution", workflow)).allowed

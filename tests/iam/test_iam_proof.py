"""Offline proof that the synthesized IAM is sufficient and no wider than the workflow needs.

Every call recorded for dev's and prod's workflow (training, tuning, deploy create and update;
see conftest.py) is evaluated against the policies that decide it: the principal's identity
policies and, where they apply, the key policy, the bucket policy and the topic policy. The
reverse: every identity-policy action of the workflow's principals that no recorded call
exercised must be listed in UNEXERCISED with the call that needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.iam.access import Call
from tests.iam.conftest import Recorded
from tests.iam.evaluator import AwsStatement, SynthesizedPolicies
from tests.iam.monitoring import Monitored

ENVIRONMENTS = ("dev", "prod")

# Actions the recorded runs do not exercise, by principal kind, each with the call that needs it.
# Each statement in mlstack/constructs says the same beside the grant.
UNEXERCISED = {
    ("state-machine", "sagemaker:StopTrainingJob"): (
        "Step Functions stops a .sync training job when the execution is stopped or times out "
        "(Step Functions: 'Run a Job (.sync)'; its SageMaker policy lists StopTrainingJob)"
    ),
    ("state-machine", "sagemaker:StopTransformJob"): ("the same for a .sync transform job"),
    ("state-machine", "sagemaker:StopProcessingJob"): (
        "the same for the .sync processing jobs (Evaluate model, Baseline data)"
    ),
    ("state-machine", "sagemaker:StopHyperParameterTuningJob"): ("the same for a .sync tuning job"),
    ("state-machine", "states:StopExecution"): (
        "a failing Distributed Map stops its running child executions (Step Functions: 'IAM "
        "policies for using Distributed Map states' grants it with StartExecution)"
    ),
    ("execution", "s3:AbortMultipartUpload"): (
        "SageMaker uploads a large model or transform output in parts and aborts a failed upload"
    ),
    ("seed", "s3:AbortMultipartUpload"): (
        "lambda/seed aborts its multipart upload when a part fails (datasets over 5 MiB)"
    ),
    ("seed", "kms:Decrypt"): (
        "CompleteMultipartUpload of an SSE-KMS object decrypts the data key (S3 user guide, "
        "'Uploading with multipart upload and SSE-KMS'); the seeder uses multipart above 5 MiB"
    ),
}


def principals(recorded: Recorded) -> dict[str, str]:
    """Role ARN -> kind, for the workflow's principals."""
    log = recorded.log
    kinds = {log.assembly.state_machine_role_arn: "state-machine", log.execution_role: "execution"}
    for machine in log.assembly.state_machines.values():
        kinds[machine.role_arn] = "release"
    for call in log.calls:
        if call.action == "states:StartExecution" and call.principal not in kinds:
            kinds[call.principal] = "scheduler"
        if "seeding function" in call.why:
            kinds[call.principal] = "seed"
        if "endpoint clean-up" in call.why:
            kinds[call.principal] = "cleanup"
        if "model package clean-up" in call.why:
            kinds[call.principal] = "registry-cleanup"
    return kinds


@pytest.fixture(scope="module")
def policies(recorded: dict[str, Recorded]) -> dict[str, SynthesizedPolicies]:
    return {env: SynthesizedPolicies(r.log.assembly) for env, r in recorded.items()}


def unique(calls: list[Call]) -> list[Call]:
    return list(dict.fromkeys(calls))


def test_every_path_ran(recorded: dict[str, Recorded]) -> None:
    for env, r in recorded.items():
        create, update, tuning = (
            r.paths[k] for k in ("deploy-create release", "deploy-update release", "tuning")
        )
        assert "Create endpoint" in create and "Update endpoint" not in create, env
        assert "Update endpoint" in update and "Create endpoint" not in update, env
        assert r.paths["release failure"][-2:] == ["Notify release failure", "Release failed"]
        assert "Register model" in r.paths["deploy-create"], env
        for run in ("deploy-create", "deploy-update", "table"):
            states = r.paths[run]
            assert states.index("Release model artifact") < states.index("Register model"), env
        assert "Register model" in r.paths["deploy-update"], env
        assert "Prepare data" in r.paths["table"] and "Register model" in r.paths["table"], env
        assert "Tune model" in tuning and "Read best training job" in tuning, env
        assert tuning[-2:] == ["Notify failure", "Workflow failed"], env


def test_prod_runs_its_baseline_job_and_dev_has_none(recorded: dict[str, Recorded]) -> None:
    # prod's endpoint captures data (endpoint.data_capture): its workflow baselines the data.
    for run in ("deploy-create", "deploy-update"):
        assert "Baseline data" in recorded["prod"].paths[run]
        assert "Baseline data" not in recorded["dev"].paths[run]
    writes = {
        c.resource.split(":::", 1)[1].split("/", 1)[1]
        for c in recorded["prod"].log.calls
        if c.action == "s3:PutObject" and "/baselines/" in c.resource
    }
    assert "baselines/latest/statistics.json" in writes
    assert "baselines/latest/constraints.json" in writes


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_principal_makes_the_calls_the_issue_lists(
    recorded: dict[str, Recorded], env: str
) -> None:
    r = recorded[env]
    kinds = principals(r)
    # dev also deletes its deploy stage's endpoint and its registry's versions when its stacks
    # are deleted (prod retains both).
    cleanup = {"cleanup", "registry-cleanup"} if env == "dev" else set()
    assert set(kinds.values()) == {
        "state-machine",
        "release",
        "execution",
        "scheduler",
        "seed",
        *cleanup,
    }
    actions: dict[str, set[str]] = {}
    for call in r.log.calls:
        actions.setdefault(kinds.get(call.principal, call.principal), set()).add(call.action)
    assert {
        "lambda:InvokeFunction",
        "sagemaker:CreateTrainingJob",
        "sagemaker:ListTags",
        "sagemaker:CreateHyperParameterTuningJob",
        "sagemaker:CreateModel",
        "sagemaker:CreateTransformJob",
        "sagemaker:CreateProcessingJob",
        "sagemaker:DescribeProcessingJob",
        "sagemaker:CreateModelPackage",
        "events:PutRule",
        "iam:PassRole",
        "sns:Publish",
        "kms:GenerateDataKey",
    } <= actions["state-machine"]
    # Deploying is the release's: the training workflow never touches an endpoint.
    assert not {a for a in actions["state-machine"] if "Endpoint" in a}
    assert {
        "sagemaker:DescribeModelPackage",
        "sagemaker:CreateModel",
        "sagemaker:CreateEndpointConfig",
        "sagemaker:CreateEndpoint",
        "sagemaker:UpdateEndpoint",
        "sagemaker:DescribeEndpoint",
        "iam:PassRole",
        "kms:CreateGrant",
    } <= actions["release"]
    assert {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:CreateGrant",
        "ecr:BatchGetImage",
        "logs:PutLogEvents",
        "cloudwatch:PutMetricData",
        "cloudwatch:DescribeAlarms",
    } <= actions["execution"]
    assert {"s3:PutObject", "kms:GenerateDataKey", "logs:PutLogEvents"} <= actions["seed"]
    assert actions["scheduler"] == {"states:StartExecution"}
    assert {"sns:Publish", "kms:GenerateDataKey"} <= actions["cloudwatch.amazonaws.com"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_recorded_call_is_allowed(
    recorded: dict[str, Recorded], policies: dict[str, SynthesizedPolicies], env: str
) -> None:
    decide = policies[env].decide
    names = policies[env].role_names
    missing = [
        f"{names.get(d.call.principal, d.call.principal)} may not {d.call} "
        f"({d.call.why}): {d.missing}"
        for d in map(decide, unique(recorded[env].log.calls))
        if not d.allowed
    ]
    assert missing == [], "\n".join(missing)


def granted_actions(
    policies: SynthesizedPolicies, role: str
) -> Iterator[tuple[str, int, str, dict[str, object]]]:
    for policy in policies.identity.get(role, []):
        for index, statement in enumerate(policy.statements):
            actions = statement["Action"]
            for action in actions if isinstance(actions, list) else [actions]:
                yield policy.name, index, action, statement


def unexercised(
    r: Recorded | Monitored, policies: SynthesizedPolicies, kinds: dict[str, str] | None = None
) -> dict[tuple[str, str], list[str]]:
    """(principal kind, granted action) -> where granted, for grants no allowed call used;
    ``kinds``: the principals to look at (default: the workflow's)."""
    kinds = kinds if kinds is not None else principals(r)  # type: ignore[arg-type]
    used: set[tuple[str, int, str]] = set()
    for call in unique(r.log.calls):
        decision = policies.decide(call)
        for name, index in decision.used:
            used.add((name, index, call.action.lower()))
    found: dict[tuple[str, str], list[str]] = {}
    for role, kind in kinds.items():
        for name, index, action, statement in granted_actions(policies, role):
            statement_used = any(
                n == name
                and i == index
                and AwsStatement({"Action": action})._check_element_matches("Action", a)
                for n, i, a in used
            )
            if not statement_used:
                where = f"{name} statement {statement.get('Sid', index)}"
                found.setdefault((kind, action), []).append(where)
    return found


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_grant_is_exercised_or_explained(
    recorded: dict[str, Recorded], policies: dict[str, SynthesizedPolicies], env: str
) -> None:
    found = unexercised(recorded[env], policies[env])
    unexplained = {k: v for k, v in found.items() if k not in UNEXERCISED}
    assert unexplained == {}
    # Every explanation is still needed: a grant since exercised or removed leaves the table.
    stale = set(UNEXERCISED) - set().union(
        *(unexercised(r, policies[e]) for e, r in recorded.items())
    )
    assert stale == set()


def tls(*extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return (("aws:SecureTransport", "true"), *extra)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_workflow_principal_may_replace_a_released_model(
    recorded: dict[str, Recorded], policies: dict[str, SynthesizedPolicies], env: str
) -> None:
    # What the endpoints serve lives under releases/ (docs/security.md): no job, the seeding
    # function or a state machine may upload, overwrite or delete there, though the jobs may
    # write models/.
    r = recorded[env]
    (bucket,) = r.log.bucket_keys
    for role, kind in principals(r).items():
        for key in ("releases/v1/model.tar.gz", "releases/model.tar.gz"):
            released = f"arn:aws:s3:::{bucket}/{key}"
            for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
                call = Call(role, action, released, tls())
                assert not policies[env].decide(call).allowed, (kind, action, key)
    execution = r.log.execution_role
    model = Call(execution, "s3:PutObject", f"arn:aws:s3:::{bucket}/models/x/model.tar.gz", tls())
    assert policies[env].decide(model).allowed


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_workflow_may_release_only_a_copy_of_a_training_jobs_artifact(
    recorded: dict[str, Recorded], policies: dict[str, SynthesizedPolicies], env: str
) -> None:
    # CopyObject is authorized as s3:PutObject on the destination with the request's
    # x-amz-copy-source header ("<bucket>/<key>") as s3:x-amz-copy-source (Amazon S3 API
    # Reference, CopyObject; Service Authorization Reference, Amazon S3: PutObject's keys).
    r = recorded[env]
    role = r.log.assembly.state_machine_role_arn
    copies = [c for c in r.log.calls if "s3:x-amz-copy-source" in c.context_map]
    # One copy a run (the seeder twice, a table), each by the workflow's state machine.
    assert len(copies) == 3 and {c.principal for c in copies} == {role}
    assert all(policies[env].decide(c).allowed for c in copies)
    copy = copies[0]
    (bucket,) = r.log.bucket_keys
    for source in (
        f"{bucket}/datasets/run/train/part-00000.csv",  # not a model
        f"{bucket}/models/x/model.tar.gz",  # not what a training job writes
        f"{bucket}/releases/v1/model.tar.gz",  # a released copy, copied again
        "other-bucket/models/x/output/model.tar.gz",
    ):
        context = {**copy.context_map, "s3:x-amz-copy-source": source}
        forged = Call(role, "s3:PutObject", copy.resource, tuple(sorted(context.items())))
        assert not policies[env].decide(forged).allowed, source
    # Nor may it copy anywhere but releases/, or delete what it copied.
    elsewhere = copy.resource.replace("/releases/", "/datasets/")
    assert not policies[env].decide(Call(role, "s3:PutObject", elsewhere, copy.context)).allowed
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion"):
        assert not policies[env].decide(Call(role, action, copy.resource, tls())).allowed


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_registered_version_serves_a_released_copy_of_its_model(
    recorded: dict[str, Recorded], env: str
) -> None:
    r = recorded[env]
    (bucket,) = r.log.bucket_keys
    assert len(r.versions) == 3
    for arn, (served, trained, same) in r.versions.items():
        # SageMaker's training output: <S3OutputPath>/<job>/output/model.tar.gz.
        assert re.fullmatch(rf"s3://{bucket}/models/[^/]+/output/model\.tar\.gz", trained)
        assert re.fullmatch(rf"s3://{bucket}/releases/[0-9a-f]{{32}}/model\.tar\.gz", served)
        assert same, arn
    # Every model the releases created serves one of them.
    release_models = [
        c
        for c in r.log.calls
        if c.action == "s3:GetObject" and c.principal == r.log.execution_role
        and "/releases/" in c.resource
    ]  # fmt: skip
    assert release_models
    served_keys = {served.removeprefix("s3://") for served, _, _ in r.versions.values()}
    assert {c.resource.removeprefix("arn:aws:s3:::") for c in release_models} <= served_keys


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_lifecycle_rule_expires_a_released_model(
    recorded: dict[str, Recorded], env: str
) -> None:
    # A lifecycle rule's Expiration acts on current versions, NoncurrentVersionExpiration only
    # on versions something replaced (Amazon S3 User Guide, "Lifecycle configuration
    # elements"): no rule with an expiration may cover releases/.
    r = recorded[env]
    (bucket,) = r.log.bucket_keys
    rules = [
        rule
        for stack, template in r.log.assembly.templates.items()
        for lid, resource in template["Resources"].items()
        if resource["Type"] == "AWS::S3::Bucket" and r.log.resolver.ref(stack, lid) == bucket
        for rule in resource["Properties"]["LifecycleConfiguration"]["Rules"]
    ]
    assert rules
    expiring = [rule for rule in rules if "ExpirationInDays" in rule or "ExpirationDate" in rule]
    assert expiring  # transform output expires
    for rule in expiring:
        assert rule.get("Prefix") and not "releases/".startswith(rule["Prefix"]), rule


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_registration_may_add_versions_to_its_own_group_only(
    recorded: dict[str, Recorded], policies: dict[str, SynthesizedPolicies], env: str
) -> None:
    r = recorded[env]
    role = r.log.assembly.state_machine_role_arn
    created = [c for c in r.log.calls if c.action == "sagemaker:CreateModelPackage"]
    # Three runs (the seeder twice, a table), three versions, numbered by SageMaker in the
    # environment's group.
    assert [c.resource.rsplit(":", 1)[1] for c in created] == [
        f"model-package/mlstack-{env}/1",
        f"model-package/mlstack-{env}/2",
        f"model-package/mlstack-{env}/3",
    ]
    other = "dev" if env == "prod" else "prod"
    for resource in (
        created[0].resource.replace(f"mlstack-{env}/", f"mlstack-{other}/"),
        created[0].resource.replace(f"/mlstack-{env}/1", "/unrelated-model"),
    ):
        assert (
            not policies[env].decide(Call(role, "sagemaker:CreateModelPackage", resource)).allowed
        )
    # Registering is not approving: the workflow cannot change a version's status.
    update = Call(role, "sagemaker:UpdateModelPackage", created[0].resource)
    assert not policies[env].decide(update).allowed


def test_prod_spot_training_writes_checkpoints_it_may_read_back_and_dev_may_not(
    recorded: dict[str, Recorded], policies: dict[str, SynthesizedPolicies]
) -> None:
    # prod trains on managed spot: SageMaker uploads /opt/ml/checkpoints to the run's
    # CheckpointConfig prefix (recorded by local mode) and reads it back when a job resumes.
    r = recorded["prod"]
    execution = r.log.execution_role
    writes = [
        c
        for c in r.log.calls
        if c.principal == execution and c.action == "s3:PutObject" and "/checkpoints/" in c.resource
    ]
    assert writes
    assert all(policies["prod"].decide(c).allowed for c in writes)
    resume = Call(execution, "s3:GetObject", writes[0].resource, writes[0].context)
    assert policies["prod"].decide(resume).allowed
    # dev trains on demand: no checkpoints, and its role may not touch that prefix.
    d = recorded["dev"]
    assert not any("/checkpoints/" in c.resource for c in d.log.calls)
    (bucket,) = d.log.bucket_keys
    for action in ("s3:GetObject", "s3:PutObject"):
        call = Call(
            d.log.execution_role,
            action,
            f"arn:aws:s3:::{bucket}/checkpoints/r/x",
            (("aws:SecureTransport", "true"),),
        )
        assert not policies["dev"].decide(call).allowed, action


def test_prod_seeds_through_the_distributed_map_as_its_role_may_and_dev_may_not(
    recorded: dict[str, Recorded], policies: dict[str, SynthesizedPolicies]
) -> None:
    # The Distributed Map starts child executions of its own state machine as the state
    # machine's role ("IAM policies for using Distributed Map states").
    prod = recorded["prod"]
    assert "Generate dataset at scale" in prod.paths["tuning"]
    starts = [c for c in prod.log.calls if c.action == "states:StartExecution" and
              c.principal == prod.log.assembly.state_machine_role_arn]  # fmt: skip
    assert len(starts) == 110  # one child execution per shard
    assert all(policies["prod"].decide(c).allowed for c in starts)
    dev = recorded["dev"]
    assert "Generate dataset at scale" not in dev.paths["tuning"]
    dev_start = Call(
        dev.log.assembly.state_machine_role_arn,
        "states:StartExecution",
        dev.log.assembly.state_machine_arn,
    )
    assert not policies["dev"].decide(dev_start).allowed


CREATES = (
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTransformJob",
    "sagemaker:CreateModel",
)
# The data key's stand-in for "another key" (a key ARN of the AWS KMS Developer Guide).
OTHER_KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def forged(call: Call, **changes: str | tuple[str, ...] | None) -> Call:
    """``call`` with condition keys changed (``sagemaker_`` for ``sagemaker:``), None removing
    one: the request the same principal would make with other settings."""
    context = dict(call.context)
    for name, value in changes.items():
        key = name.replace("sagemaker_", "sagemaker:", 1)
        if value is None:
            context.pop(key, None)
        else:
            context[key] = value
    return Call(call.principal, call.action, call.resource, tuple(sorted(context.items())))


def creates_of(r: Recorded) -> dict[str, list[Call]]:
    found: dict[str, list[Call]] = {}
    for call in r.log.calls:
        if call.action in CREATES:
            found.setdefault(call.action, []).append(call)
    return found


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_create_carries_the_sagemaker_keys_its_request_sets(
    recorded: dict[str, Recorded], env: str
) -> None:
    # Network isolation is on in both environments (workflow.network_isolation's default); the
    # outputs are encrypted with the data key. The keys each action supports: the Service
    # Authorization Reference, through parliament's copy (tests/iam/access.py).
    creates = creates_of(recorded[env])
    assert set(creates) == set(CREATES)
    (data_key,) = recorded[env].log.bucket_keys.values()
    for action, calls in creates.items():
        for call in calls:
            context = call.context_map
            if action != "sagemaker:CreateTransformJob":
                assert context["sagemaker:NetworkIsolation"] == "true", call
            if action != "sagemaker:CreateModel":
                assert context["sagemaker:OutputKmsKey"] == data_key, call
            # CreateTransformJob has no isolation key, CreateModel no KMS key.
            assert ("sagemaker:NetworkIsolation" in context) is (
                action != "sagemaker:CreateTransformJob"
            )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_iam_refuses_a_job_or_model_without_network_isolation(
    recorded: dict[str, Recorded], policies: dict[str, SynthesizedPolicies], env: str
) -> None:
    decide = policies[env].decide
    for action, calls in creates_of(recorded[env]).items():
        call = calls[0]
        assert decide(call).allowed, call
        if action == "sagemaker:CreateTransformJob":
            continue  # a transform job runs in its model's isolation
        for isolation in ("false", None):
            assert not decide(forged(call, sagemaker_NetworkIsolation=isolation)).allowed, action


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_iam_refuses_a_job_whose_output_or_volume_is_not_under_the_data_key(
    recorded: dict[str, Recorded], policies: dict[str, SynthesizedPolicies], env: str
) -> None:
    decide = policies[env].decide
    for action, calls in creates_of(recorded[env]).items():
        if action == "sagemaker:CreateModel":
            continue
        call = calls[0]
        for output in (OTHER_KEY, None):
            assert not decide(forged(call, sagemaker_OutputKmsKey=output)).allowed, action
        assert not decide(forged(call, sagemaker_VolumeKmsKey=OTHER_KEY)).allowed, action
        # An instance type with local NVMe storage takes no volume key: allowed without one.
        assert decide(forged(call, sagemaker_VolumeKmsKey=None)).allowed, action


def test_prod_iam_keeps_jobs_and_models_in_its_subnets_with_encrypted_traffic(
    recorded: dict[str, Recorded], policies: dict[str, SynthesizedPolicies]
) -> None:
    # prod runs in its VPC (network.vpc "create"); dev in none, so its creates name no VPC.
    decide = policies["prod"].decide
    creates = creates_of(recorded["prod"])
    for action in (
        "sagemaker:CreateTrainingJob",
        "sagemaker:CreateHyperParameterTuningJob",
        "sagemaker:CreateProcessingJob",
        "sagemaker:CreateModel",
    ):
        call = creates[action][0]
        subnets = call.context_map["sagemaker:VpcSubnets"]
        assert subnets and all(str(s).startswith("subnet-") for s in subnets), call
        for key in ("sagemaker_VpcSubnets", "sagemaker_VpcSecurityGroupIds"):
            assert not decide(forged(call, **{key: None})).allowed, (action, key)
        other = (*subnets, "subnet-0123456789abcdef0")
        assert not decide(forged(call, sagemaker_VpcSubnets=other)).allowed, action
        groups = (*call.context_map["sagemaker:VpcSecurityGroupIds"], "sg-0123456789abcdef0")
        assert not decide(forged(call, sagemaker_VpcSecurityGroupIds=groups)).allowed, action
    for action in ("sagemaker:CreateTrainingJob", "sagemaker:CreateHyperParameterTuningJob"):
        call = creates[action][0]
        assert call.context_map["sagemaker:InterContainerTrafficEncryption"] == "true"
        forged_call = forged(call, sagemaker_InterContainerTrafficEncryption="false")
        assert not decide(forged_call).allowed, action
    for calls in creates_of(recorded["dev"]).values():
        assert all("sagemaker:VpcSubnets" not in c.context_map for c in calls)

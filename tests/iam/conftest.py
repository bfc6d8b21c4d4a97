"""The calls of dev's and prod's workflow, recorded once per session.

Each environment's app is synthesized in-process (as ``cdk synth`` would) and its state machine
definition executed by local mode three times in one SageMaker registry: the first execution
creates the deploy stage's endpoint, the second updates it (blue/green, with the rollback
alarms), the third trains on a table of the user's (Prepare data) and updates it again. The
tuning path, which local mode does not run, is executed by the same interpreter with stand-in
task results, so its Task states' calls are derived from the rendered definition (their
parameters are what Step Functions would send), its transform job failing so that the run also
takes the failure path (Notify failure publishes to the encrypted topic). The execution role's
calls for the tuning job's training jobs are derived from its TrainingJobDefinition, as
SageMaker runs each one like a training job.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlstack.local import assembly as assembly_mod
from mlstack.local.asl import Interpreter, StatesError, TaskCall
from mlstack.local.events import Delivery, LocalEventBridge
from mlstack.local.imports import imports_location
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import LocalSageMaker
from mlstack.local.tasks import TaskDispatcher
from mlstack.local.ui import Reporter
from tests import once, programs
from tests.fake_aws import use_fake_aws
from tests.iam.access import CallLog, RecordingDispatcher, RecordingS3, resource_calls
from tests.iam.monitoring import Monitored, record_monitoring

ROWS = 300


@dataclass
class Recorded:
    environment: str
    log: CallLog
    paths: dict[str, list[str]]  # execution -> states it passed
    # version ARN -> (its ModelDataUrl, the S3ModelArtifacts of the training job it registered,
    # whether the two objects hold the same bytes)
    versions: dict[str, tuple[str, str, bool]]


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use_fake_aws(monkeypatch)
    yield


def table_csv(rows: int) -> bytes:
    """A user's table for the table path: a text label, a numeric and a categorical feature
    with missing values."""
    lines = ["x,colour,y"]
    for i in range(rows):
        x = (i * 37 % rows) / rows
        colour = ("red", "blue", "")[i % 3]
        lines.append(f"{x:.4f},{colour},{'yes' if x > 0.5 else 'no'}")
    return ("\n".join(lines) + "\n").encode()


def run_local(
    env: str,
    workdir: Path,
    log: CallLog,
    executions: dict[str, dict[str, Any]],
    versions: dict[str, tuple[str, str, bool]],
) -> dict[str, list[str]]:
    """Execute the environment's definition once per input, in one local SageMaker registry
    (the table under imports/iam/ that the table run reads is uploaded first); ``versions``
    gets each registered version's model data, its training job's artifact, and whether both
    hold the same bytes."""
    resolved = log.assembly
    paths = {}
    with EmbeddedS3(resolved.region) as s3:
        for bucket in resolved.buckets:
            s3.create_bucket(bucket)
        data_bucket, imports = imports_location(resolved.definition)
        s3.client.put_object(
            Bucket=data_bucket, Key=f"{imports}iam/table.csv", Body=table_csv(ROWS)
        )
        sagemaker = LocalSageMaker(
            workdir,
            RecordingS3(s3, log),  # type: ignore[arg-type]
            resolved.images,
            region=resolved.region,
            account=resolved.account,
        )
        events = LocalEventBridge(resolved)
        sagemaker.on_event = events.service_event
        for group in resolved.model_package_groups:
            sagemaker.ensure_model_package_group(group)
        tasks = TaskDispatcher(resolved, s3, sagemaker, workdir)
        dispatcher = RecordingDispatcher(tasks, log, s3)
        releases = {
            arn: RecordingDispatcher(tasks, log, s3, role=machine.role_arn)
            for arn, machine in resolved.state_machines.items()
        }

        delivered: list[Delivery] = []

        def release(delivery: Delivery, status: str = "SUCCEEDED") -> list[str]:
            delivered.append(delivery)
            machine = delivery.machine
            result = Interpreter(
                machine.definition,
                releases[machine.arn],
                listener=Reporter(out=io.StringIO()),
                # The release polls the endpoint 60 times, 30 s apart: at 0.002 that left a
                # local endpoint 3.6 s to boot, which a loaded machine misses (main failed
                # EndpointWaitTimedOut too); 0.05 leaves 90 s, spent only while it boots.
                time_scale=0.05,
                state_machine_arn=machine.arn,
                role_arn=machine.role_arn,
            ).execute(delivery.event, name=f"release-{len(log.calls)}")
            assert result.status == status, (machine.name, result.error, result.cause)
            return result.states

        interpreter = Interpreter(
            resolved.definition,
            dispatcher,
            listener=Reporter(out=io.StringIO()),
            time_scale=0.002,
            state_machine_arn=resolved.state_machine_arn,
            role_arn=resolved.state_machine_role_arn,
            on_child_execution=dispatcher.child_execution,
        )
        try:
            for name, execution_input in executions.items():
                result = interpreter.execute(execution_input, name=f"{env}-{name}")
                assert result.status == "SUCCEEDED", (env, name, result.error, result.cause)
                paths[name] = result.states
                # What EventBridge starts: dev's version is Approved and released at once;
                # prod's waits, and is approved here as `mlstack approve` would.
                (package,) = [
                    p
                    for p in sagemaker.model_packages.values()
                    if p["ModelPackageArn"] == result.output["model_package"]["arn"]
                ]
                (container,) = package["InferenceSpecification"]["Containers"]
                served, trained = container["ModelDataUrl"], result.output["model_artifact_uri"]
                same = s3.read(served) == s3.read(trained)
                versions[package["ModelPackageArn"]] = (served, trained, same)
                if package["ModelApprovalStatus"] != "Approved":
                    assert not events.pending, env
                    sagemaker.update_model_package(
                        {
                            "ModelPackageArn": package["ModelPackageArn"],
                            "ModelApprovalStatus": "Approved",
                        }
                    )
                for _, states in events.drain(release):
                    paths[f"{name} release"] = states
            # An event naming a version that does not exist: the release's failure path
            # (Notify release failure publishes to the encrypted topic).
            last = delivered[-1]
            missing = str(last.event["detail"]["ModelPackageArn"]).rsplit("/", 1)[0] + "/999"
            event = {**last.event, "detail": {**last.event["detail"], "ModelPackageArn": missing}}
            paths["release failure"] = release(Delivery(last.rule, last.machine, event), "FAILED")
        finally:
            sagemaker.stop()
    return paths


def tuning_path(log: CallLog, rows: int) -> list[str]:
    """Execute the definition with tune=true, tasks answered by stand-ins; record the calls.
    With ``rows`` beyond the inline Map's shards the dataset is seeded through the Distributed
    Map, whose child executions the state machine role starts."""
    resolved = log.assembly
    (bucket,) = log.bucket_keys  # the data bucket (the access-log bucket has no KMS key)
    answers: dict[str, Any] = {
        "Validate input": {"Payload": {"valid": True, "message": ""}},
        "Seed shard": {"Payload": {"shard": 0}},
        "Seed shard at scale": {"Payload": {"shard": 0}},
    }

    def stand_in(call: TaskCall) -> Any:
        if call.state_name == "Tune model":
            name = call.parameters["HyperParameterTuningJobName"]
            # SageMaker names a tuning job's training jobs <tuning job>-<NNN>-<8 hex digits>.
            return {
                "HyperParameterTuningJobName": name,
                "HyperParameterTuningJobArn": "arn",
                "BestTrainingJob": {"TrainingJobName": f"{name}-003-1a2b3c4d"},
            }
        if call.state_name == "Read best training job":
            return {
                "TrainingJobName": call.parameters["TrainingJobName"],
                "TrainingJobArn": "arn",
                "HyperParameters": {},
                "ModelArtifacts": {"S3ModelArtifacts": f"s3://{bucket}/models/x/model.tar.gz"},
                "FinalMetricDataList": [],
                "TrainingTimeInSeconds": 60,
                "BillableTimeInSeconds": 60,
            }
        if call.state_name == "Save model":
            return {"ModelArn": f"arn:aws:sagemaker:r:1:model/{call.parameters['ModelName']}"}
        if call.state_name == "Batch transform":
            # The transform job fails: the run takes the failure path (Notify failure).
            raise StatesError("States.TaskFailed", '{"FailureReason": "stand-in failure"}')
        return answers.get(call.state_name, {})

    def record_tuning(call: TaskCall) -> Any:
        p = call.parameters
        if call.state_name == "Tune model":
            job = p["TrainingJobDefinition"]
            role = job["RoleArn"]
            why = "a training job of the tuning job"
            for channel in job["InputDataConfig"]:
                uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
                prefix = uri.removeprefix(f"s3://{bucket}/")
                log.s3_list(role, bucket, prefix, why)
                log.s3_read(role, bucket, prefix + "part.csv", why)
            output = job["OutputDataConfig"]["S3OutputPath"].removeprefix(f"s3://{bucket}/")
            log.s3_write(role, bucket, f"{output}job/output/model.tar.gz", why)
        return stand_in(call)

    dispatcher = RecordingDispatcher(record_tuning, log)
    result = Interpreter(
        resolved.definition,
        dispatcher,
        time_scale=0,
        state_machine_arn=resolved.state_machine_arn,
        on_child_execution=dispatcher.child_execution,
    ).execute({"tune": True, "rows": rows}, name="tuning")
    return result.states


def record(env: str, tmp: Path, directory: Path) -> Recorded:
    resolved = assembly_mod.read(directory, env)
    log = CallLog(resolved)
    executions = {
        "deploy-create": {"rows": ROWS, "tune": False},
        "deploy-update": {"rows": ROWS, "tune": False},
        # A table of the user's: Prepare data reads imports/ and writes the run's dataset.
        "table": {
            "tune": False,
            "dataset_source": {"uri": "iam/", "label": "y"},
            "hyperparameters": {"objective": "binary:logistic", "eval_metric": "rmse"},
        },
    }
    versions: dict[str, tuple[str, str, bool]] = {}
    paths = run_local(env, tmp / "work", log, executions, versions)
    # prod's max_rows allows more shards than an inline Map seeds: its tuning run takes the
    # Distributed Map (11,000,000 rows: 110 shards of 100,000).
    paths["tuning"] = tuning_path(log, ROWS if env == "dev" else 11_000_000)
    resource_calls(log)
    return Recorded(env, log, paths, versions)


@pytest.fixture(scope="session")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Monitored:
    """Monitored prod's drift monitor and retraining on drift, run (tests/iam/monitoring.py)."""
    with pytest.MonkeyPatch.context() as mp, programs.forked_python():
        use_fake_aws(mp)
        return record_monitoring(tmp_path_factory)


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recorded]:
    # The jobs' and endpoints' programs forked with their libraries imported (tests/programs.py):
    # the proof is the AWS calls the workflow makes, not how a program's process starts.
    with pytest.MonkeyPatch.context() as mp, programs.forked_python():
        use_fake_aws(mp)
        return {
            env: record(
                env,
                tmp_path_factory.mktemp(f"iam-{env}"),
                once.environment_assembly(tmp_path_factory, env) / f"assembly-{env}",
            )
            for env in ("dev", "prod")
        }

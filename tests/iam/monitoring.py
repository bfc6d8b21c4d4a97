"""The calls of monitored prod's two monitoring state machines (issue #21), recorded as
conftest.py records the workflow's.

The DriftMonitor's and RetrainOnDrift's definitions, as synthesized, are executed by local
mode's interpreter (their JSONata states included) with stand-in task results, so each Task
state's calls are derived from the parameters Step Functions would send (tests/iam/access.py):

* the drift monitor: a window with captures (Find captured data lists each candidate prefix,
  Monitor endpoint runs the Processing job, Read metrics reads its metric data, Publish metrics
  puts it in the namespace), a quiet window (No captured data) and a failing job (Notify
  monitor failure); the job role's S3 reads and writes come from the job's inputs and outputs
  (SageMaker downloads each S3Prefix input and uploads each output, "Process data" in the
  SageMaker developer guide), the rest of what the job does from its request;
* retraining on drift, started by an alarm's "CloudWatch Alarm State Change" event (CloudWatch
  user guide, "Alarm events and EventBridge"): the workflow's last run outside the cool-down
  (Start retraining), inside it (Cooling down), a start that finds the period's execution
  already there (ExecutionAlreadyExists: Cooling down) and a failure (Notify retrain failure);
* the EventBridge Scheduler's and the retrain rule's StartExecution, from the synthesized
  resources (access.resource_calls).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mlstack.local.asl import Interpreter, StatesError, TaskCall
from mlstack.local.assembly import StateMachine
from tests.iam.access import CallLog, RecordingDispatcher, resource_calls
from tests.local.monitored_prod import monitored_assembly

SCHEDULED_TIME = "2026-12-07T14:00:00Z"  # EventBridge Scheduler's <aws.scheduler.scheduled-time>
ALARM_TIME = "2026-12-07T15:00:05Z"
# A capture file under an hour's folder: <mm-ss-SSS>-<uuid>.jsonl ("Capture data from
# real-time endpoint").
CAPTURE_FILE = "59-59-123-8f6c2c1e-2c5e-4a0e-9d1f-3b2a1c0d9e8f.jsonl"
REPORT_FILES = ("report.json", "report.html", "metric_data.json")


@dataclass
class Monitored:
    log: CallLog
    paths: dict[str, list[str]]  # scenario -> states it passed
    monitor: StateMachine
    retrain: StateMachine
    job_role: str


def machine_starting_at(log: CallLog, start: str) -> StateMachine:
    (found,) = [m for m in log.assembly.state_machines.values() if m.definition["StartAt"] == start]
    return found


def job_objects(log: CallLog, parameters: dict[str, Any]) -> None:
    """What SageMaker reads and writes for the monitor job, as its role: each input prefix
    listed and an object under it read, each report uploaded under the output."""
    role = str(parameters["RoleArn"])
    why = f"processing job {parameters['ProcessingJobName']}"
    for item in parameters["ProcessingInputs"]:
        bucket, prefix = str(item["S3Input"]["S3Uri"]).removeprefix("s3://").split("/", 1)
        log.s3_list(role, bucket, prefix, why)
        name = "feature_baseline.json" if item["InputName"] == "baseline" else CAPTURE_FILE
        log.s3_read(role, bucket, f"{prefix}14/{name}" if "capture" in item["InputName"]
                    else f"{prefix}{name}", why)  # fmt: skip
    for output in parameters["ProcessingOutputConfig"]["Outputs"]:
        bucket, prefix = str(output["S3Output"]["S3Uri"]).removeprefix("s3://").split("/", 1)
        for name in REPORT_FILES:
            log.s3_write(role, bucket, f"{prefix}{name}", why)


def run_monitor(log: CallLog, machine: StateMachine, scenario: str) -> list[str]:
    """One window: ``captured`` (every prefix holds an object), ``quiet`` (none does) or
    ``failing`` (the job fails)."""

    def stand_in(call: TaskCall) -> Any:
        p = call.parameters
        if call.state_name == "List prefix":
            return {"KeyCount": 0 if scenario == "quiet" else 1, "Contents": []}
        if call.state_name == "Monitor endpoint":
            job_objects(log, p)
            if scenario == "failing":
                raise StatesError("States.TaskFailed", '{"FailureReason": "stand-in failure"}')
            return {"ProcessingJobName": p["ProcessingJobName"], "ProcessingJobStatus": "Completed"}
        if call.state_name == "Read metrics":
            body = {"MetricData": [{"MetricName": "DriftedFeatureShare", "Value": 50.0}]}
            return {"Body": json.dumps(body), "ContentType": "application/json"}
        return {}

    failed = scenario == "failing"
    event = {"scheduled_time": SCHEDULED_TIME}
    return execute(log, machine, stand_in, event, f"monitor-{scenario}", failed)


def execute(
    log: CallLog,
    machine: StateMachine,
    stand_in: Callable[[TaskCall], Any],
    event: dict[str, Any],
    name: str,
    failed: bool,
) -> list[str]:
    """The states ``machine``'s execution of ``event`` passed, its calls recorded as its role's,
    its tasks answered by ``stand_in``; it must end FAILED when ``failed``, else SUCCEEDED."""
    result = Interpreter(
        machine.definition,
        RecordingDispatcher(stand_in, log, role=machine.role_arn),
        time_scale=0,
        state_machine_arn=machine.arn,
        role_arn=machine.role_arn,
    ).execute(event, name=name)
    expected = "FAILED" if failed else "SUCCEEDED"
    assert result.status == expected, (name, result.error, result.cause)
    return result.states


def alarm_event(log: CallLog, alarm: str) -> dict[str, Any]:
    """An alarm going into ALARM, as EventBridge delivers it (CloudWatch user guide, "Alarm
    events and EventBridge": its example event)."""
    return {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": log.account,
        "time": ALARM_TIME,
        "region": log.region,
        "resources": [log.arn("cloudwatch", f"alarm:{alarm}")],
        "detail": {
            "alarmName": alarm,
            "state": {"value": "ALARM", "reason": "Threshold Crossed", "timestamp": ALARM_TIME},
            "previousState": {"value": "OK", "timestamp": "2026-12-07T14:00:05Z"},
        },
    }


def run_retrain(log: CallLog, machine: StateMachine, scenario: str) -> list[str]:
    """One alarm: the workflow last ran ``outside`` or ``inside`` the cool-down, the period's
    execution ``exists`` already, or the listing ``fails``."""
    last = {"outside": "2026-12-05T10:00:00.000Z", "inside": "2026-12-07T13:00:00.000Z"}

    def stand_in(call: TaskCall) -> Any:
        p = call.parameters
        if call.state_name == "Last run":
            if scenario == "fails":
                raise StatesError("Sfn.SfnException", "stand-in failure")
            started = last.get(scenario, last["outside"])
            # ListExecutions' result: newest first (Step Functions API Reference).
            return {
                "Executions": [
                    {
                        "ExecutionArn": f"{p['StateMachineArn']}:x".replace(
                            ":stateMachine:", ":execution:"
                        ),
                        "StateMachineArn": p["StateMachineArn"],
                        "Name": "x",
                        "Status": "SUCCEEDED",
                        "StartDate": started,
                    }
                ]
            }
        if call.state_name == "Start retraining":
            if scenario == "exists":
                raise StatesError(
                    "StepFunctions.ExecutionAlreadyExistsException", "Execution Already Exists"
                )
            arn = str(p["StateMachineArn"]).replace(":stateMachine:", ":execution:")
            return {"ExecutionArn": f"{arn}:{p['Name']}", "StartDate": ALARM_TIME}
        return {}

    alarm = next(str(name) for name in _alarm_names(log) if "Drift" in name)
    event = alarm_event(log, alarm)
    return execute(log, machine, stand_in, event, f"retrain-{scenario}", scenario == "fails")


def _alarm_names(log: CallLog) -> list[str]:
    return [
        log.resolver.name(stack, lid)
        for stack, template in log.assembly.templates.items()
        for lid, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm" and lid.startswith("DriftMonitor")
    ]


def record_monitoring(tmp_path_factory: pytest.TempPathFactory) -> Monitored:
    log = CallLog(monitored_assembly(tmp_path_factory))
    monitor = machine_starting_at(log, "Compute window")
    retrain = machine_starting_at(log, "Last run")
    paths = {f"monitor {s}": run_monitor(log, monitor, s) for s in ("captured", "quiet", "failing")}
    paths |= {
        f"retrain {s}": run_retrain(log, retrain, s)
        for s in ("outside", "inside", "exists", "fails")
    }
    resource_calls(log)
    return Monitored(log, paths, monitor, retrain, log.execution_role)

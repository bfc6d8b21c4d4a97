"""The states of :class:`mlstack.constructs.drift_monitor.DriftMonitor`'s state machine that
compute the window and its inputs, and read and publish the monitor's metric data."""

from __future__ import annotations

import json
from typing import Protocol

from aws_cdk import Aws
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._evaluation_states import PROCESSING_DIR


class MonitorProps(Protocol):
    """What these states read of the :class:`mlstack.constructs.drift_monitor.DriftMonitor`
    they belong to (its scope, prefixes and settings)."""

    hours: int
    bucket: s3.IBucket
    capture: str
    ground_truth: str
    baseline_prefix: str
    reports: str
    namespace: str


# S3 and CloudWatch errors worth a retry (AWS SDK integrations: "<Service>.<error code>", ending
# in "Exception": Step Functions developer guide, "AWS SDK service integrations").
S3_TRANSIENT_ERRORS = ["S3.SdkClientException", "S3.S3Exception"]
CLOUDWATCH_TRANSIENT_ERRORS = [
    "CloudWatch.InternalServiceException",
    "CloudWatch.CloudWatchException",
]
METRIC_DATA = "metric_data.json"
COMPUTE_WINDOW = "Compute window"
FIND_CAPTURED_DATA = "Find captured data"
LIST_PREFIX = "List prefix"
CHOOSE_INPUTS = "Choose inputs"
ANY_CAPTURED_DATA = "Any captured data?"
NO_CAPTURED_DATA = "No captured data"
MONITOR_ENDPOINT = "Monitor endpoint"
READ_METRICS = "Read metrics"
PUBLISH_METRICS = "Publish metrics"
MONITORED = "Monitored"
NOTIFY_MONITOR_FAILURE = "Notify monitor failure"
MONITOR_FAILED = "Monitor failed"
MONITOR_STATES = (
    COMPUTE_WINDOW,
    FIND_CAPTURED_DATA,
    LIST_PREFIX,
    CHOOSE_INPUTS,
    ANY_CAPTURED_DATA,
    NO_CAPTURED_DATA,
    MONITOR_ENDPOINT,
    READ_METRICS,
    PUBLISH_METRICS,
    MONITORED,
    NOTIFY_MONITOR_FAILURE,
    MONITOR_FAILED,
)

# The window ends at the scheduled time and spans the schedule's period. SageMaker writes each
# variant's captures under <capture>/<endpoint>/<variant>/yyyy/mm/dd/hh/ ("Capture data from
# real-time endpoint"); the job reads the deepest folder holding both ends of the window (the
# day for an hourly window, so that records a capture file carries past the hour are read), and
# the program counts only records whose inferenceTime lies in the window.
_WINDOW = """(
  $end := $toMillis($states.input.scheduled_time);
  $start := $end - {hours} * 3600000;
  $first := $split($fromMillis($start, '[Y0001]/[M01]/[D01]/[H01]'), '/');
  $last := $split($fromMillis($end, '[Y0001]/[M01]/[D01]/[H01]'), '/');
  $same := $reduce([0, 1, 2, 3], function($n, $i) {{
    ($n = $i and $first[$i] = $last[$i]) ? $n + 1 : $n
  }}, 0);
  $folder := $same = 0 ? '' : $join($first[[0..$same - 1]], '/') & '/';
  $day := $same = 0 ? '' : $join($first[[0..($same > 3 ? 3 : $same) - 1]], '/') & '/';
  $stamp := $fromMillis($end, '[Y0001][M01][D01]T[H01][m01]Z');
  {{
    'run_id': $stamp,
    'window': {{
      'start': $fromMillis($start),
      'end': $fromMillis($end),
      'stamp': $stamp,
      'folder': $folder
    }},
    'candidates': $append(
      {captures}.{{
        'name': 'capture-' & $,
        'prefix': '{capture}' & $ & '/' & $folder,
        'local': '{processing}/input/capture/' & $
      }},
      [{{
        'name': 'ground_truth',
        'prefix': '{ground_truth}' & $day,
        'local': '{processing}/input/ground_truth'
      }}]
    )
  }}
)"""

# The inputs the job gets: the baseline, and each candidate prefix that holds an object (an
# empty S3 prefix fails a SageMaker job's input download).
_INPUTS = """(
  $found := $states.input.found[listed.KeyCount > 0];
  $captured := $found[$substring(name, 0, 8) = 'capture-'];
  $input := function($name, $uri, $local) {{
    {{
      'InputName': $name,
      'S3Input': {{
        'S3Uri': $uri,
        'LocalPath': $local,
        'S3DataType': 'S3Prefix',
        'S3InputMode': 'File',
        'S3DataDistributionType': 'FullyReplicated'
      }}
    }}
  }};
  $merge([$states.input, {{
    'captured': $count($captured),
    'inputs': $append(
      [$input('baseline', '{baseline}', '{processing}/input/baseline')],
      [$found.$input(name, 's3://{bucket}/' & prefix, local)]
    )
  }}])
)"""


def _jsonata(expression: str) -> str:
    return "{% " + " ".join(line.strip() for line in expression.splitlines()) + " %}"


def window_state(scope: Construct, m: MonitorProps, variants: list[str]) -> sfn.CustomState:
    expression = _WINDOW.format(
        hours=m.hours,
        captures=json.dumps(variants).replace('"', "'"),
        capture=m.capture,
        ground_truth=m.ground_truth,
        processing=PROCESSING_DIR,
    )
    return sfn.CustomState(
        scope,
        COMPUTE_WINDOW,
        state_json={
            "Type": "Pass",
            "QueryLanguage": "JSONata",
            "Comment": f"The {m.hours} h window ending at the scheduled time.",
            "Output": _jsonata(expression),
        },
    )


def find_captured_data_state(scope: Construct, m: MonitorProps) -> sfn.CustomState:
    """Which candidate prefixes hold an object (ListObjectsV2, one key)."""
    listing = {
        "StartAt": LIST_PREFIX,
        "States": {
            LIST_PREFIX: {
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:s3:listObjectsV2",
                "Parameters": {
                    "Bucket": m.bucket.bucket_name,
                    "Prefix.$": "$.prefix",
                    "MaxKeys": 1,
                },
                "ResultSelector": {"KeyCount.$": "$.KeyCount"},
                "ResultPath": "$.listed",
                "Retry": [_retry(S3_TRANSIENT_ERRORS)],
                "End": True,
            }
        },
    }
    return sfn.CustomState(
        scope,
        FIND_CAPTURED_DATA,
        state_json={
            "Type": "Map",
            "ItemsPath": "$.candidates",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                **listing,
            },
            "ResultPath": "$.found",
        },
    )


def choose_inputs_state(scope: Construct, m: MonitorProps) -> sfn.CustomState:
    expression = _INPUTS.format(
        baseline=f"s3://{m.bucket.bucket_name}/{m.baseline_prefix}",
        bucket=m.bucket.bucket_name,
        processing=PROCESSING_DIR,
    )
    return sfn.CustomState(
        scope,
        CHOOSE_INPUTS,
        state_json={
            "Type": "Pass",
            "QueryLanguage": "JSONata",
            "Comment": "The baseline and every candidate prefix that holds an object.",
            "Output": _jsonata(expression),
        },
    )


def read_metrics_state(scope: Construct, m: MonitorProps) -> sfn.CustomState:
    return sfn.CustomState(
        scope,
        READ_METRICS,
        state_json={
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:s3:getObject",
            "Parameters": {
                "Bucket": m.bucket.bucket_name,
                "Key.$": f"States.Format('{m.reports}{{}}/{METRIC_DATA}', $.window.stamp)",
            },
            "ResultSelector": {"metric_data.$": "States.StringToJson($.Body)"},
            "ResultPath": "$.report",
            "Retry": [_retry(S3_TRANSIENT_ERRORS)],
        },
    )


def publish_metrics_state(scope: Construct, m: MonitorProps) -> sfn.CustomState:
    return sfn.CustomState(
        scope,
        PUBLISH_METRICS,
        state_json={
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:cloudwatch:putMetricData",
            "Parameters": {
                "Namespace": m.namespace,
                "MetricData.$": "$.report.metric_data.MetricData",
            },
            "ResultPath": None,
            "Retry": [_retry(CLOUDWATCH_TRANSIENT_ERRORS)],
        },
    )


def _retry(errors: list[str]) -> dict[str, object]:
    return {
        "ErrorEquals": errors,
        "IntervalSeconds": 5,
        "MaxAttempts": 3,
        "BackoffRate": 2,
        "JitterStrategy": "FULL",
    }

"""The failure path every state machine of the app ends in: notify the failure topic, then fail
with the error and cause of the state that failed."""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

# SNS errors worth a retry ("Handling errors in Step Functions": service exceptions of an
# integrated service are States.TaskFailed with these names).
SNS_TRANSIENT_ERRORS = [
    "SNS.ThrottledException",
    "SNS.InternalErrorException",
    "SNS.KMSThrottlingException",
]


def notify_then_fail(
    scope: Construct,
    *,
    notify_id: str,
    fail_id: str,
    topic: sns.ITopic,
    subject: str,
    what: str,
) -> sfn.CustomState:
    """``notify_id`` (publish "<what> <execution> failed: <error>" to ``topic``, retried on SNS's
    transient errors) -> ``fail_id`` (a Fail state carrying ``$.error``'s Error and Cause);
    returns the notify state, the target of every catch. A failed notification must not hide
    the execution's own error: it ends in the Fail state too."""
    failed = sfn.Fail(scope, fail_id, error_path="$.error.Error", cause_path="$.error.Cause")
    notify = sfn.CustomState(
        scope,
        notify_id,
        state_json={
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::sns:publish",
            "Parameters": {
                "TopicArn": topic.topic_arn,
                "Subject": subject,
                "Message.$": (
                    f"States.Format('{what} {{}} failed: {{}}', $$.Execution.Id, "
                    "States.JsonToString($.error))"
                ),
            },
            "ResultPath": "$.notification",
        },
    )
    notify.add_retry(
        errors=SNS_TRANSIENT_ERRORS,
        interval=Duration.seconds(2),
        max_attempts=3,
        backoff_rate=2,
        jitter_strategy=sfn.JitterType.FULL,
    )
    notify.add_catch(failed, errors=["States.ALL"], result_path="$.notify_error")
    notify.next(failed)
    return notify


def failure_policy_statements(topic: sns.ITopic, key: kms.IKey) -> list[iam.PolicyStatement]:
    """What Notify failure calls: publish to ``topic``, encrypted with its ``key`` through SNS.
    Not grant_publish: no kms:GenerateDataKey* beyond what SNS's encryption uses."""
    return [
        iam.PolicyStatement(
            sid="PublishFailures", actions=["sns:Publish"], resources=[topic.topic_arn]
        ),
        iam.PolicyStatement(
            sid="EncryptFailureMessages",
            actions=["kms:GenerateDataKey", "kms:Decrypt"],
            resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"sns.{Aws.REGION}.amazonaws.com"}},
        ),
    ]

"""The release: an approved model package version deployed to the environment's endpoint."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._ab_states import (
    AB_STATES,
    NO_ENDPOINT_DECISION,
    ab_policy_statements,
    ab_states,
)
from mlstack.constructs._deploy_states import EndpointDeployment
from mlstack.constructs._failure_states import failure_policy_statements, notify_then_fail
from mlstack.constructs._nag import (
    acknowledge_inline_policy,
    acknowledge_wildcard_resources,
    default_policy,
)
from mlstack.constructs._release_claim import released_elsewhere
from mlstack.constructs._release_tasks import DescribePackage, ReleaseModels
from mlstack.constructs._scaffold import build_state_machine, execution_log_group
from mlstack.constructs.model_registry import ModelRegistry
from mlstack.constructs.roles import events_principal, sagemaker_arn, states_principal
from mlstack.constructs.state_names import (
    ALREADY_LIVE,
    ALREADY_RELEASED,
    CLAIM_FIRST_RELEASE,
    CLAIM_RELEASE,
    CLAIMED_ELSEWHERE,
    COMPARE_LIVE_VERSION,
    CREATE_RELEASE_MODEL,
    DESCRIBE_PACKAGE,
    NOT_APPROVED,
    NOTIFY_RELEASE_FAILURE,
    READ_LIVE_ENDPOINT,
    RELEASE_FAILED,
    RELEASED_ELSEWHERE,
    REPORT_RELEASE,
    START_RELEASE,
    STILL_APPROVED,
)

__all__ = ["APPROVED_PATTERN_STATUS", "RELEASE_STATES", "ModelRelease"]

APPROVED_PATTERN_STATUS = "Approved"
# Endpoint statuses in which the live configuration stays what it is while SageMaker works on the
# endpoint (DescribeEndpoint: an update's new configuration is PendingDeploymentSummary's).
SETTLED_OR_BUSY = ("InService", "Creating", "Updating", "SystemUpdating")
RELEASE_STATES = (
    START_RELEASE,
    DESCRIBE_PACKAGE,
    STILL_APPROVED,
    NOT_APPROVED,
    READ_LIVE_ENDPOINT,
    COMPARE_LIVE_VERSION,
    ALREADY_LIVE,
    ALREADY_RELEASED,
    CLAIM_RELEASE,
    CLAIM_FIRST_RELEASE,
    CLAIMED_ELSEWHERE,
    RELEASED_ELSEWHERE,
    CREATE_RELEASE_MODEL,
    REPORT_RELEASE,
    NOTIFY_RELEASE_FAILURE,
    RELEASE_FAILED,
    *AB_STATES,
)


class ModelRelease(Construct):
    """Creates the release state machine and the EventBridge rule that starts it: when a version
    of ``registry``'s group becomes ``Approved`` ("SageMaker Model Package State Change", SageMaker
    developer guide, "Events that Amazon SageMaker AI sends to Amazon EventBridge"), it describes
    the version, creates a model from its inference specification and runs the workflow's deploy
    stage (endpoint config, create or blue/green update with auto-rollback, bounded wait) for it.

    SageMaker "may send multiple events to EventBridge for each state change" (same page): a
    version whose configuration the endpoint already has (in service, or being created or
    updated) is left alone, and a version no longer approved is not deployed. Executions that
    start at once for the same version claim it first: each creates the model
    ``<name_prefix>-claim-<MD5 of the version's ARN and the live configuration's name>``, which
    SageMaker creates once; the execution that finds it taken ends quietly (no failure mail, no
    second update). Release models are named ``<name_prefix>-v<version>-<8 hex>-<retry>``.

    With A/B (``deploy.candidate_weight`` > 0) and a live endpoint, the live configuration's
    Candidate becomes Live only when its version's gate metric passes the gate's comparison
    against the Live version's; otherwise Live stays and the candidate is dropped
    (``_ab_states.py``); the output's ``ab`` says which and why.

    Args:
        deployment: the deploy fragment's builder (a :class:`TrainingWorkflow`'s
            ``deployment``): the deploy stage, endpoint, rollback alarms, execution role, network
            placement and key of the endpoint's storage the release uses.
        registry: the :class:`ModelRegistry` whose approved versions are released.
        key: the KMS key of the failure topic.
        topic: the failure topic (a :class:`TrainingWorkflow`'s ``topic``).
        log_retention: how long the execution logs are kept. Default: one year.
        removal_policy: what happens to the log group when the stack is deleted. Default:
            ``RETAIN``.

    Attributes:
        state_machine: the release state machine (its input is the EventBridge event).
        role: the state machine's role.
        rule: the EventBridge rule.
        events_role: the role EventBridge starts executions as.
        event_pattern: the rule's pattern.
        deployment: the deploy fragment's builder it was given.
        describe_package: the Describe package task (its state and its grant).
        release_models: the release's CreateModel tasks (their states and statements).
        endpoint_name: the endpoint it deploys to.
        name_prefix: the prefix of the models it creates.
        topic: the failure topic.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        deployment: EndpointDeployment,
        registry: ModelRegistry,
        key: kms.IKey,
        topic: sns.ITopic,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, id)
        if deployment is None:
            raise ValueError(
                "ModelRelease deployment=None: expected a TrainingWorkflow's deployment (the "
                "workflow needs a deploy stage: its endpoint, instance type, traffic shift and "
                "rollback alarms are the release's)"
            )
        self.deployment = deployment
        self.registry = registry
        self.topic = topic
        self.name_prefix = deployment.builder.name_prefix
        self.endpoint_name = deployment.endpoint_name
        self.describe_package = DescribePackage(registry, deployment.builder)
        self.release_models = ReleaseModels(deployment.builder)
        self.role = self._role(key)
        log_group = execution_log_group(
            self,
            name=f"{self.name_prefix}-release",
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.state_machine = build_state_machine(
            self,
            start=self._definition(),
            role=self.role,
            log_group=log_group,
            timeout=Duration.seconds(deployment.deploy.max_wait.to_seconds() + 3600),
            comment=f"{self.name_prefix}: deploy an approved version of {registry.group_name}",
        )
        self.event_pattern = self._pattern()
        # EventBridge starts executions as this role, which may start this state machine only.
        self.events_role = iam.Role(self, "EventsRole", assumed_by=events_principal(self))
        acknowledge_inline_policy(self.events_role)
        self.rule = events.Rule(
            self,
            "OnApproval",
            description=f"Release each version of {registry.group_name} that becomes Approved",
            event_pattern=self.event_pattern,
            targets=[targets.SfnStateMachine(self.state_machine, role=self.events_role)],
        )

    def _pattern(self) -> events.EventPattern:
        """SageMaker's model package event for this group, status Approved (the detail carries
        ModelPackageGroupName and ModelApprovalStatus: "SageMaker model package state change")."""
        return events.EventPattern(
            source=["aws.sagemaker"],
            detail_type=["SageMaker Model Package State Change"],
            detail={
                "ModelPackageGroupName": [self.registry.group_name],
                "ModelApprovalStatus": [APPROVED_PATTERN_STATUS],
            },
        )

    def _role(self, key: kms.IKey) -> iam.Role:
        """Made from the release's tasks: describe the group's versions, create release models,
        (A/B) read the live endpoint's metrics, deploy the endpoint, publish failures; nothing
        else."""
        d, prefix = self.deployment, self.name_prefix
        role = iam.Role(
            self,
            "Role",
            assumed_by=states_principal(self),
            description=f"Step Functions role of the {prefix} release",
        )
        acknowledge_inline_policy(role)
        self.describe_package.grant(role)
        if d.deploy.ab_test:
            for statement in ab_policy_statements(self, prefix):
                role.add_to_policy(statement)
        for statement in self.release_models.policy_statements(self):
            role.add_to_policy(statement)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PassSageMakerRole",
                actions=["iam:PassRole"],
                resources=[d.execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        d.grant(role)
        for statement in failure_policy_statements(self.topic, key):
            role.add_to_policy(statement)
        acknowledge_wildcard_resources(
            default_policy(role),
            [
                (
                    sagemaker_arn(self, "model", f"{prefix}-*"),
                    f"SageMaker models named {prefix}-* only.",
                ),
                (
                    sagemaker_arn(self, "endpoint-config", f"{prefix}-*"),
                    f"SageMaker endpoint configurations named {prefix}-* only.",
                ),
                (self.registry.package_arns, "Versions of the environment's group only."),
            ],
        )
        return role

    def _definition(self) -> sfn.IChainable:
        notify = self._failure_states()
        ab = self.deployment.deploy.ab_test
        report = self._state(
            REPORT_RELEASE,
            {
                "Type": "Pass",
                "Parameters": {
                    "result": "deployed",
                    "model_package.$": "$.package",
                    "endpoint_name": self.endpoint_name,
                    "endpoint_config_name.$": "$.endpoint_config.EndpointConfigName",
                    "model_name.$": "$.model.ModelName",
                    **({"ab.$": "$.ab"} if ab else {}),
                },
            },
        )
        deploy = self.deployment.fragment(
            self, then=report, notify_failure=notify, live_model="$.ab.live_model" if ab else None
        )
        start = self._state(
            START_RELEASE,
            {
                "Type": "Pass",
                "Comment": "The event, and the release's id (tags of what it creates).",
                "Parameters": {
                    "event.$": "$",
                    "run_id.$": "States.Hash($$.Execution.Name, 'MD5')",
                    **({"ab": NO_ENDPOINT_DECISION} if ab else {}),
                },
            },
        )
        describe = self.describe_package.state(self, notify)
        start.next(describe)
        still = sfn.Choice(self, STILL_APPROVED, comment="The event may be older than a change.")
        gone = sfn.Succeed(self, NOT_APPROVED)
        live = self._read_live_endpoint()
        create_model = self.release_models.state(self, notify)
        describe.next(still)
        still.when(
            sfn.Condition.string_equals("$.package.approval_status", "Approved"), live
        ).otherwise(gone)
        quiet = released_elsewhere(self, self.endpoint_name, notify)
        models = self.release_models
        claim = models.claim(self, CLAIM_RELEASE, "$.live.EndpointConfigName", quiet)
        claim_first = models.claim(self, CLAIM_FIRST_RELEASE, None, quiet)
        live.next(self._compare_live_version()).next(self._already_live(claim))
        claim.next(self._ab_decision(create_model, notify) if ab else create_model)
        live.add_catch(claim_first, errors=["States.ALL"], result_path="$.live_error")
        claim_first.next(create_model)
        create_model.next(deploy.start)
        return start

    def _already_live(self, otherwise: sfn.IChainable) -> sfn.Choice:
        """The endpoint has this version's configuration (in service, or being created or
        updated by an execution before this one): nothing to do; else ``otherwise``."""
        done = self._state(
            ALREADY_RELEASED,
            {
                "Type": "Pass",
                "Parameters": {
                    "result": "already serving this version",
                    "model_package.$": "$.package",
                    "endpoint_name": self.endpoint_name,
                    "endpoint_config_name.$": "$.live.EndpointConfigName",
                },
                "End": True,
            },
        )
        busy = [sfn.Condition.string_equals("$.live.EndpointStatus", s) for s in SETTLED_OR_BUSY]
        already = sfn.Choice(self, ALREADY_LIVE)
        already.when(
            sfn.Condition.and_(
                sfn.Condition.string_equals_json_path("$.check.live", "$.check.tag"),
                sfn.Condition.or_(*busy),
            ),
            done,
        ).otherwise(otherwise)
        return already

    def _ab_decision(self, then: sfn.IChainable, notify: sfn.IChainable) -> sfn.IChainable:
        """Which model of the live configuration stays on Live (``_ab_states.py``)."""
        return ab_states(
            self,
            self.deployment.deploy,
            self.deployment.builder,
            name_prefix=self.name_prefix,
            then=then,
            notify_failure=notify,
        )

    def _state(self, state_id: str, state_json: dict[str, Any]) -> sfn.CustomState:
        return sfn.CustomState(self, state_id, state_json=state_json)

    def _read_live_endpoint(self) -> sfn.CustomState:
        state = self._state(
            READ_LIVE_ENDPOINT,
            {
                "Type": "Task",
                "Comment": "Fails for an absent endpoint: then nothing is live yet.",
                "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:describeEndpoint",
                "Parameters": {"EndpointName": self.endpoint_name},
                "ResultSelector": {
                    "EndpointConfigName.$": "$.EndpointConfigName",
                    "EndpointStatus.$": "$.EndpointStatus",
                },
                "ResultPath": "$.live",
            },
        )
        self.deployment.builder.retry_sagemaker(state, sdk=True)
        return state

    def _compare_live_version(self) -> sfn.CustomState:
        """The live configuration is named after its model, '<name_prefix>-v<N>-...' for a
        release: its first part after the prefix against this version's 'v<N>'."""
        prefix = self.name_prefix
        first = prefix.count("-") + 1
        return self._state(
            COMPARE_LIVE_VERSION,
            {
                "Type": "Pass",
                "Parameters": {
                    "tag.$": "States.Format('v{}', $.package.version)",
                    "live.$": (
                        "States.ArrayGetItem(States.StringSplit($.live.EndpointConfigName, '-'), "
                        f"{first})"
                    ),
                },
                "ResultPath": "$.check",
            },
        )

    def _failure_states(self) -> sfn.CustomState:
        return notify_then_fail(
            self,
            notify_id=NOTIFY_RELEASE_FAILURE,
            fail_id=RELEASE_FAILED,
            topic=self.topic,
            subject=f"{self.name_prefix} release failed",
            what="Release",
        )

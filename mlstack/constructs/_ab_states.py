"""The release's A/B decision: which model of the live configuration stays on ``Live``.

With ``deploy.candidate_weight`` > 0 the live configuration serves two release models, ``Live``
and ``Candidate`` (named ``<name_prefix>-v<N>-...``). Before an update puts the new version on
``Candidate``, the release compares the two versions' quality gate metric (the value the
training workflow's gate read, kept in each version's ``CustomerMetadataProperties`` as
``gate_metric`` and ``gate_value``): the candidate becomes ``Live`` only when its value passes
the gate's comparison against the live version's; otherwise the live model stays and the
candidate is dropped. ``$.ab`` says which (``decision``), why (``reason``) and the model the
update puts on ``Live`` (``live_model``).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._deploy_states import COMPARE, COMPARISON_SYMBOLS
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs.roles import sagemaker_arn
from mlstack.constructs.state_names import (
    AB_EVIDENCE,
    CANDIDATE_BETTER,
    DESCRIBE_CANDIDATE_VERSION,
    DESCRIBE_LIVE_VERSION,
    KEEP_LIVE,
    KEEP_LIVE_UNMEASURED,
    PROMOTE_CANDIDATE,
    READ_AB_METRICS,
    READ_LIVE_VARIANTS,
)
from mlstack.constructs.workflow_options import DeployStage

__all__ = ["AB_STATES", "NO_ENDPOINT_DECISION", "ab_policy_statements", "ab_states"]

AB_STATES = (
    READ_LIVE_VARIANTS,
    DESCRIBE_LIVE_VERSION,
    DESCRIBE_CANDIDATE_VERSION,
    AB_EVIDENCE,
    READ_AB_METRICS,
    CANDIDATE_BETTER,
    PROMOTE_CANDIDATE,
    KEEP_LIVE,
    KEEP_LIVE_UNMEASURED,
)
# $.ab when there is no live endpoint: the new version takes both variants.
NO_ENDPOINT_DECISION = {
    "decision": "none",
    "reason": "no live endpoint: the new version serves both variants",
}
_INPUT = "$.ab_input"


def ab_states(
    scope: Construct,
    deploy: DeployStage,
    builder: StateBuilder,
    *,
    name_prefix: str,
    then: sfn.IChainable,
    notify_failure: sfn.IChainable,
) -> sfn.IChainable:
    """Read live variants -> Describe Live/Candidate version -> A/B evidence? -> Read A/B
    metrics -> Candidate did better? -> Promote candidate | Keep live (| Keep live unmeasured)
    -> ``then``. Expects ``$.live.EndpointConfigName`` and ``$.event.detail.ModelPackageArn``."""
    scope_states = _AbStates(scope, deploy, builder, name_prefix, notify_failure)
    return scope_states.build(then)


def ab_policy_statements(scope: Construct, name_prefix: str) -> list[iam.PolicyStatement]:
    """What the A/B states call beside the registry's reads (Describe Live/Candidate version are
    the group's DescribeModelPackage, :meth:`ModelRegistry.grant_read`): Read live variants
    describes the live configuration, named ``<name_prefix>-...``, for its models."""
    return [
        iam.PolicyStatement(
            sid="ReadLiveVariants",
            actions=["sagemaker:DescribeEndpointConfig"],
            resources=[sagemaker_arn(scope, "endpoint-config", f"{name_prefix}-*")],
        )
    ]


class _AbStates:
    def __init__(
        self,
        scope: Construct,
        deploy: DeployStage,
        builder: StateBuilder,
        name_prefix: str,
        notify_failure: sfn.IChainable,
    ) -> None:
        self.scope = scope
        self.deploy = deploy
        self.builder = builder
        self.prefix = name_prefix
        self.notify_failure = notify_failure
        self.symbol = COMPARISON_SYMBOLS[deploy.comparison]

    def build(self, then: sfn.IChainable) -> sfn.IChainable:
        read = self._read_variants()
        unmeasured = self._decision(
            KEEP_LIVE_UNMEASURED,
            "kept live",
            _first(f"{_INPUT}.live_models"),
            "States.Format('no comparable measurement of the candidate {} against the live "
            "model {}: the live model stays Live and the candidate is dropped', "
            f"{_first(f'{_INPUT}.candidate_models')}, {_first(f'{_INPUT}.live_models')})",
        )
        describe_live = self._describe(DESCRIBE_LIVE_VERSION, "live", unmeasured)
        describe_candidate = self._describe(DESCRIBE_CANDIDATE_VERSION, "candidate", unmeasured)
        evidence = sfn.Choice(
            self.scope, AB_EVIDENCE, comment="Both versions carry the same gate metric?"
        )
        metrics = sfn.CustomState(
            self.scope,
            READ_AB_METRICS,
            state_json={
                "Type": "Pass",
                "Parameters": {
                    "metric.$": f"{_INPUT}.live.metadata.gate_metric",
                    "live.$": f"States.StringToJson({_INPUT}.live.metadata.gate_value)",
                    "candidate.$": f"States.StringToJson({_INPUT}.candidate.metadata.gate_value)",
                },
                "ResultPath": f"{_INPUT}.values",
            },
        )
        better = sfn.Choice(
            self.scope,
            CANDIDATE_BETTER,
            comment=f"Candidate's {self.deploy.metric} {self.symbol} Live's?",
        )
        promote, keep = self._verdicts()
        read.next(describe_live).next(describe_candidate).next(evidence)
        evidence.when(self._comparable(), metrics).otherwise(unmeasured)
        metrics.next(better)
        self._compare(better, promote).otherwise(keep)
        for state in (promote, keep, unmeasured):
            state.next(then)
        return read

    def _compare(self, better: sfn.Choice, promote: sfn.IChainable) -> sfn.Choice:
        """The candidate's value against the live one's by the comparison the candidate's gate
        recorded (``gate_comparison``: a table's gate has its own), else ``deploy.comparison``
        (a version registered before the comparison was recorded)."""
        values = (f"{_INPUT}.values.candidate", f"{_INPUT}.values.live")
        recorded = f"{_INPUT}.candidate.metadata.gate_comparison"
        for name, compare in COMPARE.items():
            better.when(
                sfn.Condition.and_(
                    sfn.Condition.is_present(recorded),
                    sfn.Condition.string_equals(recorded, name),
                    compare(*values),
                ),
                promote,
            )
        return better.when(
            sfn.Condition.and_(
                sfn.Condition.not_(sfn.Condition.is_present(recorded)),
                COMPARE[self.deploy.comparison](*values),
            ),
            promote,
        )

    def _comparable(self) -> sfn.Condition:
        present = [
            sfn.Condition.is_present(f"{_INPUT}.{side}.metadata.{key}")
            for side in ("live", "candidate")
            for key in ("gate_metric", "gate_value")
        ]
        return sfn.Condition.and_(
            *present,
            sfn.Condition.string_equals_json_path(
                f"{_INPUT}.live.metadata.gate_metric", f"{_INPUT}.candidate.metadata.gate_metric"
            ),
        )

    def _verdicts(self) -> tuple[sfn.CustomState, sfn.CustomState]:
        measured = (
            "candidate version {} has {} = {}, live version {} has {}"
            f"; the gate requires {self.symbol}"
        )
        args = (
            "$.ab_input.candidate.version, $.ab_input.values.metric, "
            "$.ab_input.values.candidate, $.ab_input.live.version, $.ab_input.values.live"
        )
        promote = self._decision(
            PROMOTE_CANDIDATE,
            "promoted",
            _first(f"{_INPUT}.candidate_models"),
            f"States.Format('{measured}: the candidate becomes Live', {args})",
        )
        keep = self._decision(
            KEEP_LIVE,
            "kept live",
            _first(f"{_INPUT}.live_models"),
            f"States.Format('{measured}: the live model stays Live and the candidate is "
            f"dropped', {args})",
        )
        return promote, keep

    def _decision(self, state_id: str, decision: str, model: str, reason: str) -> sfn.CustomState:
        return sfn.CustomState(
            self.scope,
            state_id,
            state_json={
                "Type": "Pass",
                "Parameters": {"decision": decision, "reason.$": reason, "live_model.$": model},
                "ResultPath": "$.ab",
            },
        )

    def _version(self, model: str) -> str:
        """'N' of a release model '<name_prefix>-v<N>-...': the last part of 'v<N>' split at
        'v' (whether or not the split keeps the empty part before the 'v')."""
        first = self.prefix.count("-") + 1
        tag = f"States.ArrayGetItem(States.StringSplit({model}, '-'), {first})"
        parts = f"States.StringSplit({tag}, 'v')"
        return f"States.ArrayGetItem({parts}, States.MathAdd(States.ArrayLength({parts}), -1))"

    def _read_variants(self) -> sfn.CustomState:
        state = sfn.CustomState(
            self.scope,
            READ_LIVE_VARIANTS,
            state_json={
                "Type": "Task",
                "Comment": "The live configuration's Live and Candidate models.",
                "Resource": (
                    f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:describeEndpointConfig"
                ),
                "Parameters": {"EndpointConfigName.$": "$.live.EndpointConfigName"},
                "ResultSelector": {
                    "live_models.$": ("$.ProductionVariants[?(@.VariantName == 'Live')].ModelName"),
                    "candidate_models.$": (
                        "$.ProductionVariants[?(@.VariantName == 'Candidate')].ModelName"
                    ),
                },
                "ResultPath": _INPUT,
            },
        )
        self.builder.retry_sagemaker(state, sdk=True)
        state.add_catch(self.notify_failure, errors=["States.ALL"], result_path="$.error")
        return state

    def _describe(self, state_id: str, side: str, unmeasured: sfn.IChainable) -> sfn.CustomState:
        """describeModelPackage of the version of the ``side`` variant's model: its ARN is the
        released version's with the other number (model-package/<group>/<N>)."""
        arn_parts = "States.StringSplit($.event.detail.ModelPackageArn, '/')"
        model = _first(f"{_INPUT}.{side}_models")
        body: dict[str, Any] = {
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:describeModelPackage",
            "Parameters": {
                "ModelPackageName.$": (
                    f"States.Format('{{}}/{{}}/{{}}', States.ArrayGetItem({arn_parts}, 0), "
                    f"States.ArrayGetItem({arn_parts}, 1), {self._version(model)})"
                )
            },
            "ResultSelector": {
                "version.$": "$.ModelPackageVersion",
                "metadata.$": "$.CustomerMetadataProperties",
            },
            "ResultPath": f"{_INPUT}.{side}",
        }
        state = sfn.CustomState(self.scope, state_id, state_json=body)
        self.builder.retry_sagemaker(state, sdk=True)
        # A model that is no release's (no version to describe) is no evidence.
        state.add_catch(unmeasured, errors=["States.ALL"], result_path="$.ab_error")
        return state


def _first(path: str) -> str:
    return f"States.ArrayGetItem({path}, 0)"

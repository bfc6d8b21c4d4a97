"""LocalSageMaker is a facade: every SageMaker call the state machine's tasks make reaches a
method of it named as boto3 names the operation, whatever entity module runs it.

Expected names come from botocore's SageMaker service model (its operation names, turned into
boto3's snake_case method names by botocore's own ``xform_name``) and from the actions local mode
dispatches (``mlstack.local.tasks``)."""

from __future__ import annotations

import botocore.session
from botocore import xform_name

from mlstack.local.sagemaker import LocalSageMaker
from mlstack.local.tasks import _SAGEMAKER_ACTIONS

OPERATIONS = botocore.session.get_session().get_service_model("sagemaker").operation_names


def test_every_dispatched_action_is_a_sagemaker_operation_with_its_boto3_name() -> None:
    for action, method in _SAGEMAKER_ACTIONS.items():
        operation = action[0].upper() + action[1:]
        assert operation in OPERATIONS, operation
        assert xform_name(operation) == method


def test_the_facade_answers_every_dispatched_operation() -> None:
    missing = [
        m for m in _SAGEMAKER_ACTIONS.values() if not callable(getattr(LocalSageMaker, m, None))
    ]
    assert not missing, missing

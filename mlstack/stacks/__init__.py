"""Stacks compose the constructs for one environment; the stage groups them."""

from mlstack.stacks.data_stack import DataStack
from mlstack.stacks.serving_stack import ServingStack
from mlstack.stacks.stage import MlStackStage
from mlstack.stacks.workflow_stack import WorkflowStack

__all__ = ["DataStack", "MlStackStage", "ServingStack", "WorkflowStack"]

"""One environment as a CDK stage: ``cdk deploy '<env>/*'``."""

from __future__ import annotations

from aws_cdk import Environment, Stage, Tags
from constructs import Construct

from mlstack.config import EnvironmentConfig
from mlstack.stacks.data_stack import DataStack
from mlstack.stacks.serving_stack import ServingStack
from mlstack.stacks.workflow_stack import WorkflowStack


class MlStackStage(Stage):
    """Data (stateful), Workflow and, when the config names the served model (a registry
    version or an artifact), Serving.

    Args:
        config: the environment's validated config.

    Attributes:
        data: the :class:`DataStack`.
        workflow: the :class:`WorkflowStack`.
        serving: the :class:`ServingStack`, or None while the config names no served model.
    """

    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig) -> None:
        env = None
        if config.account or config.region:
            env = Environment(account=config.account, region=config.region)
        super().__init__(scope, id, env=env)
        Tags.of(self).add("mlstack:environment", config.name)
        self.data = DataStack(self, "Data", config=config)
        self.workflow = WorkflowStack(
            self, "Workflow", config=config, data=self.data.data, registry=self.data.registry
        )
        self.serving: ServingStack | None = None
        if config.endpoint.enabled:
            self.serving = ServingStack(
                self,
                "Serving",
                config=config,
                data=self.data.data,
                registry=self.data.registry,
                network=self.workflow.network,
            )

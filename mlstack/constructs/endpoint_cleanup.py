"""Deletes an endpoint that CloudFormation does not own when its stack is deleted."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_iam as iam
from constructs import Construct

from mlstack.constructs._deletion_cleanup import deletion_cleanup
from mlstack.constructs.roles import sagemaker_arn

CODE_DIR = Path(__file__).resolve().parent / "endpoint_cleanup_code"


class EndpointCleanup(Construct):
    """Creates a custom resource whose deletion deletes the SageMaker endpoint ``endpoint_name``
    (for example the one a workflow's deploy stage creates), with a function whose role may only
    describe and delete that endpoint and write its own log group.

    Everything else in the stack that the endpoint uses (its alarms, and through the stack's
    dependencies the KMS key of another stack) is deleted after it: add dependencies with
    ``node.add_dependency`` on this construct's ``resource``.

    Args:
        endpoint_name: the endpoint to delete with the stack.

    Attributes:
        resource: the custom resource; what depends on the endpoint should depend on it.
        function: the function that deletes the endpoint.
        role: the function's role.
    """

    def __init__(self, scope: Construct, id: str, *, endpoint_name: str) -> None:
        super().__init__(scope, id)

        def grant(role: iam.Role) -> None:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="DeleteTheEndpoint",
                    actions=["sagemaker:DeleteEndpoint", "sagemaker:DescribeEndpoint"],
                    resources=[sagemaker_arn(self, "endpoint", endpoint_name)],
                )
            )

        cleanup = deletion_cleanup(
            self,
            description=f"Deletes endpoint {endpoint_name} when its stack is deleted",
            code_dir=CODE_DIR,
            resource_type="Custom::EndpointCleanup",
            properties={"EndpointName": endpoint_name},
            grant=grant,
        )
        self.role, self.function, self.resource = cleanup.role, cleanup.function, cleanup.resource

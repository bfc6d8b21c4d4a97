"""Deletes a model package group's versions when its stack is deleted."""

from __future__ import annotations

from pathlib import Path

from constructs import Construct

from mlstack.constructs._deletion_cleanup import deletion_cleanup
from mlstack.constructs.model_registry import ModelRegistry

CODE_DIR = Path(__file__).resolve().parent / "model_package_cleanup_code"


class ModelPackageCleanup(Construct):
    """Creates a custom resource whose deletion deletes every version of ``registry``'s model
    package group, so that CloudFormation can then delete the group (it cannot while the group
    holds versions), with a function whose role may only list the group's versions, delete them
    and write its own log group.

    Create it only where the group is deleted with its stack (``RemovalPolicy.DESTROY``), in a
    stack deleted before the group's, and make what registers versions depend on ``resource``
    so that it is deleted first.

    Args:
        registry: the :class:`ModelRegistry` whose versions are deleted with the stack.

    Attributes:
        resource: the custom resource.
        function: the function that deletes the versions.
        role: the function's role.
    """

    def __init__(self, scope: Construct, id: str, *, registry: ModelRegistry) -> None:
        super().__init__(scope, id)
        group = registry.group_name
        cleanup = deletion_cleanup(
            self,
            description=f"Deletes the versions of model package group {group} with its stack",
            code_dir=CODE_DIR,
            resource_type="Custom::ModelPackageCleanup",
            properties={"ModelPackageGroupName": group},
            grant=registry.grant_delete_versions,
            scoped_wildcards=[(registry.package_arns, "The versions of this group only.")],
        )
        self.role, self.function, self.resource = cleanup.role, cleanup.function, cleanup.resource

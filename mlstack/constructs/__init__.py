"""Reusable constructs of mlstack; each is usable on its own in any stack."""

from mlstack.constructs.data_bucket import DataBucket
from mlstack.constructs.dataset_seeder import DatasetSeeder
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.model_images import ModelImage, ModelImages
from mlstack.constructs.realtime_endpoint import RealtimeEndpoint
from mlstack.constructs.roles import SageMakerExecutionRole, SeedFunctionRole, StateMachineRole
from mlstack.constructs.training_workflow import TrainingWorkflow, WorkflowDefaults

__all__ = [
    "BucketLayout",
    "DataBucket",
    "DatasetSeeder",
    "ModelImage",
    "ModelImages",
    "RealtimeEndpoint",
    "SageMakerExecutionRole",
    "SeedFunctionRole",
    "StateMachineRole",
    "TrainingWorkflow",
    "WorkflowDefaults",
]

"""Reusable constructs of mlstack; each is usable on its own in any stack."""

from mlstack.constructs.data_bucket import DataBucket
from mlstack.constructs.data_quality_monitor import DataQualityMonitor, DriftAlarm
from mlstack.constructs.dataset_seeder import DatasetSeeder
from mlstack.constructs.drift_monitor import DriftMonitor, MonitorSettings
from mlstack.constructs.drift_retraining import RetrainOnDrift
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.log_encryption import LogGroupEncryption
from mlstack.constructs.model_images import ModelImage, ModelImages
from mlstack.constructs.model_package_cleanup import ModelPackageCleanup
from mlstack.constructs.model_registry import ModelRegistry
from mlstack.constructs.model_release import ModelRelease
from mlstack.constructs.monitoring import (
    AlarmThresholds,
    EndpointAlarms,
    MonitoredEndpoint,
    WorkflowMonitoring,
)
from mlstack.constructs.network import Placement, WorkloadNetwork
from mlstack.constructs.realtime_endpoint import (
    AsyncInference,
    DataCapture,
    EndpointVariant,
    RealtimeEndpoint,
    ServerlessInference,
    VariantAutoscaling,
)
from mlstack.constructs.retraining_schedule import RetrainingSchedule
from mlstack.constructs.roles import (
    ContainerAccess,
    SageMakerExecutionRole,
    SeedFunctionRole,
    StateMachineRole,
)
from mlstack.constructs.training_workflow import TrainingWorkflow, WorkflowDefaults
from mlstack.constructs.workflow_options import (
    DataQualityBaseline,
    DeployStage,
    HyperparameterTuning,
    ModelRegistration,
    SpotTraining,
    TrafficShift,
)

__all__ = [
    "AlarmThresholds",
    "AsyncInference",
    "BucketLayout",
    "ContainerAccess",
    "DataBucket",
    "DataCapture",
    "DataQualityBaseline",
    "DataQualityMonitor",
    "DatasetSeeder",
    "DeployStage",
    "DriftAlarm",
    "DriftMonitor",
    "EndpointAlarms",
    "EndpointVariant",
    "HyperparameterTuning",
    "LogGroupEncryption",
    "ModelImage",
    "ModelImages",
    "ModelPackageCleanup",
    "ModelRegistration",
    "ModelRegistry",
    "ModelRelease",
    "MonitorSettings",
    "MonitoredEndpoint",
    "Placement",
    "RealtimeEndpoint",
    "RetrainOnDrift",
    "RetrainingSchedule",
    "SageMakerExecutionRole",
    "SeedFunctionRole",
    "ServerlessInference",
    "SpotTraining",
    "StateMachineRole",
    "TrafficShift",
    "TrainingWorkflow",
    "VariantAutoscaling",
    "WorkflowDefaults",
    "WorkflowMonitoring",
    "WorkloadNetwork",
]

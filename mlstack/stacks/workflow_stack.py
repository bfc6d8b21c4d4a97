"""The training workflow of one environment: images, seeding Lambda and state machine."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlstack.config import EnvironmentConfig
from mlstack.constructs import (
    DataBucket,
    DatasetSeeder,
    ModelImages,
    TrainingWorkflow,
    WorkflowDefaults,
)

R = logs.RetentionDays
RETENTION_DAYS = {
    1: R.ONE_DAY,
    3: R.THREE_DAYS,
    5: R.FIVE_DAYS,
    7: R.ONE_WEEK,
    14: R.TWO_WEEKS,
    30: R.ONE_MONTH,
    60: R.TWO_MONTHS,
    90: R.THREE_MONTHS,
    120: R.FOUR_MONTHS,
    150: R.FIVE_MONTHS,
    180: R.SIX_MONTHS,
    365: R.ONE_YEAR,
    400: R.THIRTEEN_MONTHS,
    545: R.EIGHTEEN_MONTHS,
    731: R.TWO_YEARS,
    1096: R.THREE_YEARS,
    1827: R.FIVE_YEARS,
    2192: R.SIX_YEARS,
    2557: R.SEVEN_YEARS,
    2922: R.EIGHT_YEARS,
    3288: R.NINE_YEARS,
    3653: R.TEN_YEARS,
}


class WorkflowStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        data: DataBucket,
        **kwargs: Any,
    ):
        super().__init__(
            scope, id, description=f"mlstack {config.name}: training workflow", **kwargs
        )
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        retention = RETENTION_DAYS[config.workflow.log_retention_days]
        images = ModelImages(
            self,
            "Images",
            training_image_uri=config.images.training_image_uri,
            inference_image_uri=config.images.inference_image_uri,
            training_metric_definitions=config.images.training_metric_definitions,
        )
        seeder = DatasetSeeder(
            self,
            "Seeder",
            bucket=data.bucket,
            key=data.key,
            layout=data.layout,
            default_rows=config.dataset.rows,
            default_seed=config.dataset.seed,
            max_rows=config.dataset.max_rows,
            log_retention=retention,
            removal_policy=removal,
        )
        self.workflow = TrainingWorkflow(
            self,
            "Workflow",
            bucket=data.bucket,
            key=data.key,
            layout=data.layout,
            images=images,
            seed_function=seeder.function,
            name_prefix=config.name_prefix,
            defaults=WorkflowDefaults(
                rows=config.dataset.rows,
                seed=config.dataset.seed,
                training_instance_type=config.training.instance_type,
                training_instance_count=config.training.instance_count,
                transform_instance_type=config.transform.instance_type,
                transform_instance_count=config.transform.instance_count,
                hyperparameters=config.training.hyperparameters,
            ),
            training_volume_size_gb=config.training.volume_size_gb,
            training_max_runtime=Duration.seconds(config.training.max_runtime_seconds),
            timeout=Duration.minutes(config.workflow.timeout_minutes),
            notification_email=config.notification_email,
            log_retention=retention,
            removal_policy=removal,
        )
        CfnOutput(self, "StateMachineArn", value=self.workflow.state_machine.state_machine_arn)
        CfnOutput(self, "FailureTopicArn", value=self.workflow.topic.topic_arn)

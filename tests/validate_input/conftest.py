"""Fixtures for the execution-input validation Lambda: its handler module and a schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mlstack.rules import (
    execution_input_model,
    execution_input_schema,
    training_image_hyperparameters,
    training_image_metric_definitions,
)
from tests.lambdas import load_handler

CODE_DIR = Path(__file__).resolve().parents[2] / "lambda" / "validate_input"
REPO = Path(__file__).resolve().parents[2]

load_handler("validate_input_handler", "validate_input")

DEFAULTS: dict[str, Any] = {
    "rows": 1000,
    "seed": 42,
    "training_instance_type": "ml.m5.large",
    "training_instance_count": 1,
    "transform_instance_type": "ml.m5.large",
    "transform_instance_count": 1,
    "hyperparameters": {"objective": "reg:logistic", "eval_metric": "rmse", "num_round": "5"},
    "tune": False,
    "tuning_strategy": "Random",
    "tuning_max_jobs": 4,
    "tuning_max_parallel_jobs": 2,
    "tuning_objective": {"Type": "Minimize", "MetricName": "validation:rmse"},
    "tuning_ranges": {
        "IntegerParameterRanges": [
            {"Name": "max_depth", "MinValue": "2", "MaxValue": "8", "ScalingType": "Auto"}
        ],
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": [],
    },
    "quality_threshold": 0.35,
    "dataset_source": {"uri": "iris/", "label": "species"},
}
METRICS = [m["Name"] for m in training_image_metric_definitions() or []]


@pytest.fixture(scope="session")
def model() -> type[BaseModel]:
    """The execution input of a workflow with both optional paths and the built training image."""
    return execution_input_model(
        DEFAULTS,
        max_rows=5000,
        hyperparameter_names=training_image_hyperparameters(),
        metric_names=METRICS,
        tuning=True,
        deploy=True,
    )


@pytest.fixture(scope="session")
def schema(model: type[BaseModel]) -> dict[str, Any]:
    return execution_input_schema(model)

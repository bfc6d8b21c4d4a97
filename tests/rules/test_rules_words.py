"""Config errors and Validate input's problems word the same bad value the same way.

Both end in ``is <value> (<JSON type>); expected <what the schema accepts>``, written by one
function (``mlstack.portable_rules.describe`` and ``expected``; the Lambda carries the generated
copy). The pairs below are one rule checked at two layers: an environment key and the execution
input key that overrides it (``docs/configuration.md`` and ``docs/execution-input.md`` list
both), and the schedule's execution input, which config checks with the run's own schema.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest

from mlstack import portable_rules, rules
from mlstack.config import ConfigError, parse_environment
from tests.rules.conftest import DEV, REPO

# (environment key, execution input key, a value both refuse)
PAIRS = [
    ("training.instance_count", "training_instance_count", "two"),
    ("training.instance_count", "training_instance_count", 0),
    ("transform.instance_count", "transform_instance_count", 101),
    ("dataset.seed", "seed", -1),
    ("tuning.strategy", "tuning_strategy", "Grid"),
    ("tuning.max_jobs", "tuning_max_jobs", 501),
    ("tuning.max_parallel_jobs", "tuning_max_parallel_jobs", 0),
    ("tuning.enabled", "tune", "yes"),
    ("deploy.threshold", "quality_threshold", "high"),
]


def _config_problem(path: str, value: Any) -> str:
    data = copy.deepcopy(DEV)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[last] = value
    with pytest.raises(ConfigError) as refused:
        parse_environment("dev", data)
    (line,) = [line for line in str(refused.value).splitlines() if f"key '{path}' is" in line]
    return line


def _lambda_problem(key: str, value: Any) -> str:
    # The dev workflow's execution input: its tuning and deploy paths, the built image.
    model = rules.execution_input_model(
        None,
        max_rows=DEV["dataset"]["max_rows"],
        hyperparameter_names=rules.training_image_hyperparameters(),
        metric_names=[m["Name"] for m in rules.training_image_metric_definitions() or []],
        tuning=True,
        deploy=True,
    )
    verdict = sys.modules["validate_input_handler"].handler(
        {"input": {key: value}, "schema": rules.execution_input_schema(model)}, None
    )
    (problem,) = verdict["problems"]
    assert isinstance(problem, str)
    return problem


def _wording(problem: str) -> str:
    """What follows the key's name: 'is <value> (<type>); expected <words>'."""
    return problem[problem.index("' is ") + 2 :]


@pytest.mark.parametrize(("config_key", "input_key", "value"), PAIRS)
def test_a_bad_value_reads_the_same_in_config_and_in_validate_input(
    config_key: str, input_key: str, value: Any
) -> None:
    from_config = _wording(_config_problem(config_key, value))
    from_lambda = _wording(_lambda_problem(input_key, value))
    assert from_config == from_lambda
    # The value as the user wrote it in JSON, with its JSON type (RFC 8259's names).
    assert from_config.startswith(f"is {portable_rules.describe(value)}; expected ")


@pytest.mark.parametrize(
    ("key", "value"), [("tuning_strategy", "Grid"), ("rows", 0), ("seed", "x")]
)
def test_a_bad_schedule_input_reads_as_the_run_would_refuse_it(key: str, value: Any) -> None:
    data = copy.deepcopy(DEV)
    data["schedule"]["enabled"] = True
    data["schedule"]["input"] = {key: value}
    with pytest.raises(ConfigError) as refused:
        parse_environment("dev", data)
    (line,) = [
        line for line in str(refused.value).splitlines() if f"key 'schedule.input.{key}' is" in line
    ]
    assert _wording(line) == _wording(_lambda_problem(key, value))


def test_the_lambdas_copy_words_with_the_same_function() -> None:
    handler = sys.modules["validate_input_handler"]
    copy_path = REPO / "lambda" / "validate_input" / "portable_rules.py"
    assert handler.portable_rules.__file__ == str(copy_path)
    assert handler.describe is handler.portable_rules.describe


def test_each_lambda_handler_uses_the_copy_beside_it() -> None:
    # As Lambda runs them (the function's folder first on sys.path), whichever a test process
    # loads first: both are loaded by tests/rules/conftest.py.
    for name, function in (("validate_input_handler", "validate_input"), ("seed_handler", "seed")):
        copy_path = REPO / "lambda" / function / "portable_rules.py"
        assert sys.modules[name].portable_rules.__file__ == str(copy_path)

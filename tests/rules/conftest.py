"""Fixtures for the rules' tests: an environment to vary key by key, the execution input of a
workflow with every optional path, and the validation Lambda's handler. No synth, no subprocess:
these tests are part of `make test-fast`."""

from __future__ import annotations

import copy
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from mlstack import rules
from mlstack.config import ConfigError, parse_environment
from tests.lambdas import load_handler

REPO = Path(__file__).resolve().parents[2]

load_handler("validate_input_handler", "validate_input")
load_handler("seed_handler", "seed")

DEV: dict[str, Any] = json.loads((REPO / "environments" / "dev.json").read_text())


def config_accepts(path: str, value: Any, **others: Any) -> bool:
    """Whether dev's environment with ``path`` (dotted) set to ``value`` (and ``others``, dotted
    keys with ``__`` for dots) is accepted."""
    data = copy.deepcopy(DEV)
    for key, item in [(path, value), *((k.replace("__", "."), v) for k, v in others.items())]:
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = item
    try:
        parse_environment("dev", data)
    except ConfigError:
        return False
    return True


@cache
def execution_input() -> type[BaseModel]:
    """The execution input of a workflow with the tuning and deploy paths and the built image."""
    return rules.execution_input_model(
        None,
        hyperparameter_names=rules.training_image_hyperparameters(),
        metric_names=[m["Name"] for m in rules.training_image_metric_definitions() or []],
        tuning=True,
        deploy=True,
    )


@cache
def _input_schema() -> dict[str, Any]:
    return rules.execution_input_schema(execution_input())


def input_accepts(key: str, value: Any) -> bool:
    """Whether the execution input ``{key: value}`` is accepted, by pydantic and by the Lambda's
    interpreter of its JSON Schema (the two must agree)."""
    model = execution_input()
    try:
        model.model_validate_json(json.dumps({key: value}))
        by_model = True
    except ValidationError:
        by_model = False
    schema = _input_schema()
    by_lambda = not sys.modules["validate_input_handler"].check({key: value}, schema)
    assert by_model == by_lambda, (key, value)
    return by_model


@pytest.fixture()
def dev() -> dict[str, Any]:
    return copy.deepcopy(DEV)

"""Each rule has one home: the Lambdas' copies of mlstack/portable_rules.py are what it generates,
and the training image's contract is the one list of its hyperparameters, metrics and content
types that the image and the app read (no source parsing, no copied list)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from mlstack_containers import data, evaluation, hyperparameters

from mlstack import rules

REPO = Path(__file__).resolve().parents[2]


def test_each_lambda_carries_the_generated_copy_of_the_portable_rules() -> None:
    expected = rules.portable_rules_copy()
    assert expected.endswith((REPO / "mlstack" / "portable_rules.py").read_text())
    for copy in rules.PORTABLE_RULES_COPIES:
        assert copy.read_text() == expected, f"{copy} is stale: run `make docs`"


def test_the_portable_rules_use_the_standard_library_only() -> None:
    # The copies run in Lambda's Python runtime, which has neither pydantic nor mlstack.
    tree = ast.parse((REPO / "mlstack" / "portable_rules.py").read_text())
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for a in node.names
    }
    # sys.stdlib_module_names: the standard library's modules of the running Python (3.10+).
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_the_app_reads_no_container_source() -> None:
    # Before: rules.py parsed hyperparameters.py with `ast` to learn the hyperparameter names.
    source = (REPO / "mlstack" / "rules.py").read_text()
    assert "import ast" not in source and "hyperparameters.py" not in source


def test_the_image_and_the_app_read_the_same_contract() -> None:
    contract = rules.training_contract()
    assert contract is not None
    assert contract == hyperparameters.CONTRACT
    assert rules.training_image_hyperparameters() == tuple(sorted(hyperparameters.SPECS))
    assert rules.training_image_metric_definitions() == contract["metric_definitions"]
    assert rules.EVALUATION_METRICS == {
        "binary": evaluation.BINARY_METRICS,
        "multiclass": evaluation.MULTICLASS_METRICS,
        "regression": evaluation.REGRESSION_METRICS,
    }
    assert tuple(contract["content_types"]) == data.SUPPORTED_CONTENT_TYPES


def test_every_metric_definition_reads_an_evaluation_line_of_xgboost() -> None:
    # XGBoost logs "[<round>]\t<data>-<metric>:<value>"; each definition names "<data>:<metric>"
    # with a metric the image accepts as eval_metric.
    for definition in rules.training_image_metric_definitions() or []:
        data_name, metric = definition["Name"].split(":")
        assert metric in hyperparameters.EVAL_METRICS
        line = f"[3]\ttrain-rmse:0.5\t{data_name}-{metric}:0.25"
        match = re.match(definition["Regex"], line)
        assert match is not None and float(match.group(1)) == 0.25, definition


def test_each_hyperparameter_range_of_the_contract_is_what_the_image_enforces() -> None:
    for name, entry in (rules.training_contract() or {})["hyperparameters"].items():
        if entry["type"] not in ("integer", "number"):
            continue
        parse = hyperparameters.SPECS[name].parse
        for edge, open_key, step in (("min", "min_exclusive", -1), ("max", "max_exclusive", 1)):
            if edge not in entry:
                continue
            inside = not entry.get(open_key, False)
            try:
                parse(str(entry[edge]))
                accepted = True
            except ValueError:
                accepted = False
            assert accepted is inside, (name, edge)
            outside = entry[edge] + step
            try:
                parse(str(outside))
                beyond = True
            except ValueError:
                beyond = False
            assert not beyond, (name, outside)

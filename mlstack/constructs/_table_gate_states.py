"""The quality gate of a run on a table (issue #19): Table run? -> (the seeder's run) the gate of
``deploy.metric``, or Table problem type? -> Read <type> gate -> <Type> quality gate -> <Type>
gate passed -> what follows the gate (or Reject table model).

The seeder's gate is fixed at synth (``deploy.metric``, a metric of the demo's problem); a table's
problem type is known only when Prepare data has run, so its gate is chosen at run time from the
evaluation's ``problem_type`` (``$.evaluation.problem_type``: what ``evaluate`` read from the
model's ``schema.json``, present however many instances prepared the data): the default of
``mlstack.rules.TABLE_GATE_DEFAULTS``, or the one gate the environment names for every table
(``DeployStage.table_gate``). A run is a table's when Read prepared dataset wrote
``$.dataset.schema_uri`` (Assemble dataset, the seeder's, does not).

Whichever gate passes writes ``$.gate`` in one shape, which Register model and Report results
read: ``metric``, ``comparison``, ``values`` (the gated value, first), ``threshold``."""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs.state_names import (
    GATE_PASSED,
    PROBLEM_TYPE_UNGATED,
    REJECT_TABLE_MODEL,
    TABLE_PROBLEM_TYPE,
    TABLE_RUN,
    table_gate_names,
)
from mlstack.constructs.workflow_options import path_condition
from mlstack.rules import EVALUATION_METRIC_PREFIX, TABLE_GATE_DEFAULTS, TableGate, comparison

TABLE_MARK = "$.dataset.schema_uri"
PROBLEM_TYPE_PATH = "$.evaluation.problem_type"


def metric_path(metric: str) -> str:
    """Where the evaluation's ``evaluation:<name>`` is: ``$.evaluation.metrics.<name>``."""
    return f"$.evaluation.metrics.{metric.removeprefix(EVALUATION_METRIC_PREFIX)}"


def table_gate_states(
    scope: Construct,
    *,
    seeder_gate: sfn.IChainable,
    on_pass: sfn.IChainable,
    notify_failure: sfn.IChainable,
    named: TableGate | None = None,
) -> sfn.Choice:
    """Table run? -> ``seeder_gate``, or the table's gate -> ``on_pass``; returns Table run?.
    ``named``: the gate of every table; None: the problem type's default."""
    table_run = sfn.Choice(
        scope, TABLE_RUN, comment="Prepare data wrote the run's dataset (its schema)?"
    )
    reject = _failure(
        scope,
        REJECT_TABLE_MODEL,
        "States.Format('Model {} of a {} table has evaluation metrics {}; the quality gate "
        "requires {}. Nothing was deployed.', $.model.ModelName, "
        f"{PROBLEM_TYPE_PATH}, States.JsonToString($.evaluation.metrics), $.gate.rule)",
        notify_failure,
    )
    if named is not None:
        first: sfn.IChainable = _gate(scope, None, named, reject, on_pass)
    else:
        by_type = sfn.Choice(
            scope, TABLE_PROBLEM_TYPE, comment="The evaluation's problem type picks the gate."
        )
        for kind, gate in TABLE_GATE_DEFAULTS.items():
            by_type.when(
                sfn.Condition.string_equals(PROBLEM_TYPE_PATH, kind),
                _gate(scope, kind, gate, reject, on_pass),
            )
        by_type.otherwise(
            _failure(
                scope,
                PROBLEM_TYPE_UNGATED,
                "States.Format('Model {} was evaluated as a {} model, a problem type without "
                "a default quality gate ({}). Nothing was deployed.', $.model.ModelName, "
                f"{PROBLEM_TYPE_PATH}, '{', '.join(TABLE_GATE_DEFAULTS)}')",
                notify_failure,
            )
        )
        first = by_type
    table_run.when(sfn.Condition.is_present(TABLE_MARK), first).otherwise(seeder_gate)
    return table_run


def gate_passed(
    scope: Construct, metric: str, compared: str, on_pass: sfn.IChainable
) -> sfn.CustomState:
    """Gate passed -> ``on_pass``: the seeder's gate on an evaluation metric writes ``$.gate`` in
    the shape a table's gate writes, its value in ``values`` (a training metric's gate reads it
    there already)."""
    state = sfn.CustomState(
        scope,
        GATE_PASSED,
        state_json={
            "Type": "Pass",
            "Parameters": {
                "metric": metric,
                "comparison": compared,
                "values.$": f"States.Array({metric_path(metric)})",
                "threshold.$": "$.gate.threshold",
            },
            "ResultPath": "$.gate",
        },
    )
    state.next(on_pass)
    return state


def _gate(
    scope: Construct,
    kind: str | None,
    gate: TableGate,
    reject: sfn.IChainable,
    on_pass: sfn.IChainable,
) -> sfn.CustomState:
    """Read <kind> gate -> <Kind> quality gate -> <Kind> gate passed -> ``on_pass``, or
    ``reject``: an absent or non-numeric value or threshold (a metric undefined on the data, such
    as an AUC of one class) is a rejection, as the seeder's evaluation gate has it."""
    value = metric_path(gate.metric)
    threshold_path = "$.gate.threshold" if gate.threshold_metric is None else None
    threshold = threshold_path or metric_path(str(gate.threshold_metric))
    described: dict[str, Any] = {
        "metric": gate.metric,
        "comparison": gate.comparison,
        "rule": gate.words(),
    }
    read = sfn.CustomState(
        scope,
        table_gate_names(kind)[0],
        state_json={
            "Type": "Pass",
            "Comment": "The table's gate (its value is in $.evaluation.metrics).",
            "Parameters": {
                **described,
                **({"threshold": gate.threshold} if threshold_path else {}),
            },
            "ResultPath": "$.gate",
        },
    )
    passed = sfn.CustomState(
        scope,
        table_gate_names(kind)[2],
        state_json={
            "Type": "Pass",
            "Parameters": {
                **described,
                "values.$": f"States.Array({value})",
                "threshold.$": threshold,
            },
            "ResultPath": "$.gate",
        },
    )
    choice = sfn.Choice(scope, table_gate_names(kind)[1], comment=gate.words())
    for path in dict.fromkeys((value, threshold)):
        choice.when(sfn.Condition.not_(sfn.Condition.is_present(path)), reject)
        choice.when(sfn.Condition.not_(sfn.Condition.is_numeric(path)), reject)
    compare = path_condition(comparison(gate.comparison))
    choice.when(compare(value, threshold), passed).otherwise(reject)
    passed.next(on_pass)
    read.next(choice)
    return read


def _failure(
    scope: Construct, state_id: str, cause: str, notify_failure: sfn.IChainable
) -> sfn.CustomState:
    state = sfn.CustomState(
        scope,
        state_id,
        state_json={
            "Type": "Pass",
            "Parameters": {"Error": "QualityGateFailed", "Cause.$": cause},
            "ResultPath": "$.error",
        },
    )
    state.next(notify_failure)
    return state

"""Parsing and validating the training job's hyperparameters.

SageMaker hands every hyperparameter over as a string (``hyperparameters.json``). Each name is
looked up in :data:`SPECS`; an unknown name or a value that does not parse or is out of range
raises :class:`HyperparameterError` naming the hyperparameter, the value and what is allowed.

The table of hyperparameters (type, range, the XGBoost parameter each sets) is the image's
contract file, ``training/contract.json`` beside this package's training program, which the app
reads too.

Names SageMaker itself adds are accepted and ignored: ``_tuning_objective_metric`` (automatic
model tuning) and anything starting with ``sagemaker_`` (SDK bookkeeping).

Besides XGBoost's own parameters (passed to ``xgboost.train``), three are the program's:
``num_round`` (required without a schema: boosting rounds), ``early_stopping_rounds`` (needs a
``validation`` channel) and ``csv_weights`` (``1``: the second CSV column is the instance weight).

A job on a prepared dataset (a ``schema`` channel) trains without hand tuning:
:func:`problem_defaults` fills in, from the contract's ``problem_type_defaults``, the objective
and evaluation metric of the schema's problem type (``num_class`` from its classes) when the job
names no objective, and the rounds with early stopping when it names no ``num_round``. A
hyperparameter the job names always wins; one that contradicts the schema (a binary objective on
a 3-class label, ``num_class`` other than the schema's classes) is refused by
:func:`check_problem_type`, naming the hyperparameter and what to do.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack_containers.schema import Schema


class HyperparameterError(ValueError):
    """A hyperparameter is unknown, missing or has a bad value."""


# The image's contract: every hyperparameter with its type and range, and what else the app reads
# of the image (metric definitions, content types). One file, read here and by the app.
CONTRACT_FILE = Path(__file__).resolve().parent / "training" / "contract.json"
CONTRACT: dict[str, Any] = json.loads(CONTRACT_FILE.read_text(encoding="utf-8"))
_TABLE: dict[str, dict[str, Any]] = CONTRACT["hyperparameters"]

# XGBoost 3.2's objectives and evaluation metrics. Ranking (rank:*) needs query groups, which the
# data formats here do not carry.
OBJECTIVES: tuple[str, ...] = tuple(_TABLE["objective"]["values"])
EVAL_METRICS: tuple[str, ...] = tuple(_TABLE["eval_metric"]["values"])
# Metrics that take "@<number>" (error@0.7, ndcg@5, pre@10) or a trailing "-" (ndcg-, map@3-).
_PARAMETRISED_METRICS: tuple[str, ...] = tuple(_TABLE["eval_metric"]["parametrised"])
# What a job on a prepared dataset gets when it names no objective (or no num_round).
PROBLEM_TYPE_DEFAULTS: dict[str, dict[str, str]] = {
    kind: values
    for kind, values in CONTRACT["problem_type_defaults"].items()
    if kind not in ("description", "rounds")
}
ROUNDS: dict[str, int] = CONTRACT["problem_type_defaults"]["rounds"]
OBJECTIVE_PROBLEM_TYPES: dict[str, str] = {
    objective: kind
    for kind, objectives in CONTRACT["objective_problem_types"].items()
    if kind != "description"
    for objective in objectives
}

Parser = Callable[[str], Any]


@dataclass(frozen=True)
class Spec:
    parse: Parser
    allowed: str  # human-readable, for error messages
    xgb_name: str | None = None  # the XGBoost parameter it sets; None: the program's own


def _int(lo: int | None = None, hi: int | None = None) -> Parser:
    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("not an integer") from None
        if not value.is_integer():
            raise ValueError("not an integer")
        number = int(value)
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise ValueError("out of range")
        return number

    return parse


def _float(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Parser:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("not a number") from None
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise ValueError("out of range")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise ValueError("out of range")
        return value

    return parse


def _choice(*options: str) -> Parser:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError("not one of the allowed values")
        return text

    return parse


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise ValueError("not a boolean")


def _metric(name: str) -> str:
    base = name.rstrip("-")
    base, at, arg = base.partition("@")
    if base not in EVAL_METRICS:
        raise ValueError(f"unknown metric {name!r}")
    if at:
        if base not in _PARAMETRISED_METRICS:
            raise ValueError(f"metric {base!r} takes no @ argument")
        _float()(arg)
    return name


def _metrics(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("empty metric list")
    return [_metric(name) for name in names]


def _device(text: str) -> str:
    lowered = text.strip().lower()
    if lowered in ("cpu", "cuda", "gpu") or lowered.startswith(("cuda:", "gpu:")):
        kind, _, ordinal = lowered.partition(":")
        if ordinal:
            _int(0)(ordinal)
        # XGBoost's old spelling "gpu" means CUDA.
        return lowered if kind != "gpu" else "cuda" + lowered[3:]
    raise ValueError("not a device")


def _constraints(text: str) -> str:
    # XGBoost parses these itself; a quick check turns its C++ error into a readable one.
    stripped = text.strip()
    if not (stripped.startswith(("(", "[", "{")) and stripped.endswith((")", "]", "}"))):
        raise ValueError("not a bracketed list")
    return stripped


def _bounds_words(entry: Mapping[str, Any]) -> str:
    low, high = entry.get("min"), entry.get("max")
    if entry["type"] == "integer":
        if high is None:
            return f"an integer >= {low}"
        return f"an integer in [{low}, {high}]"
    if low is None and high is None:
        return "a number"
    if high is None:
        return f"a number {'>' if entry.get('min_exclusive') else '>='} {low}"
    opening = "(" if entry.get("min_exclusive") else "["
    closing = ")" if entry.get("max_exclusive") else "]"
    return f"a number in {opening}{low}, {high}{closing}"


def _choice_words(values: list[str]) -> str:
    if len(values) > 5:
        return "one of " + ", ".join(values)
    return ", ".join(values[:-1]) + " or " + values[-1]


def _spec(entry: Mapping[str, Any]) -> Spec:
    """A hyperparameter's parser and its words, from its entry in the contract."""
    kind = entry["type"]
    parse: Parser
    if kind == "integer":
        parse, allowed = _int(entry.get("min"), entry.get("max")), _bounds_words(entry)
    elif kind == "number":
        parse = _float(
            entry.get("min"),
            entry.get("max"),
            lo_open=entry.get("min_exclusive", False),
            hi_open=entry.get("max_exclusive", False),
        )
        allowed = _bounds_words(entry)
    elif kind == "choice":
        parse, allowed = _choice(*entry["values"]), _choice_words(entry["values"])
    elif kind == "boolean":
        parse, allowed = _bool, "0 or 1"
    elif kind == "metrics":
        parse, allowed = _metrics, "a comma-separated list of " + ", ".join(entry["values"])
    elif kind == "device":
        parse, allowed = _device, "cpu, cuda or cuda:<ordinal>"
    elif kind == "constraints":
        parse, allowed = _constraints, entry["allowed"]
    else:
        raise ValueError(f"{CONTRACT_FILE}: unknown hyperparameter type {kind!r}")
    return Spec(parse, allowed, entry["xgboost"])


SPECS: dict[str, Spec] = {name: _spec(entry) for name, entry in _TABLE.items()}
_IGNORED_PREFIXES = ("sagemaker_",)
_IGNORED = ("_tuning_objective_metric",)


@dataclass(frozen=True)
class Hyperparameters:
    """The validated hyperparameters of one training job."""

    num_round: int
    xgb_params: dict[str, Any] = field(default_factory=dict)
    early_stopping_rounds: int | None = None
    csv_weights: bool = False

    @property
    def objective(self) -> str:
        return str(self.xgb_params.get("objective", "reg:squarederror"))


def _raw_text(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str | int | float):
        return str(value)
    raise HyperparameterError(
        f"hyperparameter {name!r} has a {type(value).__name__} value; expected a string"
    )


def parse_hyperparameters(raw: Mapping[str, object]) -> Hyperparameters:
    """Validate SageMaker's ``hyperparameters.json`` object (string values)."""
    values: dict[str, Any] = {}
    unknown = []
    for name, value in raw.items():
        if name in _IGNORED or name.startswith(_IGNORED_PREFIXES):
            continue
        spec = SPECS.get(name)
        if spec is None:
            unknown.append(name)
            continue
        text = _raw_text(name, value).strip()
        try:
            values[name] = spec.parse(text)
        except ValueError as exc:
            raise HyperparameterError(
                f"hyperparameter {name!r} has an invalid value {text!r} ({exc}); "
                f"expected {spec.allowed}"
            ) from None
    if unknown:
        hints = []
        for name in sorted(unknown):
            close = difflib.get_close_matches(name, SPECS, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise HyperparameterError(
            f"unknown hyperparameter {', '.join(hints)}; see the supported list in the "
            "training image's documentation"
        )
    if "num_round" not in values:
        raise HyperparameterError("hyperparameter 'num_round' is required (an integer >= 1)")
    for alias, canonical in (
        ("learning_rate", "eta"),
        ("min_split_loss", "gamma"),
        ("reg_lambda", "lambda"),
        ("reg_alpha", "alpha"),
    ):
        if alias in values and canonical in values:
            raise HyperparameterError(
                f"hyperparameters {canonical!r} and {alias!r} are the same; give only one"
            )
    objective = values.get("objective", "reg:squarederror")
    if objective.startswith("multi:") and "num_class" not in values:
        raise HyperparameterError(f"objective {objective!r} requires hyperparameter 'num_class'")
    if "num_class" in values and not objective.startswith("multi:"):
        raise HyperparameterError(
            f"hyperparameter 'num_class' only applies to multi:softmax and multi:softprob, "
            f"not {objective!r}"
        )
    xgb_params: dict[str, Any] = {}
    for name, value in values.items():
        target = SPECS[name].xgb_name
        if target is not None:
            xgb_params[target or name] = value
    return Hyperparameters(
        num_round=values["num_round"],
        xgb_params=xgb_params,
        early_stopping_rounds=values.get("early_stopping_rounds"),
        csv_weights=values.get("csv_weights", False),
    )


# --- defaults and checks from the dataset's schema ----------------------------------------------


def objective_problem_type(objective: str) -> str | None:
    """The problem type an objective trains for (the contract's ``objective_problem_types``:
    binary ``binary:*`` and ``reg:logistic``, multiclass ``multi:*``, regression the other
    ``reg:*``, ``count:*`` and ``survival:*``), None for an objective the image does not know."""
    return OBJECTIVE_PROBLEM_TYPES.get(objective)


def _given(raw: Mapping[str, object], name: str) -> bool:
    return name in raw and str(raw[name]).strip() != ""


def problem_defaults(
    raw: Mapping[str, object], schema: Schema, *, has_validation: bool
) -> tuple[dict[str, object], dict[str, str]]:
    """``raw`` with the defaults of the schema's problem type added where the job names none,
    and the defaults added (name: value) for the log.

    No objective named: the problem type's objective and ``eval_metric`` (unless named),
    ``num_class`` for multiclass (a named one is checked by :func:`check_problem_type`). No
    ``num_round`` named: ``ROUNDS['num_round']`` with ``early_stopping_rounds`` on the validation
    channel (unless named), or ``ROUNDS['num_round_without_validation']`` without one."""
    added: dict[str, str] = {}
    if not _given(raw, "objective"):
        defaults = PROBLEM_TYPE_DEFAULTS[schema.problem_type]
        added["objective"] = defaults["objective"]
        if not _given(raw, "eval_metric"):
            added["eval_metric"] = defaults["eval_metric"]
            # A tuning job's objective metric (SageMaker adds "_tuning_objective_metric") must
            # appear in the log: evaluate it too, last, so early stopping follows it (as
            # SageMaker's built-in XGBoost adds the tuning metric to eval_metric).
            tuned = str(raw.get("_tuning_objective_metric", "")).partition(":")[2]
            if tuned in EVAL_METRICS and tuned != defaults["eval_metric"]:
                added["eval_metric"] += f",{tuned}"
    objective = str(raw["objective"]).strip() if _given(raw, "objective") else added["objective"]
    _check_objective(objective, schema)
    if schema.problem_type == "multiclass" and not _given(raw, "num_class"):
        added["num_class"] = str(schema.num_class)
    if not _given(raw, "num_round"):
        if has_validation:
            added["num_round"] = str(ROUNDS["num_round"])
            if not _given(raw, "early_stopping_rounds"):
                added["early_stopping_rounds"] = str(ROUNDS["early_stopping_rounds"])
        else:
            added["num_round"] = str(ROUNDS["num_round_without_validation"])
    return {**raw, **added}, added


def _some(classes: tuple[str, ...], shown: int = 5) -> str:
    """A few class labels for a message (the failure reason keeps 1024 characters)."""
    words = ", ".join(repr(c[:40]) for c in classes[:shown])
    return words + (f" and {len(classes) - shown} more" if len(classes) > shown else "")


def _check_objective(objective: str, schema: Schema) -> None:
    kind = schema.problem_type
    trains = objective_problem_type(objective)
    default = PROBLEM_TYPE_DEFAULTS[kind]["objective"]
    if trains is not None and trains != kind:
        what = (
            f"a {kind} label with {schema.num_class} classes ({_some(schema.classes)})"
            if schema.classes
            else f"a {kind} label"
        )
        raise HyperparameterError(
            f"hyperparameter 'objective' is {objective!r}, a {trains} objective, but the "
            f"dataset's schema.json has {what}: remove 'objective' to train with {default!r}, "
            f"or use a {kind} objective"
        )


def check_problem_type(hp: Hyperparameters, schema: Schema) -> None:
    """HyperparameterError when a named hyperparameter contradicts the dataset's schema."""
    kind = schema.problem_type
    _check_objective(hp.objective, schema)
    num_class = hp.xgb_params.get("num_class")
    if kind == "multiclass" and num_class is not None and num_class != schema.num_class:
        raise HyperparameterError(
            f"hyperparameter 'num_class' is {num_class} but the dataset's schema.json has "
            f"{schema.num_class} classes ({_some(schema.classes)}): remove 'num_class' "
            f"(it is taken from the schema) or set it to {schema.num_class}"
        )

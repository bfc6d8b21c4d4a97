"""Parsing and validating the training job's hyperparameters.

SageMaker hands every hyperparameter over as a string (``hyperparameters.json``). Each name is
looked up in :data:`SPECS`; an unknown name or a value that does not parse or is out of range
raises :class:`HyperparameterError` naming the hyperparameter, the value and what is allowed.

Names SageMaker itself adds are accepted and ignored: ``_tuning_objective_metric`` (automatic
model tuning) and anything starting with ``sagemaker_`` (SDK bookkeeping).

Besides XGBoost's own parameters (passed to ``xgboost.train``), three are the program's:
``num_round`` (required: boosting rounds), ``early_stopping_rounds`` (needs a ``validation``
channel) and ``csv_weights`` (``1``: the second CSV column is the instance weight).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class HyperparameterError(ValueError):
    """A hyperparameter is unknown, missing or has a bad value."""


# XGBoost 3.2's objectives and evaluation metrics.
OBJECTIVES = (
    "reg:squarederror",
    "reg:squaredlogerror",
    "reg:logistic",
    "reg:pseudohubererror",
    "reg:absoluteerror",
    "reg:quantileerror",
    "reg:gamma",
    "reg:tweedie",
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "count:poisson",
    "survival:cox",
    "survival:aft",
    "multi:softmax",
    "multi:softprob",
)  # Ranking (rank:*) needs query groups, which the data formats here do not carry.
EVAL_METRICS = (
    "rmse",
    "rmsle",
    "mae",
    "mape",
    "mphe",
    "logloss",
    "error",
    "merror",
    "mlogloss",
    "auc",
    "aucpr",
    "pre",
    "ndcg",
    "map",
    "poisson-nloglik",
    "gamma-nloglik",
    "cox-nloglik",
    "gamma-deviance",
    "tweedie-nloglik",
    "aft-nloglik",
    "interval-regression-accuracy",
    "quantile",
)
# Metrics that take "@<number>" (error@0.7, ndcg@5, pre@10) or a trailing "-" (ndcg-, map@3-).
_PARAMETRISED_METRICS = ("error", "ndcg", "map", "pre", "tweedie-nloglik")

Parser = Callable[[str], Any]


@dataclass(frozen=True)
class Spec:
    parse: Parser
    allowed: str  # human-readable, for error messages
    xgb_name: str | None = None  # None: not passed to XGBoost; "" -> same name


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


_UNIT = "a number in (0, 1]"
SPECS: dict[str, Spec] = {
    # The program's own.
    "num_round": Spec(_int(1), "an integer >= 1"),
    "early_stopping_rounds": Spec(_int(1), "an integer >= 1"),
    "csv_weights": Spec(_bool, "0 or 1"),
    # Learning task.
    "objective": Spec(_choice(*OBJECTIVES), "one of " + ", ".join(OBJECTIVES), ""),
    "eval_metric": Spec(_metrics, "a comma-separated list of " + ", ".join(EVAL_METRICS), ""),
    "base_score": Spec(_float(), "a number", ""),
    "seed": Spec(_int(0, 2**31 - 1), "an integer in [0, 2147483647]", ""),
    "num_class": Spec(_int(1), "an integer >= 1", ""),
    "tweedie_variance_power": Spec(
        _float(1, 2, lo_open=True, hi_open=True), "a number in (1, 2)", ""
    ),
    "huber_slope": Spec(_float(0, lo_open=True), "a number > 0", ""),
    "quantile_alpha": Spec(_float(0, 1, lo_open=True, hi_open=True), "a number in (0, 1)", ""),
    "aft_loss_distribution": Spec(
        _choice("normal", "logistic", "extreme"), "normal, logistic or extreme", ""
    ),
    "aft_loss_distribution_scale": Spec(_float(0, lo_open=True), "a number > 0", ""),
    # General.
    "booster": Spec(_choice("gbtree", "gblinear", "dart"), "gbtree, gblinear or dart", ""),
    "device": Spec(_device, "cpu, cuda or cuda:<ordinal>", ""),
    "nthread": Spec(_int(1), "an integer >= 1", ""),
    "verbosity": Spec(_int(0, 3), "an integer in [0, 3]", ""),
    # Tree booster.
    "eta": Spec(_float(0, 1, lo_open=True), _UNIT, ""),
    "learning_rate": Spec(_float(0, 1, lo_open=True), _UNIT, "eta"),
    "gamma": Spec(_float(0), "a number >= 0", ""),
    "min_split_loss": Spec(_float(0), "a number >= 0", "gamma"),
    "max_depth": Spec(_int(0), "an integer >= 0", ""),
    "min_child_weight": Spec(_float(0), "a number >= 0", ""),
    "max_delta_step": Spec(_float(0), "a number >= 0", ""),
    "subsample": Spec(_float(0, 1, lo_open=True), _UNIT, ""),
    "sampling_method": Spec(_choice("uniform", "gradient_based"), "uniform or gradient_based", ""),
    "colsample_bytree": Spec(_float(0, 1, lo_open=True), _UNIT, ""),
    "colsample_bylevel": Spec(_float(0, 1, lo_open=True), _UNIT, ""),
    "colsample_bynode": Spec(_float(0, 1, lo_open=True), _UNIT, ""),
    "lambda": Spec(_float(0), "a number >= 0", ""),
    "reg_lambda": Spec(_float(0), "a number >= 0", "lambda"),
    "alpha": Spec(_float(0), "a number >= 0", ""),
    "reg_alpha": Spec(_float(0), "a number >= 0", "alpha"),
    "tree_method": Spec(
        _choice("auto", "exact", "approx", "hist"), "auto, exact, approx or hist", ""
    ),
    "scale_pos_weight": Spec(_float(0, lo_open=True), "a number > 0", ""),
    "grow_policy": Spec(_choice("depthwise", "lossguide"), "depthwise or lossguide", ""),
    "max_leaves": Spec(_int(0), "an integer >= 0", ""),
    "max_bin": Spec(_int(2), "an integer >= 2", ""),
    "num_parallel_tree": Spec(_int(1), "an integer >= 1", ""),
    "monotone_constraints": Spec(_constraints, "a list such as (1,0,-1)", ""),
    "interaction_constraints": Spec(_constraints, "a list of lists such as [[0,1],[2]]", ""),
    "max_cat_to_onehot": Spec(_int(1), "an integer >= 1", ""),
    "max_cached_hist_node": Spec(_int(1), "an integer >= 1", ""),
    "refresh_leaf": Spec(_bool, "0 or 1", ""),
    "process_type": Spec(_choice("default", "update"), "default or update", ""),
    # Dart booster.
    "sample_type": Spec(_choice("uniform", "weighted"), "uniform or weighted", ""),
    "normalize_type": Spec(_choice("tree", "forest"), "tree or forest", ""),
    "rate_drop": Spec(_float(0, 1), "a number in [0, 1]", ""),
    "one_drop": Spec(_bool, "0 or 1", ""),
    "skip_drop": Spec(_float(0, 1), "a number in [0, 1]", ""),
    # Linear booster.
    "updater": Spec(_choice("shotgun", "coord_descent"), "shotgun or coord_descent", ""),
    "feature_selector": Spec(
        _choice("cyclic", "shuffle", "random", "greedy", "thrifty"),
        "cyclic, shuffle, random, greedy or thrifty",
        "",
    ),
    "top_k": Spec(_int(0), "an integer >= 0", ""),
}
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

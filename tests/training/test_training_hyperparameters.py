"""Hyperparameters arrive as strings: parsed, range-checked, unknown names rejected."""

from __future__ import annotations

import pytest
from mlstack_containers.hyperparameters import (
    SPECS,
    HyperparameterError,
    parse_hyperparameters,
)


def test_reference_workflow_hyperparameters():
    hp = parse_hyperparameters(
        {"objective": "reg:logistic", "eval_metric": "rmse", "num_round": "5"}
    )
    assert hp.num_round == 5
    assert hp.xgb_params == {"objective": "reg:logistic", "eval_metric": ["rmse"]}
    assert hp.early_stopping_rounds is None


def test_usual_xgboost_hyperparameters_are_converted():
    hp = parse_hyperparameters(
        {
            "num_round": "100",
            "max_depth": "6",
            "eta": "0.3",
            "subsample": "0.8",
            "early_stopping_rounds": "10",
            "tree_method": "hist",
            "eval_metric": "auc, error@0.7,ndcg@5-",
            "reg_lambda": "2",
            "device": "GPU:1",
            "csv_weights": "1",
        }
    )
    assert hp.xgb_params == {
        "max_depth": 6,
        "eta": 0.3,
        "subsample": 0.8,
        "tree_method": "hist",
        "eval_metric": ["auc", "error@0.7", "ndcg@5-"],
        "lambda": 2.0,
        "device": "cuda:1",
    }
    assert hp.early_stopping_rounds == 10
    assert hp.csv_weights is True


def test_integers_written_as_floats_are_accepted():
    assert parse_hyperparameters({"num_round": "5.0"}).num_round == 5


def test_sagemaker_reserved_names_are_ignored():
    hp = parse_hyperparameters(
        {"num_round": "1", "_tuning_objective_metric": "validation:rmse", "sagemaker_region": "x"}
    )
    assert hp.xgb_params == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"num_round": "0"}, "'num_round' has an invalid value '0' (out of range)"),
        ({"num_round": "2.5"}, "'num_round' has an invalid value '2.5' (not an integer)"),
        ({"num_round": "1", "eta": "0"}, "'eta' has an invalid value '0'"),
        ({"num_round": "1", "eta": "nan"}, "not a finite number"),
        ({"num_round": "1", "max_depth": "-1"}, "'max_depth'"),
        ({"num_round": "1", "tree_method": "gpu_hist"}, "expected auto, exact, approx or hist"),
        ({"num_round": "1", "device": "tpu"}, "'device' has an invalid value 'tpu'"),
        ({"num_round": "1", "eval_metric": "error@x"}, "'eval_metric'"),
        ({"num_round": "1", "eval_metric": "rmse@3"}, "takes no @ argument"),
        ({"num_round": "1", "csv_weights": "maybe"}, "'csv_weights'"),
        ({"num_round": "1", "monotone_constraints": "1,0"}, "'monotone_constraints'"),
        ({"num_round": "1", "eta": "0.1", "learning_rate": "0.2"}, "'eta' and 'learning_rate'"),
        ({"num_round": "1", "objective": "multi:softmax"}, "requires hyperparameter 'num_class'"),
        ({"num_round": "1", "num_class": "3"}, "'num_class' only applies to multi:"),
        ({"num_round": "1", "max_depth": ["6"]}, "'max_depth' has a list value"),
        ({"num_round": "1", "colsample_by_tree": "1"}, "did you mean 'colsample_bytree'"),
        ({}, "'num_round' is required"),
    ],
)
def test_bad_hyperparameters_name_the_problem(raw, message):
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters(raw)
    assert message in str(info.value)


def test_every_spec_accepts_its_documented_kind_of_value():
    # One valid sample per spec: guards against a spec whose parser rejects everything.
    samples = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "device": "cpu",
        "booster": "dart",
        "tree_method": "approx",
        "grow_policy": "lossguide",
        "sampling_method": "uniform",
        "sample_type": "weighted",
        "normalize_type": "forest",
        "updater": "shotgun",
        "feature_selector": "greedy",
        "process_type": "default",
        "aft_loss_distribution": "logistic",
        "monotone_constraints": "(1,-1)",
        "interaction_constraints": "[[0,1]]",
        "tweedie_variance_power": "1.5",
        "quantile_alpha": "0.5",
        "max_bin": "256",
    }
    for name, spec in SPECS.items():
        spec.parse(samples.get(name, "1"))

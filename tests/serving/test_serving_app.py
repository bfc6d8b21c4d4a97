"""Predictor: the dense fast path gives exactly what ``Booster.inplace_predict`` gives."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from mlstack_containers.serving import app as app_module
from mlstack_containers.serving.app import Predictor

from tests.serving.conftest import reference_data


def _booster(params: dict, rounds: int = 6) -> xgb.Booster:
    features, labels = reference_data(800, seed=11)
    if params.get("num_class"):
        labels = labels + (features[:, 0] > 50)
    return xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=rounds)


MODELS = {
    "logistic": {"objective": "reg:logistic", "max_depth": 4},
    "softprob": {"objective": "multi:softprob", "num_class": 3, "max_depth": 3},
    "softmax": {"objective": "multi:softmax", "num_class": 3, "max_depth": 3},
}


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("rows", [0, 1, 7, 5000])
@pytest.mark.parametrize("iteration_range", [(0, 0), (0, 3)])
def test_dense_fast_path_equals_inplace_predict(model, rows, iteration_range):
    booster = _booster(MODELS[model])
    predictor = Predictor(booster, 2, iteration_range)
    rng = np.random.default_rng(rows)
    features = rng.uniform(-10, 110, size=(rows, 2)).astype(np.float32)
    features[rng.random(features.shape) < 0.1] = np.nan  # missing values
    want = booster.inplace_predict(features, iteration_range=iteration_range)
    got = predictor.predict(features)
    assert got.dtype == np.float32
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_fast_path_result_is_a_copy_not_xgboosts_buffer():
    predictor = Predictor(_booster(MODELS["logistic"]), 2)
    first = predictor.predict(np.array([[10, 90]], np.float32))
    kept = first.copy()
    predictor.predict(np.array([[90, 10]], np.float32))
    np.testing.assert_array_equal(first, kept)


def test_other_inputs_take_the_public_api(monkeypatch):
    booster = _booster(MODELS["logistic"])
    predictor = Predictor(booster, 2)
    features = np.array([[10, 90], [30, 40], [50, 60]], np.float64)
    calls = []
    monkeypatch.setattr(
        predictor, "_predict_dense", lambda x: calls.append(x) or pytest.fail("fast path")
    )
    strided = np.asfortranarray(features.astype(np.float32))
    for x in (features, strided):
        np.testing.assert_array_equal(predictor.predict(x), booster.inplace_predict(x))
    assert not calls
    assert app_module._XGB_PREDICT_DENSE is not None  # the pinned XGBoost has the C entry point

"""Model artefact round trip (shared with the inference image) and the /opt/ml layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb
from mlstack_containers import model_io
from mlstack_containers.paths import SageMakerPaths


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(0)
    X = rng.random((200, 3))
    y = (X[:, 0] > 0.5).astype(np.float32)
    return xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 4)


def test_save_then_load_predicts_the_same(tmp_path, booster):
    meta = model_io.save_model(booster, tmp_path / "model", trained_on="csv")
    assert (tmp_path / "model" / model_io.MODEL_FILENAME).is_file()
    loaded = model_io.load_model(tmp_path / "model")
    X = xgb.DMatrix(np.random.default_rng(1).random((10, 3)))
    np.testing.assert_array_equal(loaded.booster.predict(X), booster.predict(X))
    assert loaded.metadata == meta
    assert meta.num_features == 3
    assert meta.objective == "binary:logistic"
    assert meta.extra == {"trained_on": "csv"}


def test_model_without_metadata_loads_like_builtin_xgboost(tmp_path, booster):
    booster.save_model(tmp_path / "model.json")
    (tmp_path / "model.json").rename(tmp_path / model_io.MODEL_FILENAME)
    loaded = model_io.load_model(tmp_path)
    assert loaded.metadata.num_features == 3
    assert loaded.metadata.objective == "binary:logistic"


def test_metadata_disagreeing_with_booster_is_rejected(tmp_path, booster):
    model_io.save_model(booster, tmp_path)
    meta = json.loads((tmp_path / model_io.METADATA_FILENAME).read_text())
    meta["num_features"] = 7
    (tmp_path / model_io.METADATA_FILENAME).write_text(json.dumps(meta))
    with pytest.raises(model_io.ModelError, match="7 features but the booster has 3"):
        model_io.load_model(tmp_path)


def test_missing_and_corrupt_models_name_the_file(tmp_path):
    with pytest.raises(model_io.ModelError, match="model file not found"):
        model_io.load_model(tmp_path)
    (tmp_path / model_io.MODEL_FILENAME).write_bytes(b"not a model")
    with pytest.raises(model_io.ModelError, match="is not an XGBoost model"):
        model_io.load_model(tmp_path)


def test_paths_follow_sagemaker_base_dir(tmp_path):
    paths = SageMakerPaths.from_env({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert paths.hyperparameters_file == tmp_path / "input/config/hyperparameters.json"
    assert paths.channel_fifo("train", 2) == tmp_path / "input/data/train_2"
    assert paths.failure_file == tmp_path / "output/failure"
    assert SageMakerPaths.from_env({}).model_dir.as_posix() == "/opt/ml/model"

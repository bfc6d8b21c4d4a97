"""Baseline for bench/serving.py: the model behind a minimal Flask app on Flask's dev server.

The pattern of SageMaker's "bring your own algorithm" sample container: a Flask app with
``/ping`` and ``/invocations``, the model loaded lazily into a class attribute, CSV parsed per
request into a table and the predictions written back one per line. Two deliberate differences
make it a *stronger* baseline than the sample: numpy's C CSV reader instead of pandas, and
Flask's built-in (threaded) development server instead of gunicorn+nginx, as the issue asks.

    python bench/flask_baseline.py MODEL_DIR PORT
"""

from __future__ import annotations

import io
import sys

import flask
import numpy as np
import xgboost as xgb


class ScoringService:
    model: xgb.Booster | None = None
    model_dir = "/opt/ml/model"

    @classmethod
    def get_model(cls) -> xgb.Booster:
        if cls.model is None:
            booster = xgb.Booster()
            booster.load_model(f"{cls.model_dir}/xgboost-model")
            cls.model = booster
        return cls.model

    @classmethod
    def predict(cls, data: np.ndarray) -> np.ndarray:
        return cls.get_model().predict(xgb.DMatrix(data))


app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping() -> flask.Response:
    healthy = ScoringService.get_model() is not None
    return flask.Response(response="\n", status=200 if healthy else 404, mimetype="text/plain")


@app.route("/invocations", methods=["POST"])
def invocations() -> flask.Response:
    if flask.request.content_type != "text/csv":
        return flask.Response("This predictor only supports CSV data", 415, mimetype="text/plain")
    data = np.loadtxt(io.StringIO(flask.request.data.decode("utf-8")), delimiter=",", ndmin=2)
    predictions = ScoringService.predict(data)
    body = "\n".join(str(p) for p in predictions.tolist()) + "\n"
    return flask.Response(response=body, status=200, mimetype="text/csv")


if __name__ == "__main__":
    ScoringService.model_dir = sys.argv[1]
    app.run(host="127.0.0.1", port=int(sys.argv[2]))

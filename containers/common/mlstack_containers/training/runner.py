"""The ``train`` program: read the job, load the channels, train XGBoost, write the model.

Exit status and files, following SageMaker's contract:

* success: the model in ``/opt/ml/model`` (leader host only), exit 0;
* failure: the reason — a message, never a traceback — in ``/opt/ml/output/failure`` (SageMaker
  shows its first 1024 characters as ``FailureReason``), exit 1; an unexpected error also prints
  its traceback to the log;
* SIGTERM (``StopTrainingJob``, a Spot interruption): the round in progress finishes, the
  checkpoint and the model so far are written, exit 0 — a stopped job is not a failed one, and
  SageMaker uploads what ``/opt/ml/model`` holds. Before training starts nothing is written.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import xgboost as xgb
from xgboost import collective

from mlstack_containers import data, model_io
from mlstack_containers.hyperparameters import (
    HyperparameterError,
    Hyperparameters,
    check_problem_type,
    parse_hyperparameters,
    problem_defaults,
)
from mlstack_containers.paths import SageMakerPaths
from mlstack_containers.schema import SCHEMA_FILE, Schema, SchemaError
from mlstack_containers.training import device, distributed
from mlstack_containers.training.checkpoints import CheckpointDir, identity
from mlstack_containers.training.config import (
    SCHEMA_CHANNEL,
    Channel,
    Cluster,
    ConfigError,
    parse_input_data_config,
    parse_resource_config,
    read_json,
)

FAILURE_LIMIT = 1024


def log(message: str) -> None:
    print(f"mlstack-train: {message}", flush=True)


class Terminated(Exception):
    """SIGTERM arrived before training started."""


@dataclass
class StopRequest:
    """Set by SIGTERM; once training runs, honoured at the end of the round in progress."""

    requested: bool = False
    training: bool = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if not self.training:
            raise Terminated


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def load_channel(paths: SageMakerPaths, channel: Channel, hp: Hyperparameters) -> data.Dataset:
    started = time.perf_counter()
    weights = hp.csv_weights and channel.content_type == data.CSV
    if channel.is_pipe:
        where = paths.channel_fifo(channel.name, 0)
        dataset = data.load_fifo(
            where,
            channel.content_type,
            has_weights=weights,
            unwrap_recordio=channel.record_wrapper == "RecordIO",
        )
    else:
        where = paths.channel_dir(channel.name)
        dataset = data.load_files(where, channel.content_type, has_weights=weights)
    if dataset.labels is None:
        raise data.DataError(f"channel {channel.name!r}: the data carries no labels")
    log(
        f"channel {channel.name}: {dataset.num_rows} rows x {dataset.num_features} features "
        f"({channel.content_type}, {channel.input_mode} mode, {where}) "
        f"in {time.perf_counter() - started:.2f}s"
    )
    return dataset


def check_labels(name: str, labels: np.ndarray, objective: str, num_class: int | None) -> None:
    """Reject labels the objective cannot take, naming the first bad row (1-based)."""

    def reject(bad: np.ndarray, needs: str) -> None:
        row = int(np.flatnonzero(bad)[0])
        raise data.DataError(
            f"channel {name!r}: objective {objective!r} needs {needs}; "
            f"row {row + 1} has label {labels[row]:g}"
        )

    nan = np.isnan(labels)
    if nan.any():
        reject(nan, "a label on every row")
    if objective in ("reg:logistic", "binary:logistic", "binary:logitraw", "binary:hinge"):
        outside = (labels < 0) | (labels > 1)
        if outside.any():
            reject(outside, "labels in [0, 1]")
    elif objective.startswith("multi:") and num_class:
        invalid = (labels < 0) | (labels >= num_class) | (labels != np.floor(labels))
        if invalid.any():
            reject(invalid, f"integer labels in [0, {num_class - 1}] (num_class={num_class})")
    elif objective in ("count:poisson", "reg:tweedie"):
        if (labels < 0).any():
            reject(labels < 0, "labels >= 0")
    elif objective in ("reg:gamma", "reg:squaredlogerror") and (labels <= -1).any():
        reject(labels <= -1, "labels > -1")
    if objective == "reg:gamma" and (labels <= 0).any():
        reject(labels <= 0, "labels > 0")


def align(datasets: dict[str, data.Dataset]) -> dict[str, data.Dataset]:
    """Give the validation data the training data's width (sparse data is widened)."""
    if len(datasets) == 1:
        return datasets
    train, validation = datasets["train"], datasets["validation"]
    if not train.is_sparse and not validation.is_sparse:
        if train.num_features != validation.num_features:
            raise data.DataError(
                f"channel 'validation' has {validation.num_features} features but 'train' has "
                f"{train.num_features}"
            )
        return datasets
    width = max(train.num_features, validation.num_features)
    try:
        return {"train": train.with_width(width), "validation": validation.with_width(width)}
    except data.DataError as exc:
        raise data.DataError(f"channels 'train' and 'validation' disagree: {exc}") from None


def read_schema(paths: SageMakerPaths) -> tuple[Schema, bytes]:
    """The ``schema`` channel's ``schema.json`` (at its top, or the one file of that name in
    its tree, as a prefix such as ``datasets/<name>/schema/`` is downloaded) and its bytes."""
    directory = paths.channel_dir(SCHEMA_CHANNEL)
    found = sorted(directory.rglob(SCHEMA_FILE)) if directory.is_dir() else []
    if len(found) != 1:
        what = "none" if not found else f"{len(found)} ({', '.join(map(str, found))})"
        raise data.DataError(
            f"channel {SCHEMA_CHANNEL!r} must hold one {SCHEMA_FILE}; {directory} holds {what}"
        )
    document = found[0].read_bytes()
    try:
        schema = Schema.from_json(document)
    except SchemaError as exc:
        raise data.DataError(f"channel {SCHEMA_CHANNEL!r}: {found[0]}: {exc}") from None
    return schema, document


def with_problem_defaults(
    raw: Mapping[str, object], schema: Schema, has_validation: bool
) -> dict[str, object]:
    """The job's hyperparameters with its problem type's defaults added where it names none;
    says which were added (the job's own always win)."""
    merged, added = problem_defaults(raw, schema, has_validation=has_validation)
    kind = f"problem type {schema.problem_type} (schema.json)"
    if added:
        applied = ", ".join(f"{name}={value}" for name, value in added.items())
        log(f"{kind}: defaults applied: {applied}")
    else:
        log(f"{kind}: no defaults applied, the job names objective and num_round")
    return merged


def check_schema(schema: Schema, dataset: data.Dataset) -> None:
    """The schema describes the training data: one feature a column."""
    if len(schema.features) != dataset.num_features:
        raise data.DataError(
            f"channel {SCHEMA_CHANNEL!r}: {SCHEMA_FILE} describes {len(schema.features)} "
            f"features but channel 'train' has {dataset.num_features}"
        )


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


def training_params(
    hp: Hyperparameters, env: Mapping[str, str], cluster: Cluster
) -> dict[str, Any]:
    params = dict(hp.xgb_params)
    try:
        params["device"] = device.choose_device(
            params.get("device"),
            has_cuda_build=device.cuda_built(),
            gpus=device.visible_gpus(env),
        )
    except ValueError as exc:
        raise HyperparameterError(str(exc)) from None
    if "nthread" not in params:
        params["nthread"] = len(os.sched_getaffinity(0))
    if cluster.size > 1 and params.get("tree_method") == "exact":
        raise HyperparameterError(
            "hyperparameter 'tree_method' is 'exact', which XGBoost cannot train across "
            f"{cluster.size} hosts; use 'hist' or 'approx'"
        )
    return params


class _Monitor(xgb.callback.TrainingCallback):
    """Evaluation lines in XGBoost's format, ``[round]\\tdata-metric:value...``, which the
    regexes of the image's contract (``training/contract.json``: metric_definitions) read."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
        if self.enabled and evals_log:
            parts = [
                f"{name}-{metric}:{float(np.ravel(values[-1])[0]):.6g}"
                for name, metrics in evals_log.items()
                for metric, values in metrics.items()
            ]
            print(f"[{model.num_boosted_rounds() - 1}]\t" + "\t".join(parts), flush=True)
        return False


class _RoundEnd(xgb.callback.TrainingCallback):
    """Checkpoint after each round, and stop (on every host at once) after a SIGTERM."""

    def __init__(self, checkpoints: CheckpointDir | None, stop: StopRequest, hosts: int) -> None:
        self.checkpoints = checkpoints
        self.stop = stop
        self.hosts = hosts

    def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
        if self.checkpoints is not None:
            self.checkpoints.save(model)
        flag = np.array([int(self.stop.requested)], dtype=np.int32)
        if self.hosts > 1:
            # Hosts see SIGTERM at different moments; all must leave the same round.
            flag = collective.allreduce(flag, collective.Op.MAX)
        self.stop.requested = bool(flag[0])
        return self.stop.requested


@dataclass
class Result:
    booster: xgb.Booster
    resumed_from: int = 0
    terminated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # {data set: {metric: [value per round]}}, the rounds this job trained (after resumed_from)
    rounds: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def fit(
    params: dict[str, Any],
    hp: Hyperparameters,
    datasets: dict[str, data.Dataset],
    paths: SageMakerPaths,
    cluster: Cluster,
    stop: StopRequest,
    checkpoints: CheckpointDir | None = None,
) -> Result:
    nthread = int(params["nthread"])
    matrices = {
        name: xgb.DMatrix(ds.features, label=ds.labels, weight=ds.weights, nthread=nthread)
        for name, ds in datasets.items()
    }
    evals = [(matrices[name], name) for name in ("train", "validation") if name in matrices]

    latest = checkpoints.latest() if checkpoints is not None and cluster.is_leader else None
    if checkpoints is not None and cluster.is_leader and checkpoints.others():
        log(
            f"leaving {checkpoints.others()} checkpoints of other hyperparameters alone "
            f"(this job's are {checkpoints.identity})"
        )
    if cluster.size > 1:
        # Every host resumes from the leader's checkpoint, whatever its own disk holds.
        latest = collective.broadcast((latest,), 0)[0]  # wrapped: the root may not send None
    start: xgb.Booster | None = None
    done = 0
    if latest is not None:
        done, raw = latest
        start = xgb.Booster()
        start.load_model(bytearray(raw))
        log(f"resuming from the checkpoint after {done} rounds")

    callbacks: list[xgb.callback.TrainingCallback] = [_Monitor(cluster.is_leader)]
    if hp.early_stopping_rounds is not None:
        callbacks.append(
            xgb.callback.EarlyStopping(
                rounds=hp.early_stopping_rounds, data_name="validation", save_best=False
            )
        )
    callbacks.append(_RoundEnd(checkpoints if cluster.is_leader else None, stop, cluster.size))

    remaining = hp.num_round - done
    if remaining <= 0:
        assert start is not None
        return Result(start, resumed_from=done)
    evals_result: dict[str, dict[str, list[float]]] = {}
    booster = xgb.train(
        params,
        matrices["train"],
        num_boost_round=remaining,
        evals=evals,
        callbacks=callbacks,
        xgb_model=start,
        verbose_eval=False,
        evals_result=evals_result,
    )
    result = Result(booster, resumed_from=done, terminated=stop.requested)
    result.rounds = evals_result
    best = booster.attr("best_iteration")
    if hp.early_stopping_rounds is not None and best is not None and not result.terminated:
        best_iteration, best_score = int(best), booster.attr("best_score")
        if best_iteration + 1 < booster.num_boosted_rounds():
            log(
                f"early stopping: keeping the best iteration {best_iteration} "
                f"(validation score {best_score}) of {booster.num_boosted_rounds()} rounds"
            )
        result.booster = booster[: best_iteration + 1]
        result.booster.set_attr(best_iteration=str(best_iteration), best_score=best_score)
        result.extra["best_score"] = None if best_score is None else float(best_score)
    return result


# ------------------------------------------------------------------------------------------------
# The program
# ------------------------------------------------------------------------------------------------


def run(paths: SageMakerPaths, env: Mapping[str, str], stop: StopRequest) -> None:
    started = time.perf_counter()
    raw_hp = read_json(paths.hyperparameters_file, required=False, default={}) or {}
    channels = parse_input_data_config(
        read_json(paths.input_data_config_file, required=True), paths.input_data_config_file
    )
    schema = read_schema(paths) if SCHEMA_CHANNEL in channels else None
    if schema is not None:
        raw_hp = with_problem_defaults(raw_hp, schema[0], "validation" in channels)
    hp = parse_hyperparameters(raw_hp)
    if schema is not None:
        check_problem_type(hp, schema[0])
    cluster = parse_resource_config(
        read_json(paths.resource_config_file, required=False), paths.resource_config_file
    )
    if hp.early_stopping_rounds is not None and "validation" not in channels:
        raise HyperparameterError(
            "hyperparameter 'early_stopping_rounds' needs a 'validation' channel; none is declared"
        )
    data_channels = {name: ch for name, ch in channels.items() if name != SCHEMA_CHANNEL}
    params = training_params(hp, env, cluster)
    checkpoints = (
        CheckpointDir(paths.checkpoints_dir, identity(raw_hp))
        if paths.checkpoints_dir.is_dir()
        else None
    )
    settings = distributed.Settings.from_env(env)
    log(
        f"XGBoost {xgb.__version__} on {params['device']} with {params['nthread']} threads, "
        f"host {cluster.current_host} (rank {cluster.rank} of {cluster.size})"
    )
    with distributed.tracker(cluster, settings):
        datasets = align({name: load_channel(paths, ch, hp) for name, ch in data_channels.items()})
        if schema is not None:
            check_schema(schema[0], datasets["train"])
        for name, dataset in datasets.items():
            assert dataset.labels is not None  # load_channel checked
            check_labels(name, dataset.labels, hp.objective, hp.xgb_params.get("num_class"))
        stop.training = True  # from here on SIGTERM ends the round in progress, then saves
        with distributed.communicator(cluster, settings):
            result = fit(params, hp, datasets, paths, cluster, stop, checkpoints)
    rounds = result.booster.num_boosted_rounds()
    log(f"metrics per round written to {write_round_metrics(paths, cluster, result)}")
    if result.terminated:
        log(f"SIGTERM: stopped after {rounds} rounds; the checkpoint holds them")
    if cluster.is_leader:
        model_io.save_model(
            result.booster,
            paths.model_dir,
            train_content_type=channels["train"].content_type,
            num_round=hp.num_round,
            hosts=cluster.size,
            stopped_by_sigterm=result.terminated,
            **result.extra,
        )
        log(f"model ({rounds} rounds) written to {paths.model_dir / model_io.MODEL_FILENAME}")
        if schema is not None:
            log(f"schema copied to {model_io.save_schema(schema[1], paths.model_dir)}")
    log(f"done in {time.perf_counter() - started:.2f}s")


ROUND_METRICS_FILE = "metrics-{host}.json"


def write_round_metrics(paths: SageMakerPaths, cluster: Cluster, result: Result) -> Path:
    """Every host's train and validation metrics per round into ``output/data`` (SageMaker
    uploads it as the job's ``output.tar.gz``), one file a host: the run report's training
    curves. ``{"host", "first_round", "metrics": {data set: {metric: [value per round]}}}``."""
    document = {
        "host": cluster.current_host,
        "hosts": cluster.size,
        "first_round": result.resumed_from,
        "metrics": {
            data_set: {name: [float(v) for v in values] for name, values in metrics.items()}
            for data_set, metrics in result.rounds.items()
        },
    }
    paths.output_data_dir.mkdir(parents=True, exist_ok=True)
    target = paths.output_data_dir / ROUND_METRICS_FILE.format(host=cluster.current_host)
    target.write_text(json.dumps(document, separators=(",", ":")) + "\n", "utf-8")
    return target


_XGB_NOISE = re.compile(r"^\[[0-9:]+\]\s+\S+:\d+:\s*")


def describe(exc: BaseException) -> str:
    """A one-paragraph reason for the failure file."""
    if isinstance(exc, xgb.core.XGBoostError):
        text = str(exc).split("Stack trace:")[0].strip()
        lines = [_XGB_NOISE.sub("", line).strip() for line in text.splitlines() if line.strip()]
        return "XGBoost rejected the job: " + (" ".join(lines) or "unknown error")
    if isinstance(exc, MemoryError):
        return "out of memory: use an instance type with more memory, or more instances"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"I/O error{where}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__


def write_failure(paths: SageMakerPaths, message: str) -> None:
    try:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(message[:FAILURE_LIMIT])
    except OSError as exc:
        print(f"mlstack-train: cannot write {paths.failure_file}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = SageMakerPaths.from_env()
    if args not in ([], ["train"]):  # SageMaker runs the image as `<image> train`
        write_failure(paths, f"unexpected arguments {args}; usage: train")
        return 2
    stop = StopRequest()
    signal.signal(signal.SIGTERM, stop.handle)
    try:
        run(paths, os.environ, stop)
    except Terminated:
        log("SIGTERM before training started: nothing to save")
        return 0
    except (ValueError, OSError, MemoryError, xgb.core.XGBoostError) as exc:
        # ValueError covers DataError, HyperparameterError, ConfigError, ModelError.
        message = describe(exc)
        write_failure(paths, message)
        log(f"failed: {message}")
        return 1
    except Exception as exc:
        traceback.print_exc()
        message = f"internal error ({type(exc).__name__}): {describe(exc)}"
        write_failure(paths, message)
        log(f"failed: {message}")
        return 1
    return 0


__all__ = ["ConfigError", "main", "run"]

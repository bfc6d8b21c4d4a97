"""Local hyperparameter tuning (``createHyperParameterTuningJob``): the search, the limits, early
stopping, the result's shape (checked against the SageMaker API model botocore ships), and
prod's tuning path end to end through ``mlstack local run``.

A stand-in ``train`` program keeps the unit tests fast: it prints XGBoost-style round lines whose
``validation-rmse`` depends on ``eta`` (best at 0.3), writes a model, and notes when it ran.
"""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from mlstack.cli import main
from mlstack.local.assembly import Image
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import LocalSageMaker, SageMakerError
from mlstack.local.tuning import Range, Search, parse_ranges
from mlstack.rules import training_image_metric_definitions
from tests import programs

REPO = Path(__file__).resolve().parents[2]
METRICS = training_image_metric_definitions()
IMAGE_URI = "000000000000.dkr.ecr.us-east-1.amazonaws.com/train:local"

FAKE_TRAIN = """\
#!{python}
import json, os, signal, sys, time
base = os.environ["SAGEMAKER_BASE_DIR"]
hp = json.load(open(os.path.join(base, "input/config/hyperparameters.json")))
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
with open(os.environ["FAKE_TRAIN_TIMES"], "a") as f:
    f.write(json.dumps({{"job": os.environ["TRAINING_JOB_NAME"], "start": time.time()}}) + "\\n")
# FAKE_TRAIN_MEET=N: wait (30 s at most) until N jobs have started, so jobs the tuner runs at
# once overlap however slowly a loaded machine launches them.
meet = time.monotonic() + 30
while time.monotonic() < meet and sum(
    "start" in line for line in open(os.environ["FAKE_TRAIN_TIMES"])
) < int(os.environ.get("FAKE_TRAIN_MEET", "0")):
    time.sleep(0.02)
eta = float(hp["eta"])
for i in range(int(hp.get("num_round", "4"))):
    time.sleep(0.05)
    value = 5 * (eta - 0.3) ** 2 + 0.02 + 0.05 / (i + 1)
    print(f"[{{i}}]#011train-rmse:{{value:.5f}}#011validation-rmse:{{value:.5f}}", flush=True)
    if stop:
        break
os.makedirs(os.path.join(base, "model"), exist_ok=True)
open(os.path.join(base, "model/model.json"), "w").write(json.dumps(hp))
with open(os.environ["FAKE_TRAIN_TIMES"], "a") as f:
    f.write(json.dumps({{"job": os.environ["TRAINING_JOB_NAME"], "end": time.time()}}) + "\\n")
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[EmbeddedS3]:
    server = EmbeddedS3()
    server.client.create_bucket(Bucket="data")
    server.client.put_object(Bucket="data", Key="csv/train/train.csv", Body=b"1,2\n")
    yield server
    server.stop()


@pytest.fixture()
def sagemaker(s3: EmbeddedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalSageMaker:
    context = tmp_path / "containers"
    (context / "training").mkdir(parents=True)
    (context / "training/Dockerfile").write_text("FROM scratch\n")
    train = context / "training/train"
    train.write_text(FAKE_TRAIN.format(python=sys.executable))
    train.chmod(train.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("FAKE_TRAIN_TIMES", str(tmp_path / "times.jsonl"))
    image = Image(uri=IMAGE_URI, directory=context, dockerfile="training/Dockerfile")
    return LocalSageMaker(tmp_path / "run", s3, {IMAGE_URI: image})


def request(name: str = "tune-1", **config: Any) -> dict[str, Any]:
    """A CreateHyperParameterTuningJob request in the shape the workflow's Tune model sends."""
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": config.pop("Strategy", "Random"),
            "HyperParameterTuningJobObjective": {"Type": "Minimize",
                                                 "MetricName": "validation:rmse"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": config.pop("jobs", 4),
                               "MaxParallelTrainingJobs": config.pop("parallel", 2)},
            "ParameterRanges": {
                "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05",
                                               "MaxValue": "0.5", "ScalingType": "Logarithmic"}],
                "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "3",
                                            "MaxValue": "10", "ScalingType": "Auto"}],
            },
            "TrainingJobEarlyStoppingType": config.pop("early", "Off"),
            **config,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": IMAGE_URI, "TrainingInputMode": "File",
                                       "MetricDefinitions": METRICS},
            "RoleArn": "arn:aws:iam::000000000000:role/sagemaker",
            "StaticHyperParameters": {"objective": "reg:logistic", "num_round": "4"},
            "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": "s3://data/csv/train/"}}}],
            "OutputDataConfig": {"S3OutputPath": "s3://data/models"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }  # fmt: skip


def _check_shape(value: Any, shape: Any, where: str) -> None:
    """``value`` has the members, required members and types of botocore's ``shape``."""
    if shape.type_name == "structure":
        assert isinstance(value, dict), where
        missing = set(shape.required_members) - set(value)
        assert not missing, f"{where}: missing required {missing}"
        for key, item in value.items():
            assert key in shape.members, f"{where}: {key} is no member of {shape.name}"
            _check_shape(item, shape.members[key], f"{where}.{key}")
    elif shape.type_name == "list":
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            _check_shape(item, shape.member, f"{where}[{i}]")
    elif shape.type_name == "map":
        assert isinstance(value, dict), where
        for key, item in value.items():
            _check_shape(key, shape.key, f"{where} key")
            _check_shape(item, shape.value, f"{where}.{key}")
    elif shape.type_name == "string":
        assert isinstance(value, str), where
        if shape.enum:
            assert value in shape.enum, f"{where}: {value!r} not in {shape.enum}"
    elif shape.type_name in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif shape.type_name in ("float", "double"):
        assert isinstance(value, int | float), where
    elif shape.type_name == "boolean":
        assert isinstance(value, bool), where
    elif shape.type_name == "timestamp":
        assert isinstance(value, int | float), where  # Step Functions passes epoch millis


SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")


def _times(path: Path) -> dict[str, dict[str, float]]:
    times: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        times.setdefault(entry.pop("job"), {}).update(entry)
    return times


def _most_at_once(times: dict[str, dict[str, float]]) -> int:
    edges = sorted(
        [(t["start"], 1) for t in times.values()] + [(t["end"], -1) for t in times.values()]
    )
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_request_is_valid_for_the_sagemaker_api() -> None:
    from botocore.validate import ParamValidator

    shape = SAGEMAKER.operation_model("CreateHyperParameterTuningJob").input_shape
    report = ParamValidator().validate(request(), shape)
    assert not report.has_errors(), report.generate_report()


def test_runs_max_jobs_at_most_max_parallel_at_once(
    sagemaker: LocalSageMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TRAIN_MEET", "2")
    desc = sagemaker.create_hyper_parameter_tuning_job(request(jobs=5, parallel=2))
    times = _times(tmp_path / "times.jsonl")
    assert len(times) == 5
    assert _most_at_once(times) == 2
    assert desc["HyperParameterTuningJobStatus"] == "Completed"
    assert desc["TrainingJobStatusCounters"]["Completed"] == 5
    assert desc["ObjectiveStatusCounters"] == {"Succeeded": 5, "Pending": 0, "Failed": 0}


def test_static_hyperparameters_are_merged_with_tuned_ones_in_range(
    sagemaker: LocalSageMaker, tmp_path: Path
) -> None:
    sagemaker.create_hyper_parameter_tuning_job(request(jobs=3, parallel=3))
    for job in (tmp_path / "run/jobs").iterdir():
        hp = json.loads((job / "opt/ml/input/config/hyperparameters.json").read_text())
        assert hp["objective"] == "reg:logistic" and hp["num_round"] == "4"
        assert 0.05 <= float(hp["eta"]) <= 0.5
        assert hp["max_depth"] in {str(n) for n in range(3, 11)}
        assert hp["_tuning_objective_metric"] == "validation:rmse"
        assert job.name.startswith("tune-1-") and len(job.name) == len("tune-1-001-") + 8


def test_best_training_job_has_the_lowest_objective_and_sagemakers_shape(
    sagemaker: LocalSageMaker,
) -> None:
    desc = sagemaker.create_hyper_parameter_tuning_job(request(jobs=4, parallel=2))
    _check_shape(
        desc,
        SAGEMAKER.operation_model("DescribeHyperParameterTuningJob").output_shape,
        "DescribeHyperParameterTuningJob",
    )
    best = desc["BestTrainingJob"]
    objectives = {}
    for name in sagemaker.training_jobs:
        job = sagemaker.describe_training_job({"TrainingJobName": name})
        final = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
        objectives[job["TrainingJobName"]] = final["validation:rmse"]
        assert job["TuningJobArn"] == desc["HyperParameterTuningJobArn"]
    assert best["TrainingJobName"] == min(objectives, key=objectives.__getitem__)
    metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
    assert metric["Value"] == min(objectives.values())
    assert metric["MetricName"] == "validation:rmse" and best["ObjectiveStatus"] == "Succeeded"
    # What the workflow's next state reads: the best job's own description, with its model.
    read = sagemaker.describe_training_job({"TrainingJobName": best["TrainingJobName"]})
    assert read["ModelArtifacts"]["S3ModelArtifacts"].endswith(
        f"/{best['TrainingJobName']}/output/model.tar.gz"
    )


def test_early_stopping_auto_stops_jobs_worse_than_the_median(
    sagemaker: LocalSageMaker,
) -> None:
    desc = sagemaker.create_hyper_parameter_tuning_job(
        request("tune-early", jobs=8, parallel=1, early="Auto")
    )
    counters = desc["TrainingJobStatusCounters"]
    assert counters["Stopped"] >= 1 and counters["Completed"] + counters["Stopped"] == 8
    stopped = [j for j in sagemaker.training_jobs.values() if j["TrainingJobStatus"] == "Stopped"]
    assert all(j["ModelArtifacts"]["S3ModelArtifacts"] for j in stopped)


def test_early_stopping_off_stops_nothing(sagemaker: LocalSageMaker) -> None:
    desc = sagemaker.create_hyper_parameter_tuning_job(
        request("tune-early", jobs=8, parallel=1, early="Off")
    )
    assert desc["TrainingJobStatusCounters"]["Stopped"] == 0


def test_bayesian_strategy_runs_and_models_the_objective(sagemaker: LocalSageMaker) -> None:
    desc = sagemaker.create_hyper_parameter_tuning_job(
        request("tune-bayes", Strategy="Bayesian", jobs=5, parallel=2)
    )
    assert desc["TrainingJobStatusCounters"]["Completed"] == 5
    # The Gaussian process on a 1-D quadratic proposes a point near its minimum (0.3).
    (eta,) = parse_ranges({"ContinuousParameterRanges": [
        {"Name": "eta", "MinValue": "0", "MaxValue": "1"}]})  # fmt: skip
    search = Search("Bayesian", [eta], seed="s")
    observed = [({"eta": str(u)}, (u - 0.3) ** 2) for u in (0.0, 0.2, 0.45, 0.6, 0.8, 1.0)]
    assert 0.1 <= float(search.suggest(observed, [])["eta"]) <= 0.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Strategy": "Hyperband"}, "Hyperband"),
        ({"HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "nope"}},
         "'nope' is not defined in AlgorithmSpecification.MetricDefinitions"),
        ({"ResourceLimits": {"MaxNumberOfTrainingJobs": 0, "MaxParallelTrainingJobs": 1}},
         "MaxNumberOfTrainingJobs must be a positive integer"),
    ],
)  # fmt: skip
def test_requests_sagemaker_would_refuse_are_refused(
    sagemaker: LocalSageMaker, change: dict[str, Any], message: str
) -> None:
    bad = request()
    bad["HyperParameterTuningJobConfig"].update(change)
    with pytest.raises(SageMakerError, match=message) as err:
        sagemaker.create_hyper_parameter_tuning_job(bad)
    assert err.value.code == "ValidationException"


def test_ranges_keep_their_scale() -> None:
    log_range = Range("eta", "Continuous", 0.01, 1.0, "Logarithmic")
    assert float(log_range.value(0.5)) == pytest.approx(0.1)
    assert log_range.unit(log_range.value(0.25)) == pytest.approx(0.25)
    depth = Range("max_depth", "Integer", 3, 10)
    assert {depth.value(u / 100) for u in range(101)} == {str(n) for n in range(3, 11)}


def test_prod_runs_through_its_tuning_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mlstack local run --env prod` as defined (Bayesian, early stopping Auto), with the job
    count lowered through --input to keep the test short."""
    lowered = {"tuning_max_jobs": 3, "tuning_max_parallel_jobs": 2}
    # The programs forked with their libraries imported (tests/programs.py).
    with programs.forked_python():
        code = main([
            "local", "run", "--env", "prod", "--plain", "--rows", "2000",
            "--workdir", str(tmp_path), "--name", "prod-tuning", "--input", json.dumps(lowered),
        ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    run_dir = tmp_path / "prod-tuning"
    execution = json.loads((run_dir / "execution.json").read_text())
    states = [s["name"] for s in execution["states"]]
    assert states.index("Tune model") < states.index("Read best training job")
    assert "Train model" not in states
    # Not the batch transform (-b0-), evaluation (-e0-) nor, prod capturing data, the Baseline
    # data (-d0-) job of the run.
    assert "Baseline data" in states
    jobs = sorted(
        p.name
        for p in (run_dir / "jobs").iterdir()
        if not any(kind in p.name for kind in ("-b0-", "-e0-", "-d0-"))
    )
    tuning_jobs = [j for j in jobs if j.startswith("mlstack-prod-") and j.count("-") == 4]
    assert len(tuning_jobs) == 3, jobs
    assert any(j in execution["output"]["model_artifact_uri"] for j in tuning_jobs)
    assert len({j.rsplit("-", 2)[0] for j in tuning_jobs}) == 1  # one tuning job ran them

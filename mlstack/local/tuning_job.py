"""CreateHyperParameterTuningJob, locally: training jobs of the job's definition run as parallel
processes (``MaxParallelTrainingJobs`` at a time, ``MaxNumberOfTrainingJobs`` in all), each with
the static hyperparameters merged with the tuned ones the strategy suggests
(:mod:`mlstack.local.tuning`), its objective read from its log with the definition's
``MetricDefinitions`` (the image's regexes), as SageMaker reads it.

What follows SageMaker (API reference: CreateHyperParameterTuningJob,
DescribeHyperParameterTuningJob, HyperParameterTrainingJobSummary; developer guide "Stop Training
Jobs Early"):

- names: the tuning job's name matches ``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}``; its training jobs
  are ``<tuning job>-NNN-<8 hex digits>``, tagged with ``TuningJobArn``, and get the
  hyperparameter ``_tuning_objective_metric``;
- ``TrainingJobEarlyStoppingType`` ``Auto``: the median stopping rule — a job whose objective
  at round *i* is worse than the median of the running averages of the finished jobs' objective
  up to round *i* is stopped (SIGTERM: the image finishes the round and saves its model; the job
  is ``Stopped`` and its objective counts). Locally the rule applies once 3 jobs have finished;
- the result is DescribeHyperParameterTuningJob: ``TrainingJobStatusCounters``,
  ``ObjectiveStatusCounters`` and ``BestTrainingJob`` (a HyperParameterTrainingJobSummary: name,
  ARN, status, ``TunedHyperParameters``, ``FinalHyperParameterTuningJobObjectiveMetric``, ...);
  ``Completed`` when one job produced the objective, ``Failed`` (raised as :class:`JobFailed`,
  ``States.TaskFailed`` in the state machine) when none did.

Refused with a ``ValidationException`` that says so: Hyperband and Grid strategies, warm start,
``Autotune``, several training job definitions (``TrainingJobDefinitions``), and an objective
metric the definition's ``MetricDefinitions`` do not name.
"""

from __future__ import annotations

import re
import statistics
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from mlstack.local.sagemaker_service import JobFailed, SageMakerError, Service, now_ms
from mlstack.local.training_job import TrainingHooks, TrainingJobs
from mlstack.local.tuning import RangeError, Search, parse_ranges

TUNING_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
EARLY_STOPPING_MIN_JOBS = 3


def _invalid(message: str) -> SageMakerError:
    return SageMakerError("ValidationException", message)


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid(f"{what} must be a positive integer, got {value!r}")
    return value


class _MedianRule:
    """SageMaker's early stopping: the objective at round i against the median of the finished
    jobs' running averages up to round i (worse: stop)."""

    def __init__(self, metric: str, minimize: bool, enabled: bool) -> None:
        self.metric = metric
        self.minimize = minimize
        self.enabled = enabled
        self.finished: list[list[float]] = []
        self.running: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def should_stop(self, job: str, metric: str, value: float) -> bool:
        if metric != self.metric:
            return False
        with self.lock:
            series = self.running.setdefault(job, [])
            series.append(value)
            if not self.enabled:
                return False
            i = len(series) - 1
            averages = [sum(c[: i + 1]) / (i + 1) for c in self.finished if len(c) > i]
            if i < 1 or len(averages) < EARLY_STOPPING_MIN_JOBS:
                return False
            median = statistics.median(averages)
            return value > median if self.minimize else value < median

    def finish(self, job: str) -> None:
        with self.lock:
            series = self.running.pop(job, [])
            if series:
                self.finished.append(series)


class TuningJobs:
    """CreateHyperParameterTuningJob and DescribeHyperParameterTuningJob of one account; the
    training jobs run through ``training``."""

    def __init__(self, service: Service, training: TrainingJobs) -> None:
        self.service = service
        self.training = training

    def create_hyper_parameter_tuning_job(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the request as the API would, run the training jobs to their end; return
        DescribeHyperParameterTuningJob, or raise JobFailed."""
        job = _parse(params)
        # An image this app builds, before any job runs.
        self.service.image(job.algorithm.get("TrainingImage"))
        desc = _register(self.service, job)
        run = _TuningRun(self.service, self.training, job, desc)
        run.run()
        return _conclude(self.service, job, desc, run.summaries)

    def describe_hyper_parameter_tuning_job(self, p: Mapping[str, Any]) -> dict[str, Any]:
        name = str(p.get("HyperParameterTuningJobName", ""))
        job = self.service.registry.tuning_jobs.get(name.lower())
        if job is None or "HyperParameterTuningJobArn" not in job:
            raise SageMakerError(
                "ResourceNotFound",
                f"Amazon SageMaker can't find a tuning job with name "
                f"{p.get('HyperParameterTuningJobName')}",
            )
        return job


@dataclass(frozen=True)
class _TuningJob:
    """A CreateHyperParameterTuningJob request, checked."""

    name: str
    config: dict[str, Any]
    definition: dict[str, Any]
    algorithm: dict[str, Any]
    metric: str
    kind: str  # Minimize or Maximize
    max_jobs: int
    parallel: int
    early_stopping: bool
    static: dict[str, Any]
    search: Search
    tags: list[Any]


def _parse(params: Mapping[str, Any]) -> _TuningJob:
    """The request, or the ValidationException SageMaker would answer."""
    name = params.get("HyperParameterTuningJobName")
    if not isinstance(name, str) or not TUNING_NAME.fullmatch(name):
        raise _invalid(
            f"1 validation error detected: Value {name!r} at 'hyperParameterTuningJobName' "
            "failed to satisfy constraint: Member must satisfy regular expression pattern: "
            "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}"
        )
    for unsupported in ("WarmStartConfig", "Autotune", "TrainingJobDefinitions"):
        if params.get(unsupported):
            raise _invalid(f"local mode does not run tuning jobs with {unsupported}")
    config = dict(params.get("HyperParameterTuningJobConfig") or {})
    definition = dict(params.get("TrainingJobDefinition") or {})
    if not definition:
        raise _invalid("TrainingJobDefinition is required")
    strategy = config.get("Strategy", "Bayesian")
    objective = dict(config.get("HyperParameterTuningJobObjective") or {})
    metric, kind = objective.get("MetricName"), objective.get("Type")
    if kind not in ("Minimize", "Maximize"):
        raise _invalid(
            f"HyperParameterTuningJobObjective.Type must be Minimize or Maximize: {kind!r}"
        )
    algorithm = dict(definition.get("AlgorithmSpecification") or {})
    known = [d.get("Name") for d in algorithm.get("MetricDefinitions", [])]
    if metric not in known:
        raise _invalid(
            f"The objective metric {metric!r} is not defined in "
            f"AlgorithmSpecification.MetricDefinitions ({', '.join(map(str, known)) or 'none'})"
        )
    limits = dict(config.get("ResourceLimits") or {})
    max_jobs = _positive_int(
        limits.get("MaxNumberOfTrainingJobs"), "ResourceLimits.MaxNumberOfTrainingJobs"
    )
    parallel = _positive_int(
        limits.get("MaxParallelTrainingJobs"), "ResourceLimits.MaxParallelTrainingJobs"
    )
    early = config.get("TrainingJobEarlyStoppingType", "Off")
    if early not in ("Off", "Auto"):
        raise _invalid(f"TrainingJobEarlyStoppingType must be Off or Auto: {early!r}")
    static = {str(k): v for k, v in (definition.get("StaticHyperParameters") or {}).items()}
    try:
        ranges = parse_ranges(config.get("ParameterRanges") or {})
        search = Search(str(strategy), ranges, seed=name, parallel=parallel)
    except RangeError as err:
        raise _invalid(str(err)) from None
    overlap = sorted({r.name for r in ranges} & set(static))
    if overlap:
        raise _invalid(f"hyperparameters {overlap} are both static and tuned")
    return _TuningJob(
        name=name,
        config=config,
        definition=definition,
        algorithm=algorithm,
        metric=str(metric),
        kind=str(kind),
        max_jobs=max_jobs,
        parallel=parallel,
        early_stopping=early == "Auto",
        static=static,
        search=search,
        tags=list(params.get("Tags", [])),
    )


def _register(sm: Service, job: _TuningJob) -> dict[str, Any]:
    """The tuning job's description, InProgress, under its (unique) name."""
    with sm.lock:
        if job.name.lower() in sm.registry.tuning_jobs:
            raise SageMakerError("ResourceInUse", f"Tuning job {job.name!r} already exists")
        desc: dict[str, Any] = {
            "HyperParameterTuningJobName": job.name,
            "HyperParameterTuningJobArn": sm.arn("hyper-parameter-tuning-job", job.name),
            "HyperParameterTuningJobConfig": job.config,
            "TrainingJobDefinition": job.definition,
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": now_ms(),
            "TrainingJobStatusCounters": {
                "Completed": 0,
                "InProgress": 0,
                "RetryableError": 0,
                "NonRetryableError": 0,
                "Stopped": 0,
            },
            "ObjectiveStatusCounters": {"Succeeded": 0, "Pending": 0, "Failed": 0},
        }
        sm.registry.tuning_jobs[job.name.lower()] = desc
    return desc


class _TuningRun:
    """The training jobs of one tuning job: ``parallel`` at a time, ``max_jobs`` in all, each
    with the hyperparameters the search suggests from the objectives seen so far."""

    def __init__(
        self, sm: Service, training: TrainingJobs, job: _TuningJob, desc: dict[str, Any]
    ) -> None:
        self.sm = sm
        self.training = training
        self.job = job
        self.rule = _MedianRule(job.metric, job.kind == "Minimize", job.early_stopping)
        self.hooks = TrainingHooks(desc["HyperParameterTuningJobArn"], self.rule.should_stop)
        self.counters = desc["TrainingJobStatusCounters"]
        self.objectives = desc["ObjectiveStatusCounters"]
        self.summaries: list[dict[str, Any]] = []
        self.observed: list[tuple[dict[str, str], float]] = []
        self.pending: dict[Future[dict[str, Any]], tuple[str, dict[str, str]]] = {}

    def run(self) -> None:
        job = self.job
        with ThreadPoolExecutor(max_workers=job.parallel, thread_name_prefix=job.name) as pool:
            launched = 0
            while launched < job.max_jobs or self.pending:
                while launched < job.max_jobs and len(self.pending) < job.parallel:
                    launched += 1
                    self.launch(launched, pool)
                done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
                for future in done:
                    self.finished(future)

    def launch(self, index: int, pool: ThreadPoolExecutor) -> None:
        job, definition = self.job, self.job.definition
        tuned = job.search.suggest(self.observed, [t for _, t in self.pending.values()])
        training_job = f"{job.name}-{index:03d}-{uuid.uuid4().hex[:8]}"
        request = {
            "TrainingJobName": training_job,
            "AlgorithmSpecification": job.algorithm,
            "RoleArn": definition.get("RoleArn"),
            "HyperParameters": {**job.static, **tuned, "_tuning_objective_metric": job.metric},
            "InputDataConfig": definition.get("InputDataConfig", []),
            "OutputDataConfig": definition.get("OutputDataConfig", {}),
            "ResourceConfig": definition.get("ResourceConfig", {}),
            "StoppingCondition": definition.get("StoppingCondition", {}),
            "EnableNetworkIsolation": definition.get("EnableNetworkIsolation", False),
            "Environment": definition.get("Environment", {}),
            "Tags": list(job.tags),
        }
        if definition.get("EnableManagedSpotTraining"):
            request["EnableManagedSpotTraining"] = True
        if definition.get("CheckpointConfig"):
            # Every training job gets the definition's one CheckpointConfig, as the request
            # says: the API reference does not say SageMaker appends the job's name, so the jobs
            # share the prefix here (the worst case) and the image keeps each job to its own
            # checkpoints (docs/scale-out.md).
            request["CheckpointConfig"] = dict(definition["CheckpointConfig"])
        self.sm.say(job.name, f"training job {index}/{job.max_jobs}: {training_job} {tuned}")
        self.counters["InProgress"] += 1
        self.objectives["Pending"] += 1
        future = pool.submit(self.training.create_training_job, request, hooks=self.hooks)
        self.pending[future] = (training_job, tuned)

    def finished(self, future: Future[dict[str, Any]]) -> None:
        training_job, tuned = self.pending.pop(future)
        self.rule.finish(training_job)
        self.counters["InProgress"] -= 1
        self.objectives["Pending"] -= 1
        try:
            result = future.result()
        except JobFailed as failed:
            result = failed.description
        except SageMakerError as err:
            result = {"TrainingJobName": training_job, "TrainingJobStatus": "Failed",
                      "FailureReason": f"{err.code}: {err.message}"}  # fmt: skip
        status = result.get("TrainingJobStatus", "Failed")
        self.counters["NonRetryableError" if status == "Failed" else status] += 1
        summary = self._summary(training_job, tuned, result, status)
        self.summaries.append({k: v for k, v in summary.items() if v is not None})

    def _summary(
        self, training_job: str, tuned: dict[str, str], result: dict[str, Any], status: str
    ) -> dict[str, Any]:
        """The job's HyperParameterTrainingJobSummary; counts its objective."""
        metric, kind = self.job.metric, self.job.kind
        final = {m["MetricName"]: m["Value"] for m in result.get("FinalMetricDataList", [])}
        summary: dict[str, Any] = {
            "TrainingJobName": training_job,
            "TrainingJobArn": result.get(
                "TrainingJobArn", self.sm.arn("training-job", training_job)
            ),
            "TuningJobName": self.job.name,
            "CreationTime": result.get("CreationTime", now_ms()),
            "TrainingStartTime": result.get("TrainingStartTime"),
            "TrainingEndTime": result.get("TrainingEndTime"),
            "TrainingJobStatus": status,
            "TunedHyperParameters": tuned,
        }
        if status == "Failed":
            summary["FailureReason"] = result.get("FailureReason", "")
        if metric in final and status != "Failed":
            value = float(final[metric])
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": kind,
                "MetricName": metric,
                "Value": value,
            }
            summary["ObjectiveStatus"] = "Succeeded"
            self.objectives["Succeeded"] += 1
            self.observed.append((tuned, value if kind == "Minimize" else -value))
        else:
            summary["ObjectiveStatus"] = "Failed"
            self.objectives["Failed"] += 1
        return summary


def _conclude(
    sm: Service, job: _TuningJob, desc: dict[str, Any], summaries: list[dict[str, Any]]
) -> dict[str, Any]:
    """Completed with the best training job, or Failed (raised) when none reported the
    objective."""
    scored = [s for s in summaries if s["ObjectiveStatus"] == "Succeeded"]
    now = now_ms()
    desc.update(HyperParameterTuningEndTime=now, LastModifiedTime=now)
    if not scored:
        reasons = sorted({s.get("FailureReason", "no objective metric") for s in summaries})
        desc["HyperParameterTuningJobStatus"] = "Failed"
        desc["FailureReason"] = (
            f"No training job reported the objective metric {job.metric}: " + "; ".join(reasons)
        )[:1024]
        sm.save()
        raise JobFailed(desc)
    best = min(
        scored,
        key=lambda s: (
            s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
            * (1 if job.kind == "Minimize" else -1)
        ),
    )
    desc["BestTrainingJob"] = best
    desc["HyperParameterTuningJobStatus"] = "Completed"
    sm.save()
    value = best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    sm.say(job.name, f"best training job {best['TrainingJobName']}: {job.metric} = {value}")
    return desc

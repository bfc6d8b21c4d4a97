"""``mlstack local run``: one execution of an environment's synthesized workflow, on this machine.

The run reads the environment's cloud assembly (:mod:`mlstack.local.assembly`), starts the
embedded S3 server with the app's buckets, and lets the ASL interpreter execute the state machine
definition exactly as synthesized, Task states going to the local handlers
(:mod:`mlstack.local.tasks`).

What outlives a run in AWS lives in the environment's local account
(:mod:`mlstack.local.account`, ``<workdir>/accounts/<env>/``): the S3 objects and the SageMaker
registry are loaded from it when the run starts and saved to it when the run ends, so the next
run of the environment finds them (its deploy stage updates the endpoint the previous one
deployed); ``clean`` starts from an empty account. One run of an environment at a time.

Each run keeps its own directory ``<workdir>/<execution name>/``: ``execution.json`` (input,
output or error, every state with its time), ``jobs/<job>/`` (each job's ``/opt/ml`` tree and
log), ``sagemaker/registry.json`` (the account's registry as this run left it), ``lambda/``,
``sns.jsonl``, and ``s3``: a link to the account's S3 contents.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlstack.local import assembly as assembly_mod
from mlstack.local.account import REGISTRY, LocalAccount, write_atomically
from mlstack.local.asl import ExecutionResult, Interpreter
from mlstack.local.events import Delivery, LocalEventBridge
from mlstack.local.imports import upload
from mlstack.local.processes import Interrupted, signals_ignored
from mlstack.local.s3 import EmbeddedS3, kept_buckets
from mlstack.local.sagemaker import LocalSageMaker, deployed_endpoints
from mlstack.local.tasks import TaskDispatcher
from mlstack.local.ui import Reporter, short_cause
from mlstack.local.validation import ServiceRefusal, rules
from mlstack.report.build import REPORT_FILE, ReportInputs, render
from mlstack.report.history import HistoryRecorder
from mlstack.report.sources import evaluation_of_jobs, local_rounds, read_parts, tuning_points

DEFAULT_WORKDIR = Path(".work") / "local"
DEFAULT_TIME_SCALE = 0.01


@dataclass
class RunOptions:
    environment: str = "dev"
    rows: int | None = None
    seed: int | None = None
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    extra_input: Mapping[str, Any] = field(default_factory=dict)
    workdir: Path = DEFAULT_WORKDIR
    name: str | None = None
    cdk_out: Path | None = None
    environments_dir: Path | None = None
    time_scale: float = DEFAULT_TIME_SCALE
    interrupt_training_after: float | None = None  # seconds; a spot interruption, on request
    clean: bool = False  # start from an empty local account (S3 objects, SageMaker registry)
    # Deliver the events waiting in the account (an approval by `mlstack local approve`) and run
    # what their rules start, without a training execution.
    release_only: bool = False
    # A table of the user's (docs/your-data.md): a local file or folder (copied under the data
    # bucket's imports/) or an s3:// URI, its label column and problem type.
    data: str | None = None
    label: str | None = None
    problem_type: str | None = None
    data_prefix: str | None = None  # set once a local file is copied: its key under imports/

    def execution_input(self) -> dict[str, Any]:
        """Only what the user asked for: every default comes from the definition itself."""
        data: dict[str, Any] = dict(self.extra_input)
        if self.rows is not None:
            data["rows"] = self.rows
        if self.seed is not None:
            data["seed"] = self.seed
        if self.hyperparameters:
            data["hyperparameters"] = {**data.get("hyperparameters", {}), **self.hyperparameters}
        if self.data is not None:
            source = {"uri": self.data_prefix or self.data, "label": self.label}
            if self.problem_type is not None:
                source["problem_type"] = self.problem_type
            data["dataset_source"] = {**(data.get("dataset_source") or {}), **source}
        return data


@dataclass
class RunReport:
    name: str
    environment: str
    run_dir: Path
    status: str
    seconds: float
    steps: list[tuple[str, float]]  # (step, seconds), in order
    states: list[str]
    input: dict[str, Any]
    output: Any = None
    error: str | None = None
    cause: str | None = None
    failed_state: str | None = None
    failure_reason: str | None = None
    training_jobs: list[dict[str, Any]] = field(default_factory=list)
    synthesized: bool = False
    account: Path | None = None  # the local account the run used
    # The executions EventBridge rules started (the release of an approved version).
    releases: list[dict[str, Any]] = field(default_factory=list)
    # A run stopped by a signal: which one, the state it was in, the jobs it stopped.
    interrupted: int | None = None
    interrupted_in: str | None = None
    stopped_jobs: list[str] = field(default_factory=list)
    report_path: Path | None = None  # report.html

    @property
    def ok(self) -> bool:
        """The execution and every release it started succeeded."""
        return self.status == "SUCCEEDED" and all(r["status"] == "SUCCEEDED" for r in self.releases)

    @property
    def evaluation(self) -> dict[str, Any] | None:
        """The workflow's evaluation (``$.evaluation`` of the output): report URI, problem
        type and metrics, as the evaluation job computed them on the held-out labels."""
        out = self.output if isinstance(self.output, dict) else {}
        evaluation = out.get("evaluation")
        return evaluation if isinstance(evaluation, dict) else None


def new_execution_name() -> str:
    return datetime.now(UTC).strftime("local-%Y%m%d-%H%M%S-") + secrets.token_hex(3)


NETWORK_IGNORED = (
    "network isolation (the VpcConfig of jobs and models) is ignored locally: jobs, models and "
    "functions run as local processes"
)


def network_notice(definition: Mapping[str, Any]) -> str | None:
    """What a run says, once, when the definition places jobs or models in a VPC (the config's
    network section was validated when the app was synthesized)."""
    return NETWORK_IGNORED if "VpcConfig" in json.dumps(definition) else None


def run(options: RunOptions, reporter: Reporter) -> RunReport:
    """Execute the environment's workflow locally, in its local account; never raises for a
    failing workflow. Raises AccountInUse while another run holds the account, ValueError for
    an execution name the account already used."""
    _check_environment(options.environment, options.environments_dir)
    name = options.name or new_execution_name()
    account = LocalAccount.of(options.workdir, options.environment)
    _check_run_dir((options.workdir / name).resolve(), options.environment)
    with account.lock(name):
        if options.clean:
            account.clean()
        account.check_new_execution(name)
        return _run_in_account(options, reporter, name, account)


def _check_environment(environment: str, environments_dir: Path | None) -> None:
    """An environment without a configuration file is a typo: refused before anything (an
    account, a run directory) is made for it."""
    from mlstack.config import ENVIRONMENTS_DIR, ConfigError, load_environment, load_environments

    directory = environments_dir or ENVIRONMENTS_DIR
    try:
        load_environment(environment, directory)
    except ConfigError as err:
        if (directory / f"{environment}.json").is_file():
            raise  # it exists: its own problem, as the config words it
        try:
            known = ", ".join(load_environments(directory)) or "none"
        except ConfigError:
            known = "none that load"
        raise ValueError(
            f"{err}; the environments are: {known} (choose one with --env, or add "
            f"{directory / environment}.json)"
        ) from None


def _run_in_account(
    options: RunOptions, reporter: Reporter, name: str, account: LocalAccount
) -> RunReport:
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat()
    steps: list[tuple[str, float]] = []
    run_dir = (options.workdir / name).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)

    assembly = _load_assembly(options, run_dir, steps, reporter)
    check_start_execution(assembly.state_machine_arn, name, options.execution_input())
    s3, others = _start_s3(assembly, account, run_dir, steps, reporter, clean=options.clean)
    if options.data is not None and not options.data.startswith("s3://"):
        options.data_prefix = upload(s3.client, assembly.definition, Path(options.data))
        reporter.info(f"--data {options.data}: copied under imports/{options.data_prefix}")
    execution_input = options.execution_input()
    events = LocalEventBridge(assembly)
    sagemaker = _local_sagemaker(options, assembly, account, run_dir, s3, events, reporter)
    earlier = _JobsBefore.of(sagemaker)
    dispatcher = TaskDispatcher(assembly, s3, sagemaker, run_dir, log=reporter.log)
    result: ExecutionResult | None = None
    releases: list[dict[str, Any]] = []
    interrupted: Interrupted | None = None
    running: str | None = None
    stopped_jobs: list[str] = []
    history = HistoryRecorder(reporter, assembly.definition, assembly.region)
    parts: dict[str, Any] | None = None
    try:
        interpreter = Interpreter(
            assembly.definition,
            dispatcher,
            listener=history,
            time_scale=options.time_scale,
            state_machine_arn=assembly.state_machine_arn,
            role_arn=assembly.state_machine_role_arn,
        )
        try:
            if options.release_only:
                result = ExecutionResult(status="SUCCEEDED", output=None)
            else:
                result = _execute(interpreter, history, reporter, execution_input, name)
            steps.extend(_state_steps(result))
            releases = run_deliveries(events, dispatcher, reporter, options.time_scale, steps)
            parts = read_parts(s3.client, _evaluation_of(result.output, sagemaker, earlier))
        except Interrupted as signalled:
            interrupted = signalled
            result, running, stopped_jobs = _aborted(signalled, reporter, sagemaker)
    finally:
        with signals_ignored():
            save_started = time.perf_counter()
            _save_account(account, sagemaker, s3, others, run_dir, reporter)
            status = result.status if result else "ABORTED"
            account.record_execution(name, run_dir, status, started_at)
            steps.append(("Archive", time.perf_counter() - save_started))
    assert result is not None  # the try either set it or raised

    report = _run_report(
        options,
        name=name,
        run_dir=run_dir,
        seconds=time.perf_counter() - started,
        steps=steps,
        result=result,
        execution_input=execution_input,
        training_jobs=[
            job for key, job in sagemaker.training_jobs.items() if key not in earlier.training
        ],
        synthesized=assembly.synthesized,
    )
    report.account = account.directory
    report.releases = releases
    if interrupted is not None:
        report.interrupted, report.interrupted_in = interrupted.signum, running
        report.stopped_jobs = stopped_jobs
    _write_execution(report, result, account)
    new_tuning = {k: v for k, v in sagemaker.tuning_jobs.items() if k not in earlier.tuning}
    tuning = tuning_points(new_tuning, sagemaker.training_jobs)
    report.report_path = write_report(report, history.events, parts, tuning)
    return report


def _execute(
    interpreter: Interpreter,
    history: HistoryRecorder,
    reporter: Reporter,
    execution_input: Any,
    name: str,
) -> ExecutionResult:
    """The execution, its history recorded from ExecutionStarted to its end."""
    with reporter:
        history.execution_started()
        result = interpreter.execute(execution_input, name=name)
        history.execution_ended(result.status, result.error, result.cause)
    return result


@dataclass(frozen=True)
class _JobsBefore:
    """The jobs the account held before the run: what is left is the run's."""

    training: frozenset[str]
    tuning: frozenset[str]
    processing: frozenset[str]

    @classmethod
    def of(cls, sagemaker: LocalSageMaker) -> _JobsBefore:
        return cls(
            frozenset(sagemaker.training_jobs),
            frozenset(sagemaker.tuning_jobs),
            frozenset(sagemaker.processing_jobs),
        )


def _evaluation_of(
    output: Any, sagemaker: LocalSageMaker, earlier: _JobsBefore
) -> dict[str, Any] | None:
    """The output's evaluation, else (a run that failed after it) the run's evaluation job's."""
    evaluation = output.get("evaluation") if isinstance(output, dict) else None
    if isinstance(evaluation, dict):
        return evaluation
    jobs = {k: v for k, v in sagemaker.processing_jobs.items() if k not in earlier.processing}
    return evaluation_of_jobs(jobs)


def write_report(
    report: RunReport,
    events: list[dict[str, Any]],
    parts: dict[str, Any] | None,
    tuning: tuple[str, list[dict[str, Any]]] = ("", []),
) -> Path:
    """``report.html`` in the run directory (and ``history.json``: the execution history in
    GetExecutionHistory's shape). The training curves are the model's training job's (a tuning
    run's best), else every training job's of the run."""
    (report.run_dir / "history.json").write_text(json.dumps({"events": events}), "utf-8")
    out = report.output if isinstance(report.output, dict) else {}
    chosen = out.get("training_job_name")
    jobs = [chosen] if isinstance(chosen, str) else [j["name"] for j in report.training_jobs]
    inputs = ReportInputs(
        execution=report.name,
        environment=report.environment,
        status=report.status,
        events=events,
        rounds=local_rounds(report.run_dir, jobs),
        tuning_objective=tuning[0],
        tuning=tuning[1],
        parts=parts,
        output=report.output if isinstance(report.output, dict) else None,
        releases=report.releases,
        error=report.failure_reason,
    )
    path = report.run_dir / REPORT_FILE
    path.write_text(render(inputs), "utf-8")
    return path


def _local_sagemaker(
    options: RunOptions,
    assembly: assembly_mod.LocalAssembly,
    account: LocalAccount,
    run_dir: Path,
    s3: EmbeddedS3,
    events: LocalEventBridge,
    reporter: Reporter,
) -> LocalSageMaker:
    """The account's SageMaker for this run: its registry restored, the assembly's model
    package groups present, the events an earlier run left pending delivered."""
    sagemaker = LocalSageMaker(
        run_dir,
        s3,
        assembly.images,
        region=assembly.region,
        account=assembly.account,
        log=reporter.log,
        metric=reporter.metric,
        interrupt_training_after=options.interrupt_training_after,
        restore_registry=account.registry_path,
        endpoints_dir=account.directory / "endpoints",
        on_event=events.service_event,
    )
    for group in assembly.model_package_groups:
        sagemaker.ensure_model_package_group(group)
    deliver_pending(sagemaker, events)
    return sagemaker


def _aborted(
    signalled: Interrupted, reporter: Reporter, sagemaker: LocalSageMaker
) -> tuple[ExecutionResult, str | None, list[str]]:
    """As Step Functions stops an execution: its running tasks' jobs are stopped, what they
    made (objects, models, registry entries) stays in the account. Returns the ABORTED result,
    the state that was running and the jobs stopped."""
    with signals_ignored():
        running = next((r.name for r in reversed(reporter.rows) if r.status == "running"), None)
        stopped_jobs = sagemaker.stop_jobs()
        result = ExecutionResult(
            status="ABORTED",
            error="States.Aborted",
            cause=f"{signal.Signals(signalled.signum).name} stopped the local run "
            f"in state {running or '(none)'}",
        )
    return result, running, stopped_jobs


def check_start_execution(state_machine_arn: str, name: str, execution_input: Any) -> None:
    """Refuse, as Step Functions does, a StartExecution its model does not allow (a name over
    80 characters, an input over 256 KiB: botocore's stepfunctions model); ValueError with the
    service's words."""
    request = {
        "stateMachineArn": state_machine_arn,
        "name": name,
        "input": json.dumps(execution_input),
    }
    try:
        rules("stepfunctions").check_request("StartExecution", request)
    except ServiceRefusal as refused:
        raise ValueError(f"StartExecution refused: {refused}") from None


def _check_run_dir(run_dir: Path, environment: str) -> None:
    """Runs of two environments never share a directory (an execution name is unique per
    state machine, so another environment may use the same one)."""
    execution = run_dir / "execution.json"
    if execution.is_file():
        other = json.loads(execution.read_text(encoding="utf-8")).get("environment")
        if other != environment:
            raise ValueError(
                f"{run_dir} holds a run of environment {other!r}: choose another --name "
                "(or another --workdir)"
            )


def _save_account(
    account: LocalAccount,
    sagemaker: LocalSageMaker,
    s3: EmbeddedS3,
    others: set[str],
    run_dir: Path,
    reporter: Reporter,
) -> None:
    """Stop the endpoints and S3; save S3's objects and the registry into the account (the
    run dir keeps a copy of the registry and a link to the account's S3)."""
    try:
        sagemaker.stop()
        skipped = s3.persist(account.s3_dir, others)
    finally:
        s3.stop()
    if skipped:
        reporter.info(f"not kept in the local account (no file can hold them): {skipped}")
    registry = run_dir / REGISTRY
    if registry.is_file():
        write_atomically(account.registry_path, registry.read_text(encoding="utf-8"))
    link = run_dir / "s3"
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():  # a run dir reused with --clean, from before the account
        shutil.rmtree(link)
    link.symlink_to(os.path.relpath(account.s3_dir, run_dir), target_is_directory=True)


def deliver_pending(sagemaker: LocalSageMaker, events: LocalEventBridge) -> None:
    """The events a command outside a run left in the account (``pending_events`` of the
    registry: ``mlstack local approve``), put on the local EventBridge now."""
    with sagemaker._lock:
        pending = list(sagemaker.pending_events.values())
        sagemaker.pending_events.clear()
    for event in pending:
        events.service_event(str(event["detail-type"]), dict(event["detail"]))
    if pending:
        sagemaker._save_registry()


def run_deliveries(
    events: LocalEventBridge,
    dispatcher: Any,
    reporter: Reporter,
    time_scale: float,
    steps: list[tuple[str, float]],
) -> list[dict[str, Any]]:
    """Run the executions the events of the run started (as EventBridge would, after them)."""

    def execute(delivery: Delivery) -> ExecutionResult:
        machine = delivery.machine
        reporter.info(f"EventBridge rule {delivery.rule} starts {machine.name}")
        interpreter = Interpreter(
            machine.definition,
            dispatcher,
            listener=reporter,
            time_scale=time_scale,
            state_machine_arn=machine.arn,
            role_arn=machine.role_arn,
        )
        started = time.perf_counter()
        name = str(uuid.uuid4())
        check_start_execution(machine.arn, name, delivery.event)
        with reporter:
            result = interpreter.execute(delivery.event, name=name)
        steps.append((f"Release ({result.status.lower()})", time.perf_counter() - started))
        return result

    return [
        {
            "state_machine": delivery.machine.name,
            "rule": delivery.rule,
            "event": delivery.event,
            "status": result.status,
            "states": result.states,
            "output": result.output,
            "error": result.error,
            "cause": result.cause,
        }
        for delivery, result in events.drain(execute)
    ]


def _load_assembly(
    options: RunOptions, run_dir: Path, steps: list[tuple[str, float]], reporter: Reporter
) -> assembly_mod.LocalAssembly:
    """The environment's cloud assembly: reused when fresh, else synthesized in-process."""
    load_started = time.perf_counter()
    assembly = assembly_mod.load(
        options.environment,
        cdk_out=options.cdk_out,
        environments_dir=options.environments_dir,
        synth_dir=run_dir / "cdk.out",
    )
    how = "synthesized in-process" if assembly.synthesized else f"read from {assembly.directory}"
    steps.append(
        (
            "Synthesize" if assembly.synthesized else "Read assembly",
            time.perf_counter() - load_started,
        )
    )
    reporter.info(f"{options.environment}: state machine definition {how}")
    notice = network_notice(assembly.definition)
    if notice:
        reporter.info(notice)
    return assembly


def _start_s3(
    assembly: assembly_mod.LocalAssembly,
    account: LocalAccount,
    run_dir: Path,
    steps: list[tuple[str, float]],
    reporter: Reporter,
    *,
    clean: bool,
) -> tuple[EmbeddedS3, set[str]]:
    """The embedded S3 server with the account's objects and the stacks' buckets, and the
    buckets it held before (another server's of this process: not the account's)."""
    s3_started = time.perf_counter()
    s3 = EmbeddedS3(assembly.region)
    before = {b["Name"] for b in s3.client.list_buckets().get("Buckets", [])}
    restored = s3.restore(account.s3_dir, assembly.buckets)
    others = before - set(assembly.buckets) - set(kept_buckets(account.s3_dir))
    steps.append(("Start S3", time.perf_counter() - s3_started))
    state = (
        "emptied (--clean)"
        if clean
        else f"{restored} S3 objects and {len(account.executions())} earlier runs"
    )
    reporter.info(f"local account {shown(account.directory)}: {state}")
    reporter.info(f"embedded S3 on {s3.endpoint_url}; work dir {run_dir}")
    return s3, others


def _run_report(
    options: RunOptions,
    *,
    name: str,
    run_dir: Path,
    seconds: float,
    steps: list[tuple[str, float]],
    result: ExecutionResult,
    execution_input: Any,
    training_jobs: list[dict[str, Any]],
    synthesized: bool,
) -> RunReport:
    failed_state, reason = _failure(result)
    return RunReport(
        name=name,
        environment=options.environment,
        run_dir=run_dir,
        status=result.status,
        seconds=seconds,
        steps=steps,
        states=result.states,
        input=execution_input,
        output=result.output,
        error=result.error,
        cause=result.cause,
        failed_state=failed_state,
        failure_reason=reason,
        training_jobs=[
            {
                "name": j["TrainingJobName"],
                "status": j.get("TrainingJobStatus"),
                "metrics": {m["MetricName"]: m["Value"] for m in j.get("FinalMetricDataList", [])},
            }
            for j in training_jobs
            if "TrainingJobArn" in j
        ],
        synthesized=synthesized,
    )


def _state_steps(result: ExecutionResult) -> list[tuple[str, float]]:
    """Seconds per state in first-visit order; a state visited n > 1 times is ``name (n times)``."""
    totals: dict[str, float] = {}
    visits: dict[str, int] = {}
    for r in result.history:
        totals[r.name] = totals.get(r.name, 0.0) + r.seconds
        visits[r.name] = visits.get(r.name, 0) + 1
    return [(f"{n} ({visits[n]} times)" if visits[n] > 1 else n, t) for n, t in totals.items()]


def _failure(result: ExecutionResult) -> tuple[str | None, str | None]:
    """The state that failed first and its reason (a job's FailureReason when there is one)."""
    for record in result.history:
        if record.status in ("failed", "caught") and record.state_type != "Fail":
            return record.name, f"{record.error}: {short_cause(record.cause or '', 2000)}"
    if result.error or result.cause:
        return None, f"{result.error or '(no error name)'}: {short_cause(result.cause or '', 2000)}"
    if result.status != "SUCCEEDED":  # a Fail state with neither Error nor Cause
        return None, "a Fail state without Error or Cause"
    return None, None


def _write_execution(report: RunReport, result: ExecutionResult, account: LocalAccount) -> None:
    data = {
        "name": report.name,
        "environment": report.environment,
        "account": str(account.directory),
        "status": report.status,
        "seconds": round(report.seconds, 3),
        "input": report.input,
        "output": report.output,
        "error": report.error,
        "cause": report.cause,
        "failed_state": report.failed_state,
        "failure_reason": report.failure_reason,
        "states": [asdict(r) for r in result.history],
        "steps": [{"step": s, "seconds": round(v, 3)} for s, v in report.steps],
        "training_jobs": report.training_jobs,
        "evaluation": report.evaluation,
        "releases": report.releases,
    }
    (report.run_dir / "execution.json").write_text(json.dumps(data, indent=2, default=str), "utf-8")


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _release_lines(releases: list[dict[str, Any]]) -> list[str]:
    lines = []
    for release in releases:
        detail = release["event"].get("detail", {})
        version = f"version {detail.get('ModelPackageVersion')}"
        output = release.get("output")
        out: dict[str, Any] = output if isinstance(output, dict) else {}
        if release["status"] == "SUCCEEDED" and out.get("result"):
            what = (
                f"{out['result']}: {out.get('endpoint_name')} ({out.get('endpoint_config_name')})"
            )
        elif release["status"] == "SUCCEEDED":
            what = "nothing to deploy (the version is no longer approved)"
        else:
            what = f"{release['error']}: {short_cause(release.get('cause') or '', 300)}"
        lines.append(f"  Release           {version} {release['status']}, {what}")
        ab = out.get("ab")
        if isinstance(ab, dict) and ab.get("decision") != "none":
            lines.append(f"  A/B               {ab.get('decision')}: {ab.get('reason')}")
    return lines


def format_summary(report: RunReport) -> str:
    """The closing summary: names, metrics, URIs, the evaluation and time by step."""
    lines = [
        f"Local run {report.name} of {report.environment}: {report.status} "
        f"in {report.seconds:.1f} s",
        f"  Work dir          {shown(report.run_dir)}",
        *([f"  Local account     {shown(report.account)}"] if report.account else []),
    ]
    out = report.output if isinstance(report.output, dict) else {}
    for job in report.training_jobs:
        metrics = ", ".join(f"{k}={v:.5g}" for k, v in sorted(job["metrics"].items()))
        lines.append(f"  Training job      {job['name']} ({job['status']}) {metrics}")
    labelled = {
        "model_name": "Model",
        "model_artifact_uri": "Model artifact",
        "transform_job_name": "Transform job",
        "transform_output_uri": "Transform output",
        "endpoint_config_name": "Endpoint config",
    }
    for key, label in labelled.items():
        if key in out:
            lines.append(f"  {label:<17} {out[key]}")
    deployed = deployed_endpoints(report.run_dir)
    shown_keys = {"run_id", "dataset", "hyperparameters", "model_arn", "training_job_name"}
    shown_keys.add("evaluation")
    shown_keys |= labelled.keys() | ({"endpoint_name"} if deployed else set())
    for key, value in out.items():  # whatever a newer workflow adds
        if key not in shown_keys and isinstance(value, str | int | float):
            lines.append(f"  {key:<17} {value}")
    package = out.get("model_package")
    if isinstance(package, dict) and "version" in package:
        group = str(package.get("arn", "")).rsplit("/", 2)[-2:-1] or ["?"]
        lines.append(
            f"  Model package     {group[0]} version {package['version']} "
            f"({package.get('approval_status')})"
        )
        if package.get("approval_status") == "PendingManualApproval":
            lines.append(
                f"  Release           waits for approval: `mlstack local approve --env "
                f"{report.environment} --version {package['version']}`"
            )
    lines.extend(_release_lines(report.releases))
    for name in deployed:
        lines.append(
            f"  Endpoint          {name} (InService locally; serve it with "
            f"`mlstack local serve --from-run {shown(report.run_dir)}`)"
        )
    lines += _evaluation_lines(report.evaluation)
    lines += _table_lines(out, report.run_dir)
    if report.report_path is not None:
        lines.append(f"  Report            {shown(report.report_path)}")
    if report.status != "SUCCEEDED":  # the workflow's own failure (a release's is above)
        lines.append(f"  Failed state      {report.failed_state or '-'}")
        lines.append(f"  Reason            {report.failure_reason}")
        lines.append(f"  Workflow error    {report.error}")
    lines.append("  Time by step      " + ", ".join(f"{s} {v:.1f}s" for s, v in report.steps))
    return "\n".join(lines)


def _evaluation_lines(evaluation: dict[str, Any] | None) -> list[str]:
    """The evaluation job's metrics on the held-out test labels, and where its report is."""
    if not evaluation:
        return []
    metrics = evaluation.get("metrics") or {}
    shown = ", ".join(
        f"{name}={value:.4g}" for name, value in metrics.items() if isinstance(value, int | float)
    )
    return [
        f"  Evaluation        {evaluation.get('problem_type')} on the held-out test labels: "
        + (shown or "no metric defined on this data"),
        f"  Evaluation report {evaluation.get('report_uri')}",
    ]


def _table_lines(out: dict[str, Any], run_dir: Path) -> list[str]:
    """A run on a table: its problem type and class labels (the model's schema.json, else what
    Register model recorded), and the quality gate it passed."""
    dataset = out.get("dataset") if isinstance(out.get("dataset"), dict) else {}
    lines: list[str] = []
    if dataset and "schema_uri" in dataset:
        schema_file = run_dir / "jobs" / str(out.get("training_job_name")) / "opt/ml/model"
        schema: dict[str, Any] = {}
        if (schema_file / "schema.json").is_file():
            schema = json.loads((schema_file / "schema.json").read_text(encoding="utf-8"))
        kind = schema.get("problem_type") or dataset.get("problem_type") or "?"
        lines.append(
            f"  Table             {dataset.get('source_uri')}: {kind}, label "
            f"'{dataset.get('label')}'"
        )
        classes = (schema.get("label") or {}).get("classes")
        recorded = (dataset.get("registry") or {}).get("class_labels")
        if classes is None and recorded:
            classes = recorded.split("/")
        if classes:
            lines.append(f"  Classes           {', '.join(map(str, classes))}")
        lines.append(f"  Schema            {dataset['schema_uri']}")
    gate = out.get("quality_gate")
    if isinstance(gate, dict) and "value" in gate:
        value, threshold = (
            f"{v:.4g}" if isinstance(v, int | float) else str(v)
            for v in (gate["value"], gate.get("threshold"))
        )
        lines.append(
            f"  Quality gate      {gate.get('metric')} = {value}, passed "
            f"{gate.get('comparison')} {threshold}"
        )
    return lines

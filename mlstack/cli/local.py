"""``mlstack local run`` and ``mlstack local serve``."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlstack.local.assembly import REPO, Image
from mlstack.local.processes import Interrupted, interruptible, signals_ignored
from mlstack.local.sagemaker import extract_model

if TYPE_CHECKING:
    from mlstack.local.runner import RunReport


def local_run(args: argparse.Namespace) -> int:
    from mlstack.local.account import AccountInUse
    from mlstack.local.runner import RunOptions, format_summary, run, shown
    from mlstack.local.ui import reporter_for

    options = RunOptions(
        environment=args.env,
        rows=args.rows,
        seed=args.seed,
        hyperparameters=dict(args.hyperparameter),
        extra_input=args.input,
        workdir=args.workdir,
        name=args.name,
        cdk_out=args.cdk_out,
        environments_dir=args.environments_dir,
        time_scale=args.time_scale,
        interrupt_training_after=args.interrupt_training_after,
        clean=args.clean,
        data=args.data,
        label=args.label,
        problem_type=args.problem_type,
    )
    if (args.data is None) != (args.label is None) or (args.problem_type and not args.data):
        print(
            "mlstack local run: --data and --label go together (--problem-type with them): "
            "the table and its label column",
            file=sys.stderr,
        )
        return 2
    reporter = reporter_for(sys.stdout, verbose=args.verbose, plain=True if args.plain else None)
    try:
        with interruptible():
            report = run(options, reporter)
    except (ValueError, OSError, AccountInUse) as err:  # configuration, assembly, definition,
        # a name already used, or the account in use by another run
        print(f"mlstack local run: {err}", file=sys.stderr)
        return 1
    except Interrupted as stop:  # before the execution started (synthesizing, starting S3)
        forget_stopped_jsii()
        print(
            f"mlstack local run: {signal.Signals(stop.signum).name} before the execution "
            "started: no job ran and the local account is as it was",
            file=sys.stderr,
        )
        return 128 + stop.signum
    if report.interrupted is not None:
        forget_stopped_jsii()
        print(interrupted_line(report), file=sys.stderr)
        return 128 + report.interrupted
    print()
    print(format_summary(report))
    if not report.ok:
        failed = [r for r in report.releases if r["status"] != "SUCCEEDED"]
        reason = (
            f"{report.status}: {report.failure_reason}"
            if report.status != "SUCCEEDED"
            else f"the release failed: {failed[0]['error']}: {failed[0]['cause']}"
        )
        print(
            f"\nmlstack local run: {reason}\nEvery artifact is kept in {shown(report.run_dir)}",
            file=sys.stderr,
        )
        return 1
    return 0


def forget_stopped_jsii() -> None:
    """An in-process synth leaves jsii's node process running in this terminal's process
    group: Ctrl-C ends it too, and jsii's stop (its exit hook, and its ``__del__`` when the
    interpreter ends), writing its exit message to that process, would end the command with a
    BrokenPipeError traceback. Close the pipe first: stop then writes nothing and only waits
    (node, if still running, ends on the end of its input)."""
    runtime = sys.modules.get("jsii._runtime")
    provider = getattr(getattr(runtime, "kernel", None), "provider", None)
    # jsii keeps its node process (a _NodeProcess, whose stop() is the exit hook) in the
    # closure of a memoized property; reading the property would start one if none runs.
    getter = getattr(getattr(type(provider), "_process", None), "fget", None)
    cells = getattr(getter, "__closure__", None) or ()
    stored = next((c.cell_contents for c in cells if isinstance(c.cell_contents, list)), [])
    node = stored[0] if stored else None
    popen = getattr(node, "_process", None)
    if node is None or not isinstance(popen, subprocess.Popen) or popen.stdin is None:
        return
    with contextlib.suppress(OSError):
        popen.stdin.close()


def interrupted_line(report: RunReport) -> str:
    """The one line an interrupted run ends with: what was stopped, what was kept, where."""
    from mlstack.local.runner import shown

    assert report.interrupted is not None
    stopped = ", ".join(report.stopped_jobs) if report.stopped_jobs else "no job was running"
    return (
        f"mlstack local run: {signal.Signals(report.interrupted).name} stopped run "
        f"{report.name} in state {report.interrupted_in or '(none)'}; stopped: {stopped}; kept: "
        f"what it made so far in the local account {shown(report.account or report.run_dir)} "
        f"(S3 objects, models, registry) and its work dir {shown(report.run_dir)} "
        "(execution.json: ABORTED)"
    )


def _model_from_run(run_dir: Path, endpoint_name: str | None) -> tuple[Path, str]:
    """The model of the endpoint as a run left it (the run dir's copy of the account's
    registry names its model directory, kept in the local account until ``--clean``), else
    of its training job (its ``model.tar.gz`` from the account's S3). ``run_dir`` may also be
    a local account's directory: its endpoint now."""
    from mlstack.local.sagemaker import deployed_endpoints

    endpoints = deployed_endpoints(run_dir)
    if endpoints:
        chosen = endpoint_name if endpoint_name in endpoints else next(iter(endpoints))
        model_dir = Path(endpoints[chosen]["model_dir"])
        if not model_dir.is_dir():
            raise ValueError(
                f"endpoint {chosen}'s model directory {model_dir} is gone (the local account "
                "was started again with --clean since); serve a later run's endpoint"
            )
        return model_dir, endpoint_name or chosen
    execution = run_dir / "execution.json"
    if not execution.is_file():
        raise ValueError(
            f"{run_dir} is not a local run's directory (no execution.json) nor a local "
            "account's (no sagemaker/registry.json with an InService endpoint)"
        )
    output = json.loads(execution.read_text(encoding="utf-8")).get("output") or {}
    uri = output.get("model_artifact_uri")
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"the run in {run_dir} deployed no endpoint and produced no model")
    archive = run_dir / "s3" / uri[len("s3://") :]
    if not archive.is_file():
        raise ValueError(
            f"{archive} is missing (the local account was started again with --clean since?)"
        )
    return archive, endpoint_name or str(output.get("model_name") or "local")


def local_serve(args: argparse.Namespace) -> int:
    from mlstack.local.capture import serve_capture
    from mlstack.local.gateway import Gateway, Target

    try:
        if args.from_run:
            model, name = _model_from_run(args.from_run, args.endpoint_name)
        else:
            model, name = args.model, args.endpoint_name or "local"
        if not model.exists():
            raise ValueError(f"{model} does not exist")
        # The port first: a taken one is refused before a model server starts.
        gateway = Gateway({}, port=args.port, capture=serve_capture(args.from_run))
    except ValueError as err:
        print(f"mlstack local serve: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(
            f"mlstack local serve: cannot listen on 127.0.0.1:{args.port}: {err.strerror} "
            "(another `mlstack local serve`, or another server?); choose another port with "
            "--port",
            file=sys.stderr,
        )
        return 1
    base = Path(tempfile.mkdtemp(prefix="mlstack-serve-"))
    try:
        with interruptible():
            return _serve(gateway, Target, model, name, base)
    except Interrupted:
        return 0  # Ctrl-C or SIGTERM: the way to stop serving
    finally:
        with signals_ignored():
            gateway.server.server_close()  # the port, also when the gateway never started
            shutil.rmtree(base, ignore_errors=True)


def _serve(gateway: Any, target: Any, model: Path, name: str, base: Path) -> int:
    """Serve until SIGINT or SIGTERM (:class:`Interrupted`), then stop the model server."""
    from mlstack.local.sagemaker import start_serve

    if model.is_file():
        extract_model(model.read_bytes(), base / "model")
    else:
        (base / "model").symlink_to(model.resolve(), target_is_directory=True)
    image = Image(uri="local", directory=REPO / "containers", dockerfile="inference/Dockerfile")
    server = None
    started = False
    try:
        server = start_serve(
            image,
            base,
            log_path=base / "serve.log",
            source=name,
            sink=lambda source, line: print(f"{source} | {line}", flush=True),
        )
        gateway.endpoints[name] = target(server.port)
        # Only now: a client that sees the gateway answer finds the endpoint (the port was
        # bound from the start, so its connections wait in the listen queue meanwhile).
        gateway.start()
        started = True
        invoke = f"mlstack invoke --endpoint-url {gateway.url} --endpoint-name {name}"
        record = example_record(base / "model")
        body = (
            "ContentType='text/csv', Body=b'37,82'"
            if record is None
            else "ContentType='application/json', Accept='application/json', "
            f"Body={json.dumps(record).encode()!r}"
        )
        print(
            f"Serving endpoint {name!r} ({model}) at {gateway.url}\n"
            f"  boto3.client('sagemaker-runtime', endpoint_url='{gateway.url}', "
            "region_name='us-east-1', aws_access_key_id='local', aws_secret_access_key='local')"
            f".invoke_endpoint(EndpointName='{name}', {body})\n"
            + (
                f"  {invoke} --file data.csv\n"
                if record is None
                else f"  {invoke} --json {shlex.quote(json.dumps(record))}\n"
                f"  {invoke} --jsonl records.jsonl  (raw records, one JSON object a line)\n"
            )
            + "Ctrl-C stops it.",
            flush=True,
        )
        while True:  # until a signal raises Interrupted
            time.sleep(3600)
    except RuntimeError as err:  # the model server did not start
        print(f"mlstack local serve: {err}", file=sys.stderr)
        return 1
    finally:
        with signals_ignored():
            if started:
                gateway.stop()
            if server is not None:
                server.stop(grace=10)
    return 0


def example_record(model_dir: Path) -> dict[str, Any] | None:
    """A raw record for a model that carries its schema (``schema.json`` beside the booster):
    each feature by name, a categorical one with its first category, a numeric one missing
    (null). None for a model without a schema (it takes numeric rows only)."""
    try:
        schema = json.loads((model_dir / "schema.json").read_text(encoding="utf-8"))
        features = schema["features"]
        return {
            str(f["name"]): (f["categories"][0] if f.get("categories") else None) for f in features
        }
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None

"""``mlstack local run`` and ``mlstack local serve``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from mlstack.local.assembly import REPO, Image
from mlstack.local.sagemaker import extract_model


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
    )
    reporter = reporter_for(sys.stdout, verbose=args.verbose, plain=True if args.plain else None)
    try:
        report = run(options, reporter)
    except (ValueError, OSError, AccountInUse) as err:  # configuration, assembly, definition,
        # a name already used, or the account in use by another run
        print(f"mlstack local run: {err}", file=sys.stderr)
        return 1
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
    from mlstack.local.gateway import Gateway, Target
    from mlstack.local.sagemaker import start_serve

    try:
        if args.from_run:
            model, name = _model_from_run(args.from_run, args.endpoint_name)
        else:
            model, name = args.model, args.endpoint_name or "local"
        if not model.exists():
            raise ValueError(f"{model} does not exist")
    except ValueError as err:
        print(f"mlstack local serve: {err}", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="mlstack-serve-"))
    if model.is_file():
        extract_model(model.read_bytes(), base / "model")
    else:
        (base / "model").symlink_to(model.resolve(), target_is_directory=True)
    image = Image(uri="local", directory=REPO / "containers", dockerfile="inference/Dockerfile")
    try:
        server = start_serve(
            image,
            base,
            log_path=base / "serve.log",
            source=name,
            sink=lambda source, line: print(f"{source} | {line}", flush=True),
        )
    except RuntimeError as err:
        print(f"mlstack local serve: {err}", file=sys.stderr)
        return 1
    gateway = Gateway({name: Target(server.port)}, port=args.port)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gateway.start()
    print(
        f"Serving endpoint {name!r} ({model}) at {gateway.url}\n"
        f"  boto3.client('sagemaker-runtime', endpoint_url='{gateway.url}')"
        f".invoke_endpoint(EndpointName='{name}', ContentType='text/csv', Body=b'37,82')\n"
        f"  mlstack invoke --endpoint-url {gateway.url} --endpoint-name {name} --file data.csv",
        flush=True,
    )
    stop.wait()
    gateway.stop()
    server.stop()
    return 0

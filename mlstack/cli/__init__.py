"""The ``mlstack`` command.

    mlstack local run    [--env dev] [--rows N] [--seed S] [-H k=v ...] [--workdir DIR] [--clean]
    mlstack local serve  [--model PATH | --from-run DIR] [--port P] [--endpoint-name NAME]
    mlstack local monitor [--env dev] [--ground-truth FILE] [--window-hours N]
    mlstack run          --env dev [--input JSON]
    mlstack invoke       --env dev (--file data.csv | --json RECORD | --jsonl FILE) [--accept T]
    mlstack models       --env dev                  (versions, status, evaluation metrics)
    mlstack approve      --env dev --version N [--reason TEXT]
    mlstack reject       --env dev --version N --reason TEXT
    mlstack local models|approve|reject ...      (the same, in the local account)

Exit status: 0 on success; 1 when the workflow or a call failed (the reason is printed);
2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlstack.cli import local_monitor
from mlstack.portable_rules import PROBLEM_TYPE


def _hyperparameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected name=value")
    return name, value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlstack", description="Run the mlstack workflow locally, or drive a deployed one."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    local = commands.add_parser("local", help="run the workflow or serve a model on this machine")
    local_commands = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    _add_local_run(local_commands)
    _add_local_serve(local_commands)
    local_monitor.add_parser(local_commands)
    _add_registry(local_commands, local=True)
    _add_run(commands)
    _add_invoke(commands)
    _add_registry(commands, local=False)
    _add_report(commands)
    return parser


def _add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="write a deployed execution's run report to S3 and open it",
        description="Read the execution's history, output, training metrics and evaluation "
        "parts, write report.html beside the evaluation report in S3 and open it "
        "(docs/evaluation.md, 'The run report').",
    )
    report.add_argument("--env", default="dev")
    report.add_argument("--execution", required=True, help="the execution's name")
    report.add_argument(
        "--region", help="AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION, the profile's)"
    )
    report.add_argument("--no-open", action="store_true", help="print the report's URIs only")


def _add_registry(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], *, local: bool
) -> None:
    where = "the local account's" if local else "the deployed"
    listed = commands.add_parser(
        "models", help=f"list {where} model versions: status and evaluation metrics"
    )
    approve = commands.add_parser(
        "approve", help=f"approve a version of {where} model registry (this releases it)"
    )
    reject = commands.add_parser("reject", help=f"reject a version of {where} model registry")
    for parser in (listed, approve, reject):
        parser.add_argument("--env", default="dev", help="environment (default: dev)")
        if local:
            parser.add_argument(
                "--workdir",
                type=Path,
                default=Path(".work/local"),
                help="where the local accounts are (default: .work/local)",
            )
        else:
            parser.add_argument(
                "--region",
                help="AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION, the profile's)",
            )
    for parser in (approve, reject):
        parser.add_argument("--version", type=int, required=True, help="the version number")
    approve.add_argument("--reason", help="ApprovalDescription (default: a note of the command)")
    if local:  # the approval runs the release locally, from the environment's cloud assembly
        approve.add_argument(
            "--cdk-out", type=Path, help="cloud assembly to reuse when fresh (cdk.out)"
        )
    reject.add_argument("--reason", required=True, help="why (the ApprovalDescription)")


def _add_local_run(local_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = local_commands.add_parser(
        "run",
        help="execute the environment's synthesized state machine here (no AWS, no Docker)",
        description="Execute the environment's synthesized state machine on this machine: the "
        "seeding Lambda's handler against an embedded S3 server, the train and serve programs "
        "for SageMaker. Defaults come from the definition; options are execution input.",
    )
    run.add_argument("--env", default="dev", help="environment (default: dev)")
    run.add_argument("--rows", type=int, help="dataset rows (input key 'rows')")
    run.add_argument("--seed", type=int, help="dataset seed (input key 'seed')")
    run.add_argument(
        "--hyperparameter",
        "-H",
        action="append",
        type=_hyperparameter,
        default=[],
        metavar="NAME=VALUE",
        help="a hyperparameter override",
    )
    run.add_argument("--input", type=_json_object, default={}, help="more execution input (JSON)")
    run.add_argument(
        "--data",
        metavar="PATH_OR_S3_URI",
        help="train on this table instead of the generated dataset: a CSV or Parquet file or a "
        "folder of them (copied into the local account under imports/), or an s3:// URI "
        "(input key 'dataset_source'; docs/your-data.md)",
    )
    run.add_argument("--label", help="the label column of --data (required with --data)")
    run.add_argument(
        "--problem-type",
        choices=PROBLEM_TYPE.values,
        help="the problem of --data (default: auto, inferred from the label)",
    )
    run.add_argument(
        "--workdir",
        type=Path,
        default=Path(".work/local"),
        help="where each run's directory and each environment's local account "
        "(accounts/<env>/) go (default: .work/local)",
    )
    run.add_argument(
        "--name",
        help="execution name, unique in the environment's local account "
        "(default: local-<time>-<random>)",
    )
    run.add_argument(
        "--clean",
        action="store_true",
        help="start from an empty local account: forget the S3 objects, models, endpoints and "
        "runs that earlier runs of this environment left in <workdir>/accounts/<env>/",
    )
    run.add_argument("--cdk-out", type=Path, help="cloud assembly to reuse when fresh (cdk.out)")
    run.add_argument(
        "--environments-dir", type=Path, help="synthesize from these environment files instead"
    )
    run.add_argument(
        "--time-scale",
        type=float,
        default=0.01,
        help="Wait states and retry intervals last this fraction of their "
        "defined time (default 0.01; 1 = real time)",
    )
    run.add_argument(
        "--interrupt-training-after",
        type=float,
        metavar="SECONDS",
        help="simulate a spot interruption: SIGTERM a managed-spot training job this many "
        "seconds in; new train processes resume from its checkpoints",
    )
    run.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    run.add_argument("--verbose", "-v", action="store_true", help="show every log line")


def _add_local_serve(local_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = local_commands.add_parser(
        "serve",
        help="serve a model behind a SageMaker Runtime InvokeEndpoint gateway",
        description="Serve a model with the inference image's serve program behind a gateway "
        "that answers POST /endpoints/NAME/invocations like SageMaker Runtime.",
    )
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="a model.tar.gz or a model directory")
    source.add_argument(
        "--from-run",
        type=Path,
        help="a local run's directory (its endpoint as that run left it) or a local account's "
        "(<workdir>/accounts/<env>: its endpoint now)",
    )
    serve.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    serve.add_argument("--endpoint-name", help="endpoint name (default: the run's, else 'local')")


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deployed_run = commands.add_parser(
        "run", help="start and follow an execution of the deployed state machine"
    )
    deployed_run.add_argument("--env", default="dev")
    deployed_run.add_argument("--input", type=_json_object, default={}, help="execution input")
    deployed_run.add_argument("--name", help="execution name")
    deployed_run.add_argument(
        "--region", help="AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION, the profile's)"
    )
    deployed_run.add_argument("--poll", type=float, default=5.0, help="seconds between polls")
    deployed_run.add_argument("--plain", action="store_true")


def _add_invoke(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    invoke = commands.add_parser(
        "invoke",
        help="call the deployed endpoint",
        description="Call an endpoint (the environment's, or --endpoint-name at --endpoint-url) "
        "with a request body, or with raw records by field name for a model that carries its "
        "schema: --json and --jsonl print each record's predicted label and probability.",
    )
    invoke.add_argument("--env", default="dev")
    body = invoke.add_mutually_exclusive_group(required=True)
    body.add_argument("--file", type=Path, help="request body ('-': stdin), sent as it is")
    body.add_argument(
        "--json",
        metavar="RECORD",
        help="""one raw record, '{"island": "Biscoe", "bill_length_mm": 45.1}', or """
        """'{"instances": [...]}' (application/json)""",
    )
    body.add_argument(
        "--jsonl",
        type=Path,
        metavar="FILE",
        help="raw records, one JSON object a line ('-': stdin; application/jsonlines)",
    )
    invoke.add_argument("--content-type", default=None, help="with --file (default text/csv)")
    invoke.add_argument(
        "--accept",
        default=None,
        help="answer type (default: the model's; application/json with --json and --jsonl, "
        "whose answers are printed one line a record)",
    )
    invoke.add_argument(
        "--output",
        metavar="KEYS",
        help="the answer keys, e.g. predicted_label,probabilities (sent as the custom "
        "attribute output=KEYS; docs/serving.md)",
    )
    invoke.add_argument("--endpoint-name", help="skip the stack lookup")
    invoke.add_argument("--endpoint-url", help="SageMaker Runtime URL (e.g. mlstack local serve)")
    invoke.add_argument(
        "--region",
        help="AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION, the profile's; a local "
        "--endpoint-url needs none)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = _dispatch(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`mlstack local models | head`). As the signal module's "Note on
        # SIGPIPE" shows: stdout to devnull, so that the flush at exit does not fail again; the
        # status of a program SIGPIPE ended (128 + 13), as `yes | head` leaves it.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return code


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "local" and args.local_command == "run":
        from mlstack.cli.local import local_run

        return local_run(args)
    if args.command == "local" and args.local_command == "monitor":
        return local_monitor.local_monitor(args)
    if args.command == "local" and args.local_command == "serve":
        from mlstack.cli.local import local_serve

        return local_serve(args)
    if args.command == "local":
        from mlstack.cli import local_registry

        return int(getattr(local_registry, args.local_command)(args))
    from mlstack.cli import deployed

    if args.command == "run":
        return deployed.run_execution(args)
    if args.command == "report":
        from mlstack.cli import report

        return report.report(args)
    if args.command in ("models", "approve", "reject"):
        return int(getattr(deployed, args.command)(args))
    return deployed.invoke(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

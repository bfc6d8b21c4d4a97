"""Task resources, run locally: each ARN of a Task state is dispatched to a local handler.

=========================================================  ========================================
resource                                                   local handler
=========================================================  ========================================
``arn:aws:states:::lambda:invoke`` (and a function ARN)    the function's handler from its code
                                                           asset, in this process, with its
                                                           environment; S3 is the embedded server
``…:sagemaker:createTrainingJob[.sync]``                   the training image's ``train``
``…:sagemaker:createModel``                                the model registry
``…:sagemaker:createTransformJob[.sync]``                  the inference image's ``serve``
``…:sagemaker:createEndpointConfig``, ``createEndpoint``,  the endpoint registry; an endpoint is
``updateEndpoint``, ``deleteEndpoint``                     ``serve`` on a loopback port
``…:aws-sdk:sagemaker:<action>``                           the same calls, plus ``describe*``
``…:sns:publish``                                          appended to ``sns.jsonl`` and shown
=========================================================  ========================================

Errors are those Step Functions raises: a SageMaker API refusal is ``SageMaker.<Code>``
(``aws-sdk``) or ``SageMaker.AmazonSageMakerException`` (optimized integrations), a job that ran
and failed ``States.TaskFailed`` with the job's description (FailureReason) as cause, a Lambda
function's exception its ``errorType`` with the Lambda error payload as cause. A resource with no
local handler fails with ``Local.UnsupportedResource`` naming the state and the resource.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from mlstack.local.asl import StatesError, TaskCall
from mlstack.local.assembly import LambdaFunction, LocalAssembly
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import JobFailed, LocalSageMaker, LogSink, SageMakerError

_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore the old ones."""
    with _ENV_LOCK:
        old = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class _LineWriter(io.TextIOBase):
    """A text stream that hands each complete line to ``sink`` and appends it to a file."""

    def __init__(self, source: str, sink: LogSink | None, path: Path) -> None:
        self.source = source
        self.sink = sink
        self.path = path
        self.buffer_ = ""

    def write(self, text: str) -> int:
        self.buffer_ += text
        while "\n" in self.buffer_:
            line, self.buffer_ = self.buffer_.split("\n", 1)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
            if self.sink:
                self.sink(self.source, line)
        return len(text)


class _LambdaContext:
    def __init__(self, fn: LambdaFunction, request_id: str) -> None:
        self.function_name = fn.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = fn.arn
        self.memory_limit_in_mb = fn.memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{fn.name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + fn.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalLambda:
    """Runs a Python function's handler from its code asset, in this process."""

    def __init__(self, root: Path, s3: EmbeddedS3, region: str, log: LogSink | None) -> None:
        self.root = root
        self.s3 = s3
        self.region = region
        self.log = log
        self._modules: dict[str, tuple[ModuleType, Callable[..., Any], _LineWriter]] = {}

    def _load(self, fn: LambdaFunction) -> tuple[Callable[..., Any], _LineWriter]:
        if fn.arn in self._modules:
            _, handler, out = self._modules[fn.arn]
            return handler, out
        if not fn.runtime.startswith("python"):
            raise StatesError(
                "Local.UnsupportedResource",
                f"function {fn.name}: runtime {fn.runtime} does not run locally",
            )
        module_name, _, attr = fn.handler.rpartition(".")
        path = fn.code_dir / (module_name.replace(".", "/") + ".py")
        if not path.is_file():
            raise StatesError("Lambda.ResourceNotFoundException", f"no handler module {path}")
        out = _LineWriter(fn.name, self.log, self.root / "lambda" / f"{fn.logical_id}.log")
        spec = importlib.util.spec_from_file_location(f"mlstack_local_lambda_{fn.logical_id}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and pickling look modules up there
        sys.path.insert(0, str(fn.code_dir))
        try:
            with contextlib.redirect_stdout(out):  # a logger bound to sys.stdout writes to `out`
                spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(fn.code_dir))
        handler = getattr(module, attr)
        self._modules[fn.arn] = (module, handler, out)
        return handler, out

    def invoke(self, fn: LambdaFunction, payload: Any) -> Any:
        """Call the handler; return its result, or raise StatesError as Step Functions would."""
        handler, out = self._load(fn)
        request_id = str(uuid.uuid4())
        event = json.loads(json.dumps(payload))  # what crosses the wire is JSON
        env = {
            **fn.environment,
            **self.s3.environment(),
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        }
        with patched_environ(env), contextlib.redirect_stdout(out):
            try:
                result = handler(event, _LambdaContext(fn, request_id))
            except Exception as err:
                error = {
                    "errorMessage": str(err),
                    "errorType": type(err).__name__,
                    "requestId": request_id,
                    "stackTrace": traceback.format_tb(err.__traceback__),
                }
                raise StatesError(type(err).__name__, json.dumps(error)) from err
        return json.loads(json.dumps(result))


def _http_metadata() -> dict[str, Any]:
    return {
        "SdkHttpMetadata": {"HttpStatusCode": 200},
        "SdkResponseMetadata": {"RequestId": str(uuid.uuid4())},
    }


_SAGEMAKER_ACTIONS = {
    "createTrainingJob": "create_training_job",
    "describeTrainingJob": "describe_training_job",
    "createModel": "create_model",
    "describeModel": "describe_model",
    "createTransformJob": "create_transform_job",
    "describeTransformJob": "describe_transform_job",
    "createEndpointConfig": "create_endpoint_config",
    "describeEndpointConfig": "describe_endpoint_config",
    "createEndpoint": "create_endpoint",
    "updateEndpoint": "update_endpoint",
    "describeEndpoint": "describe_endpoint",
    "deleteEndpoint": "delete_endpoint",
}


class TaskDispatcher:
    """``TaskHandler`` for the interpreter: routes each resource ARN to a local handler."""

    def __init__(
        self,
        assembly: LocalAssembly,
        s3: EmbeddedS3,
        sagemaker: LocalSageMaker,
        root: Path,
        *,
        log: LogSink | None = None,
    ) -> None:
        self.assembly = assembly
        self.s3 = s3
        self.sagemaker = sagemaker
        self.root = root
        self.log = log
        self.lambdas = LocalLambda(root, s3, assembly.region, log)
        self.messages: list[dict[str, Any]] = []

    def __call__(self, call: TaskCall) -> Any:
        resource = call.resource
        if resource.startswith("arn:aws:lambda:"):
            return self._lambda(call, {"FunctionName": resource, "Payload": call.parameters})[
                "Payload"
            ]
        parts = resource.split(":")
        if len(parts) < 6 or parts[2] != "states" or parts[3] or parts[4]:
            return self._unsupported(call)
        service, _, action = ":".join(parts[5:]).partition(":")
        if service == "lambda" and action == "invoke":
            return self._lambda(call, call.parameters)
        if service == "sns" and action == "publish":
            return self._sns(call)
        if service == "sagemaker":
            return self._sagemaker(call, action, sdk=False)
        if service == "aws-sdk" and action.startswith("sagemaker:"):
            return self._sagemaker(call, action.split(":", 1)[1], sdk=True)
        return self._unsupported(call)

    def _unsupported(self, call: TaskCall) -> Any:
        raise StatesError(
            "Local.UnsupportedResource",
            f"state {call.state_name!r}: resource {call.resource} has no local handler "
            "(local mode runs lambda:invoke, sagemaker training/model/transform/endpoint calls, "
            "aws-sdk:sagemaker describe calls and sns:publish)",
        )

    def _lambda(self, call: TaskCall, params: Mapping[str, Any]) -> dict[str, Any]:
        if params.get("InvocationType", "RequestResponse") != "RequestResponse":
            raise StatesError(
                "Local.UnsupportedResource",
                f"state {call.state_name!r}: only RequestResponse invocations run locally",
            )
        try:
            fn = self.assembly.lambda_function(str(params.get("FunctionName", "")))
        except ValueError as err:
            raise StatesError("Lambda.ResourceNotFoundException", str(err)) from None
        payload = self.lambdas.invoke(fn, params.get("Payload", {}))
        return {
            "ExecutedVersion": "$LATEST",
            "Payload": payload,
            "StatusCode": 200,
            **_http_metadata(),
        }

    def _sns(self, call: TaskCall) -> dict[str, Any]:
        params = call.parameters
        topic = params.get("TopicArn")
        if topic not in self.assembly.topics:
            raise StatesError("SNS.NotFoundException", f"Topic does not exist: {topic}")
        message = {
            "TopicArn": topic,
            "Subject": params.get("Subject"),
            "Message": params.get("Message"),
            "MessageId": str(uuid.uuid4()),
        }
        self.messages.append(message)
        path = self.root / "sns.jsonl"
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(message) + "\n")
        if self.log:
            self.log("sns", f"{message['Subject']}: {message['Message']}")
        return {"MessageId": message["MessageId"], **_http_metadata()}

    def _sagemaker(self, call: TaskCall, action: str, *, sdk: bool) -> Any:
        sync = action.endswith(".sync") or action.endswith(".sync:2")
        base = action.split(".", 1)[0]
        if base == "createHyperParameterTuningJob":
            raise StatesError(
                "Local.UnsupportedResource",
                f"state {call.state_name!r}: local mode does not run hyperparameter tuning jobs "
                "(run the training path locally, tune in AWS)",
            )
        method = _SAGEMAKER_ACTIONS.get(base)
        if method is None or action.endswith(".waitForTaskToken"):
            return self._unsupported(call)
        params = call.parameters if isinstance(call.parameters, dict) else {}
        try:
            result = getattr(self.sagemaker, method)(params)
        except SageMakerError as err:
            error = f"SageMaker.{err.code}" if sdk else "SageMaker.AmazonSageMakerException"
            cause = (
                f"{err.message} (Service: AmazonSageMaker; Status Code: 400; "
                f"Error Code: {err.code})"
            )
            raise StatesError(error, cause) from None
        except JobFailed as failed:
            raise StatesError("States.TaskFailed", json.dumps(failed.description)) from None
        if sync or base in ("describeTrainingJob", "describeTransformJob") or sdk:
            return result
        # An optimized create without .sync answers what the API answers: the ARN.
        arn_key = next((k for k in result if k.endswith("Arn")), None)
        return {arn_key: result[arn_key]} if arn_key else result

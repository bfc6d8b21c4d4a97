"""Task resources, run locally: each ARN of a Task state is dispatched to a local handler.

=========================================================  ========================================
resource                                                   local handler
=========================================================  ========================================
``arn:aws:states:::lambda:invoke`` (and a function ARN)    the function's handler from its code
                                                           asset, in a child process, with its
                                                           environment; S3 is the embedded server
``…:sagemaker:createTrainingJob[.sync]``                   the training image's ``train``
``…:sagemaker:createHyperParameterTuningJob[.sync]``       ``train`` processes in parallel
                                                           (``tuning_job.py``)
``…:sagemaker:createModel``                                the model registry
``…:sagemaker:createTransformJob[.sync]``                  the inference image's ``serve``
``…:sagemaker:createProcessingJob[.sync]``                 the entrypoint program of the image
                                                           (``processing.py``), e.g. ``evaluate``
``…:sagemaker:createEndpointConfig``, ``createEndpoint``,  the endpoint registry; an endpoint is
``updateEndpoint``, ``deleteEndpoint``                     ``serve`` on a loopback port
``…:aws-sdk:sagemaker:<action>``                           the same calls, plus ``describe*`` and
                                                           the model registry's (``createModel
                                                           Package``, ``updateModelPackage`` …)
``…:sns:publish``                                          appended to ``sns.jsonl`` and shown
``…:aws-sdk:s3:copyObject``                                the embedded S3's CopyObject, with the
                                                           request's encryption headers
=========================================================  ========================================

Errors are those Step Functions raises: a SageMaker API refusal is ``SageMaker.<Code>``
(``aws-sdk``) or ``SageMaker.AmazonSageMakerException`` (optimized integrations), a job that ran
and failed ``States.TaskFailed`` with the job's description (FailureReason) as cause, a Lambda
function's exception its ``errorType`` with the Lambda error payload as cause. A resource with no
local handler fails with ``Local.UnsupportedResource`` naming the state and the resource.

Each request is first checked as the service checks it, against botocore's model of the service
(:mod:`mlstack.local.validation`: required members, types, enums, ranges, lengths, patterns): a
refusal fails the task with the service's error (``SageMaker.ValidationException``,
``SNS.ValidationErrorException``, ...; the cause is the service's message), so Retry and Catch
see what they would see in AWS. Each answer is checked against the operation's output shape; one
the model does not allow is local mode's bug and fails the task with ``Local.InvalidResponse``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlstack.local.asl import StatesError, TaskCall
from mlstack.local.assembly import LambdaFunction, LocalAssembly
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import JobFailed, LocalSageMaker, LogSink, SageMakerError, pump_lines
from mlstack.local.validation import InvalidResponse, ServiceRefusal, rules

RUNTIME = Path(__file__).resolve().parent / "lambda_runtime.py"


class LocalLambda:
    """Runs a Python function's handler from its code asset in a child process per invocation
    (``lambda_runtime.py``): the function's environment, module state and logging stay its own,
    as in a Lambda sandbox. S3 calls reach the embedded server through ``AWS_ENDPOINT_URL_S3``.
    """

    def __init__(self, root: Path, s3: EmbeddedS3, region: str, log: LogSink | None) -> None:
        self.root = root
        self.s3 = s3
        self.region = region
        self.log = log

    def invoke(self, fn: LambdaFunction, payload: Any) -> Any:
        """Call the handler; return its result, or raise StatesError as Step Functions would."""
        if not fn.runtime.startswith("python"):
            raise StatesError(
                "Local.UnsupportedResource",
                f"function {fn.name}: runtime {fn.runtime} does not run locally",
            )
        module_name = fn.handler.rpartition(".")[0]
        if not (fn.code_dir / (module_name.replace(".", "/") + ".py")).is_file():
            raise StatesError(
                "Lambda.ResourceNotFoundException", f"no module {module_name} in {fn.code_dir}"
            )
        request_id = str(uuid.uuid4())
        log_path = self.root / "lambda" / f"{fn.logical_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        result_file = self.root / "lambda" / f"{request_id}.json"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **self.s3.environment(),
            **fn.environment,
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "MLSTACK_LAMBDA_ARN": fn.arn,
            "MLSTACK_LAMBDA_REQUEST_ID": request_id,
            "MLSTACK_LAMBDA_TIMEOUT": str(fn.timeout_seconds),
            "PYTHONUNBUFFERED": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, str(RUNTIME), fn.handler, str(fn.code_dir), str(result_file)],
            env=env,
            cwd=fn.code_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        pump = threading.Thread(
            target=pump_lines, args=(proc.stdout, log_path, fn.name, self.log), daemon=True
        )
        pump.start()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(payload).encode())
        proc.stdin.close()
        try:
            proc.wait(timeout=fn.timeout_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pump.join(5)
            raise StatesError(
                "Sandbox.Timedout",
                json.dumps(
                    {
                        "errorMessage": f"Task timed out after {fn.timeout_seconds} seconds",
                        "errorType": "Sandbox.Timedout",
                        "requestId": request_id,
                    }
                ),
            ) from None
        pump.join(5)
        if not result_file.is_file():
            raise StatesError(
                "Lambda.Unknown", f"the function exited with status {proc.returncode} and no result"
            )
        outcome = json.loads(result_file.read_text(encoding="utf-8"))
        result_file.unlink()
        if "errorType" in outcome:
            raise StatesError(
                outcome["errorType"], json.dumps({**outcome, "requestId": request_id})
            )
        return outcome["result"]


def _http_metadata() -> dict[str, Any]:
    return {
        "SdkHttpMetadata": {"HttpStatusCode": 200},
        "SdkResponseMetadata": {"RequestId": str(uuid.uuid4())},
    }


_SAGEMAKER_ACTIONS = {
    "createTrainingJob": "create_training_job",
    "describeTrainingJob": "describe_training_job",
    "createHyperParameterTuningJob": "create_hyper_parameter_tuning_job",
    "describeHyperParameterTuningJob": "describe_hyper_parameter_tuning_job",
    "createModel": "create_model",
    "describeModel": "describe_model",
    "createTransformJob": "create_transform_job",
    "describeTransformJob": "describe_transform_job",
    "createProcessingJob": "create_processing_job",
    "describeProcessingJob": "describe_processing_job",
    "createEndpointConfig": "create_endpoint_config",
    "describeEndpointConfig": "describe_endpoint_config",
    "createEndpoint": "create_endpoint",
    "updateEndpoint": "update_endpoint",
    "describeEndpoint": "describe_endpoint",
    "deleteEndpoint": "delete_endpoint",
    "createModelPackageGroup": "create_model_package_group",
    "describeModelPackageGroup": "describe_model_package_group",
    "createModelPackage": "create_model_package",
    "describeModelPackage": "describe_model_package",
    "listModelPackages": "list_model_packages",
    "updateModelPackage": "update_model_package",
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
        if service == "aws-sdk" and action == "s3:copyObject":
            return self._s3_copy(call)
        return self._unsupported(call)

    def _unsupported(self, call: TaskCall) -> Any:
        raise StatesError(
            "Local.UnsupportedResource",
            f"state {call.state_name!r}: resource {call.resource} has no local handler "
            "(local mode runs lambda:invoke, sagemaker training/model/transform/processing/"
            "endpoint calls, "
            "aws-sdk:sagemaker describe calls, aws-sdk:s3:copyObject and sns:publish)",
        )

    def _lambda(self, call: TaskCall, params: Mapping[str, Any]) -> dict[str, Any]:
        if params.get("InvocationType", "RequestResponse") != "RequestResponse":
            raise StatesError(
                "Local.UnsupportedResource",
                f"state {call.state_name!r}: only RequestResponse invocations run locally",
            )
        checks = rules("lambda")
        # The API's Payload is the JSON text of what the state passes.
        request = {**params, "Payload": json.dumps(params.get("Payload", {}))}
        try:
            checks.check_request("Invoke", request)
            fn = self.assembly.lambda_function(str(params.get("FunctionName", "")))
        except ServiceRefusal as err:
            raise _refused(err, "Lambda") from None
        except ValueError as err:
            raise StatesError("Lambda.ResourceNotFoundException", str(err)) from None
        payload = self.lambdas.invoke(fn, params.get("Payload", {}))
        answer = {"ExecutedVersion": "$LATEST", "StatusCode": 200}
        _check_response(checks, "Invoke", {**answer, "Payload": json.dumps(payload)})
        return {**answer, "Payload": payload, **_http_metadata()}

    def _sns(self, call: TaskCall) -> dict[str, Any]:
        params = call.parameters
        checks = rules("sns")
        try:
            checks.check_request("Publish", params)
        except ServiceRefusal as err:
            raise _refused(err, "SNS") from None
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
        _check_response(checks, "Publish", {"MessageId": message["MessageId"]})
        return {"MessageId": message["MessageId"], **_http_metadata()}

    def _s3_copy(self, call: TaskCall) -> dict[str, Any]:
        """CopyObject in the embedded S3 (Release model artifact), the request checked against
        S3's model and sent as it is, encryption headers included; S3's refusal (a missing
        source: ``NoSuchKey``) fails the task as ``S3.<Code>Exception``."""
        from botocore.exceptions import ClientError

        params = call.parameters if isinstance(call.parameters, dict) else {}
        checks = rules("s3")
        try:
            checks.check_request("CopyObject", params)
            answer = self.s3.client.copy_object(**params)
        except ServiceRefusal as err:
            raise _refused(err, "S3") from None
        except ClientError as err:
            error = err.response.get("Error", {})
            refusal = ServiceRefusal(
                "s3", "CopyObject", str(error.get("Code")), str(error.get("Message"))
            )
            raise _refused(refusal, "S3") from None
        answer.pop("ResponseMetadata", None)
        _check_response(checks, "CopyObject", answer)
        # Step Functions answers with the response's JSON: timestamps as text.
        result: dict[str, Any] = json.loads(json.dumps(answer, default=str))
        return result

    def _sagemaker(self, call: TaskCall, action: str, *, sdk: bool) -> Any:
        sync = action.endswith(".sync") or action.endswith(".sync:2")
        base = action.split(".", 1)[0]
        method = _SAGEMAKER_ACTIONS.get(base)
        if method is None or action.endswith(".waitForTaskToken"):
            return self._unsupported(call)
        params = call.parameters if isinstance(call.parameters, dict) else {}
        checks = rules("sagemaker")
        try:
            checks.check_request(base, params)
            result = getattr(self.sagemaker, method)(params)
        except (SageMakerError, ServiceRefusal) as err:
            # aws-sdk: ServiceName.ErrorName ("AWS SDK integrations", Step Functions guide).
            error = f"SageMaker.{err.code}" if sdk else "SageMaker.AmazonSageMakerException"
            cause = (
                f"{err.message} (Service: AmazonSageMaker; Status Code: 400; "
                f"Error Code: {err.code})"
            )
            raise StatesError(error, cause) from None
        except JobFailed as failed:
            raise StatesError("States.TaskFailed", json.dumps(failed.description)) from None
        answer = result
        if not (sync or base.startswith("describe") or sdk):
            # An optimized create without .sync answers what the API answers: the ARN.
            arn_key = next((k for k in result if k.endswith("Arn")), None)
            answer = {arn_key: result[arn_key]} if arn_key else result
        if sync:
            # The local job description keeps the request's Tags, which DescribeTrainingJob's
            # shape lacks; whether a .sync output carries them is not verified: left unchecked.
            described = {k: v for k, v in answer.items() if k != "Tags"}
            _check_response(checks, _describe_of(base), described)
        else:
            _check_response(checks, base, answer)
        return answer


def _describe_of(action: str) -> str:
    """The Describe call whose response a ``.sync`` create answers (createTrainingJob ->
    describeTrainingJob)."""
    return "describe" + action.removeprefix("create")


def _check_response(checks: Any, operation: str, result: Any) -> None:
    """A local response the service's model does not allow is local mode's bug: the task fails
    with ``Local.InvalidResponse`` naming what is wrong, rather than pass it on."""
    try:
        checks.check_response(operation, result)
    except InvalidResponse as err:
        raise StatesError("Local.InvalidResponse", str(err)) from None


def _refused(err: ServiceRefusal, service: str) -> StatesError:
    """A refusal as Step Functions names it: ``<Service>.<Error>``, the error with its
    ``Exception`` suffix ("AWS SDK integrations": "include the Exception suffix ... even if
    the suffix is not yet part of the error name the service provides")."""
    name = err.code if err.code.endswith("Exception") else f"{err.code}Exception"
    cause = f"{err.message} (Service: {service}; Status Code: 400; Error Code: {err.code})"
    return StatesError(f"{service}.{name}", cause)

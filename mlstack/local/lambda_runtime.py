"""A minimal Lambda runtime for local mode, run as a script in a child process per invocation:
``python lambda_runtime.py HANDLER CODE_DIR RESULT_FILE`` reads the event (JSON) on stdin, imports
``HANDLER`` (``module.function``) from ``CODE_DIR``, calls it with a context object, and writes
``{"result": ...}`` or Lambda's error shape (``errorType``, ``errorMessage``, ``stackTrace``) to
``RESULT_FILE``. The function's own output (its logs) goes to stdout, as in Lambda.

Standard library only: the function sees its code directory and the interpreter's packages.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class Context:
    def __init__(self) -> None:
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = env.get("MLSTACK_LAMBDA_ARN", "")
        self.memory_limit_in_mb = int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = env.get("MLSTACK_LAMBDA_REQUEST_ID", "")
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + float(env.get("MLSTACK_LAMBDA_TIMEOUT", "3"))

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(argv: list[str]) -> int:
    handler_name, code_dir, result_file = argv
    sys.path.insert(0, code_dir)
    module_name, _, attr = handler_name.rpartition(".")
    event = json.load(sys.stdin)
    outcome: dict[str, Any]
    try:
        handler = getattr(importlib.import_module(module_name), attr)
        outcome = {"result": handler(event, Context())}
        code = 0
    except Exception as err:
        outcome = {
            "errorType": type(err).__name__,
            "errorMessage": str(err),
            "stackTrace": traceback.format_tb(err.__traceback__),
        }
        code = 1
    sys.stdout.flush()
    with open(result_file, "w", encoding="utf-8") as f:
        json.dump(outcome, f)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

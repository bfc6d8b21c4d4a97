"""The inference server of the mlstack inference image (``serve``).

SageMaker starts the image as ``serve``: a pre-fork HTTP server (gunicorn, one ``gthread`` worker
process per CPU by default) answering ``GET /ping``, ``POST /invocations`` and
``GET /execution-parameters`` on port 8080 (or ``SAGEMAKER_BIND_TO_PORT``), with the model loaded
from ``/opt/ml/model`` (``$SAGEMAKER_BASE_DIR/model``).

Modules: :mod:`.config` (the environment knobs), :mod:`.codecs` (request parsing and response
formatting, no HTTP), :mod:`.app` (the WSGI application), :mod:`.server` (gunicorn wiring),
:mod:`.memory` (glibc's allocator set up for the workers).
"""

#!/usr/bin/env python3
"""CDK entry point: one stage per file in environments/ (``cdk deploy 'dev/*'``)."""

import sys
from pathlib import Path

from mlstack.app import build_app, validation_failures
from mlstack.config import ConfigError

try:
    app = build_app()
except ConfigError as err:
    sys.exit(f"Configuration error: {err}")
assembly = app.synth()
failures = validation_failures(Path(assembly.directory))
if failures:
    sys.exit(
        "Policy findings not fixed or acknowledged (docs/security.md):\n  " + "\n  ".join(failures)
    )

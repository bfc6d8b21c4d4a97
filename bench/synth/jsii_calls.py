"""jsii round trips of a whole-app build and synth, counted by the Python code that asked.

    .venv/bin/python bench/synth/jsii_calls.py [--top 25]

Builds the app (``build_app``, ``cdk.json``'s context) and synthesizes it in this process, with
each method of jsii's ``Kernel`` that sends a request to the Node process (create, get, set,
invoke and their static forms) wrapped to count calls. Each call is charged to the innermost
frame in ``mlstack/`` (else the innermost outside jsii's and aws-cdk-lib's packages). Prints the
totals by phase and the callers with the most round trips.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
_METHODS = ["create", "get", "set", "invoke", "sget", "sset", "sinvoke", "complete"]
_LIBRARY = (f"{os.sep}jsii{os.sep}", f"{os.sep}aws_cdk{os.sep}", f"{os.sep}constructs{os.sep}")


def _caller() -> str:
    frame: Any = sys._getframe(2)
    outside = None
    while frame is not None:
        name = frame.f_code.co_filename
        if f"{os.sep}mlstack{os.sep}" in name and "site-packages" not in name:
            return f"{Path(name).relative_to(REPO)}:{frame.f_lineno} {frame.f_code.co_name}"
        if outside is None and not any(part in name for part in _LIBRARY):
            outside = f"{name}:{frame.f_lineno} {frame.f_code.co_name}"
        frame = frame.f_back
    return outside or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import jsii
    from jsii._kernel import Kernel

    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    phase = ["import"]

    def counted(method: str, real: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            counts[(phase[0], method, _caller())] += 1
            return real(*a, **kw)

        return wrapper

    for method in _METHODS:
        setattr(Kernel, method, counted(method, getattr(Kernel, method)))
        if hasattr(jsii, method):  # jsii's aliases of the kernel's bound methods (jsii.create)
            setattr(jsii, method, getattr(jsii.kernel, method))
    import aws_cdk

    import mlstack.app

    context = json.loads((REPO / "cdk.json").read_text(encoding="utf-8"))["context"]
    with tempfile.TemporaryDirectory() as out:
        phase[0] = "build"
        app = mlstack.app.build_app(context=context, outdir=out)
        phase[0] = "synth"
        app.synth()
    assert isinstance(app, aws_cdk.App)
    by_phase: collections.Counter[str] = collections.Counter()
    by_caller: collections.Counter[str] = collections.Counter()
    for (name, _, caller), n in counts.items():
        by_phase[name] += n
        by_caller[f"{name}: {caller}"] += n
    print("round trips by phase:", dict(by_phase), "total", sum(by_phase.values()))
    for caller, n in by_caller.most_common(args.top):
        print(f"{n:6d}  {caller}")


if __name__ == "__main__":
    main()

"""Load a Lambda function's ``handler.py`` by its path, as Lambda runs it.

``lambda`` is a keyword, so a function's folder is no package, and every function has a
``handler.py``: each is loaded once under a name of its own (``validate_input_handler``,
``seed_handler``). Lambda puts the function's folder first on ``sys.path``, so its
``import portable_rules`` finds the copy beside it; loading two handlers into one process would
otherwise bind the second to the first's copy (whichever a test process happened to load first).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
SHARED = "portable_rules"  # the generated module each function carries beside its handler


def load_handler(name: str, function: str) -> ModuleType:
    """``lambda/<function>/handler.py`` as module ``name``, with the modules beside it its own."""
    if name in sys.modules:
        return sys.modules[name]
    directory = str(REPO / "lambda" / function)
    spec = importlib.util.spec_from_file_location(name, Path(directory) / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    other = sys.modules.pop(SHARED, None)
    sys.path.insert(0, directory)
    try:
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(directory)
        sys.modules.pop(SHARED, None)
        if other is not None:
            sys.modules[SHARED] = other
    return module

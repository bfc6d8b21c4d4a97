"""Choosing the XGBoost device: CUDA when this XGBoost build has it and a GPU is visible."""

from __future__ import annotations

import glob
import shutil
import subprocess
from collections.abc import Mapping

import xgboost as xgb

_HIDDEN = ("", "-1", "none", "void", "nodevfiles")


def cuda_built() -> bool:
    """Whether the installed XGBoost has CUDA kernels (the GPU image's ``xgboost`` wheel)."""
    return bool(xgb.build_info().get("USE_CUDA", False))


def visible_gpus(env: Mapping[str, str]) -> int:
    """How many NVIDIA GPUs this process can use (0 when none, without importing CUDA)."""
    for var in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
        value = env.get(var)
        if value is not None and value.strip().lower() in _HIDDEN:
            return 0
    nodes = glob.glob("/dev/nvidia[0-9]*")
    if nodes:
        return len(nodes)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def choose_device(requested: str | None, *, has_cuda_build: bool, gpus: int) -> str:
    """The ``device`` parameter for XGBoost.

    An explicit ``device`` hyperparameter is honoured (and checked); without one, train on the
    GPU when the build supports it and one is visible, else on the CPU.
    """
    if requested is not None and requested.startswith("cuda"):
        if not has_cuda_build:
            raise ValueError(
                f"hyperparameter 'device' is {requested!r} but this image's XGBoost is the "
                "CPU-only build; use the GPU training image"
            )
        if gpus == 0:
            raise ValueError(f"hyperparameter 'device' is {requested!r} but no GPU is visible")
        return requested
    if requested is not None:
        return requested
    return "cuda" if has_cuda_build and gpus > 0 else "cpu"

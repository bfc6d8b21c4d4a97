"""GPU detection: train on CUDA when the XGBoost build has it and a GPU is visible."""

from __future__ import annotations

import pytest
from mlstack_containers.training import device


@pytest.mark.parametrize(
    ("requested", "cuda_build", "gpus", "expected"),
    [
        (None, False, 0, "cpu"),  # the CPU image on a CPU instance
        (None, False, 1, "cpu"),  # the CPU image on a GPU instance: its build has no kernels
        (None, True, 0, "cpu"),  # the GPU image on a CPU instance
        (None, True, 4, "cuda"),  # the GPU image on a GPU instance
        ("cpu", True, 4, "cpu"),  # an explicit choice wins
        ("cuda:1", True, 2, "cuda:1"),
    ],
)
def test_choose_device(requested, cuda_build, gpus, expected):
    assert device.choose_device(requested, has_cuda_build=cuda_build, gpus=gpus) == expected


def test_cuda_requested_without_cuda_build_or_gpu_is_an_error():
    with pytest.raises(ValueError, match="CPU-only build"):
        device.choose_device("cuda", has_cuda_build=False, gpus=1)
    with pytest.raises(ValueError, match="no GPU is visible"):
        device.choose_device("cuda", has_cuda_build=True, gpus=0)


@pytest.mark.parametrize("value", ["", "-1", "none", "void"])
def test_hidden_gpus_are_not_visible(value):
    assert device.visible_gpus({"CUDA_VISIBLE_DEVICES": value}) == 0
    assert device.visible_gpus({"NVIDIA_VISIBLE_DEVICES": value}) == 0


def test_visible_gpus_counts_device_nodes_then_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.setattr(device.glob, "glob", lambda pattern: ["/dev/nvidia0", "/dev/nvidia1"])
    assert device.visible_gpus({}) == 2
    monkeypatch.setattr(device.glob, "glob", lambda pattern: [])
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-1)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert device.visible_gpus({}) == 1
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert device.visible_gpus({}) == 0


def test_this_machine_trains_on_the_cpu():
    # The dev venv has the CPU-only xgboost-cpu build.
    assert device.cuda_built() is False

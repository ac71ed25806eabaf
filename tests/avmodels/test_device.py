"""Device and precision: names resolved or refused, CPU stays float32, tensors copied safely."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avspot.avmodels.device import autocast_dtype, module_device, resolve_device, to_tensor
from avspot.avmodels.train_config import TrainConfig
from avspot.datasets.errors import DataError


def test_auto_is_a_gpu_when_there_is_one_else_the_cpu() -> None:
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    assert resolve_device(None).type == want
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:1", "tpu"])
def test_unknown_device_names_are_bad_input(bad: str) -> None:
    with pytest.raises(DataError, match="device="):
        resolve_device(bad)
    with pytest.raises(DataError, match="device="):
        TrainConfig(device=bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_and_cpu_trains_in_float32() -> None:
    with pytest.raises(DataError, match="no CUDA device"):
        resolve_device("cuda")
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "auto") is None and autocast_dtype(cpu, "fp32") is None
    with pytest.raises(DataError, match="bf16 needs a CUDA device"):
        autocast_dtype(cpu, "bf16")
    with pytest.raises(DataError, match="precision="):
        TrainConfig(precision="fp8")


def test_to_tensor_copies_read_only_arrays_and_keeps_tensors() -> None:
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    a.flags.writeable = False
    t = to_tensor(a)
    assert t.dtype == torch.float32 and t.tolist() == a.tolist()
    t[0, 0] = 7  # a copy: the read-only source is untouched
    assert a[0, 0] == 0
    same = torch.ones(2)
    assert to_tensor(same) is same
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")

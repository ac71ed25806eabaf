"""Where a model runs and in which precision, and how batches get there.

``resolve_device("auto")`` is the first CUDA device when there is one (in a Ray trial: the GPU
the trial holds, which Ray exposes as ``cuda:0`` through CUDA_VISIBLE_DEVICES), else the CPU.
``autocast_dtype`` is bfloat16 on CUDA devices that support it when the precision is ``auto``
or ``bf16``, else None (float32). Host batches move to the device from pinned memory with
non-blocking copies: the host thread goes on (gathering the next batch) while the copy is queued.
The copy runs on the current CUDA stream, so it does not overlap that stream's kernels; a feed
that keeps the split on the device (``ChunkBatches(device=...)``) copies nothing per batch.
"""

from __future__ import annotations

import numpy as np
import torch

from avspot.datasets.errors import DataError

__all__ = [
    "DEVICES",
    "PRECISIONS",
    "autocast_dtype",
    "module_device",
    "resolve_device",
    "to_tensor",
]

DEVICES = ("auto", "cpu", "cuda")  # or cuda:N
PRECISIONS = ("auto", "fp32", "bf16")


def check_device_name(name: str) -> None:
    """DataError unless ``name`` is auto, cpu, cuda or cuda:N."""
    base, _, index = str(name).partition(":")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise DataError(f"device={name!r}: unknown; valid: auto, cpu, cuda, cuda:N", field="device")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The torch device for a configured name; CUDA asked for but absent is bad input."""
    if isinstance(name, torch.device):
        return name
    name = name or "auto"
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DataError(f"device={name!r}: no CUDA device is available here", field="device")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """bfloat16 for mixed-precision training on a CUDA device that supports it, else None."""
    if precision not in PRECISIONS:
        raise DataError(f"precision={precision!r}: unknown; valid: {', '.join(PRECISIONS)}")
    if precision == "fp32" or device.type != "cuda":
        if precision == "bf16" and device.type != "cuda":
            raise DataError("precision=bf16 needs a CUDA device (autocast on CPU is slower here)")
        return None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if precision == "bf16":
        raise DataError(f"precision=bf16: {torch.cuda.get_device_name(device)} has no bfloat16")
    return None


def module_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters (CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def to_tensor(
    a: np.ndarray | torch.Tensor, device: torch.device | str | None = None
) -> torch.Tensor:
    """A float32 tensor on ``device`` (default: where it is). A float16 array or tensor travels
    in float16 and is upcast on the device (half the bytes over PCIe). numpy arrays are copied
    first when read-only or non-contiguous (Ray's object store hands out read-only ones); for a
    CUDA device they go through pinned memory with a non-blocking copy."""
    if isinstance(a, torch.Tensor):
        t = a if device is None else a.to(device, non_blocking=True)
        return t if t.dtype == torch.float32 else t.float()
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float16):
        a = a.astype(np.float32)
    if not a.flags.writeable or not a.flags.c_contiguous:
        a = np.array(a, order="C")
    t = torch.from_numpy(a)
    if device is not None and torch.device(device).type != "cpu":
        t = t.pin_memory().to(device, non_blocking=True)
    return t if t.dtype == torch.float32 else t.float()

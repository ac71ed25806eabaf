"""Tensors for the models: numpy arrays in, float32 tensors out, on the model's device."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["to_tensor"]


def to_tensor(a: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """numpy -> float32 tensor (on ``device`` if given); copies read-only or non-contiguous
    arrays first (Ray's object store hands out read-only ones, which torch cannot share)."""
    a = np.asarray(a, dtype=np.float32)
    if not a.flags.writeable or not a.flags.c_contiguous:
        a = np.array(a, dtype=np.float32, order="C")
    t = torch.from_numpy(a)
    return t if device is None else t.to(device)

"""The portable model file: a trained model's config and weights, written atomically.

``save_model`` writes ``{"format", "version", "config": ModelConfig.to_dict(), "state_dict"}``
with torch.save; ``load_model`` rebuilds the model with ``build_model(config)`` and reads it
back with ``torch.load(weights_only=True)`` (no pickled code). Serving (the MLflow pyfunc
model), ``avspot spot`` and ``avspot train --out`` use these files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avspot.avmodels.config import ModelConfig
from avspot.avmodels.fusion import PairModel, build_model
from avspot.datasets.atomic import write_atomic
from avspot.datasets.errors import DataError, one_line

__all__ = ["MODEL_FORMAT", "load_model", "save_model", "torch_save_atomic"]

MODEL_FORMAT = "avspot-model"


def torch_save_atomic(payload: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(payload)`` to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: torch rejects some temporary file names
            torch.save(payload, f)

    return write_atomic(path, write)


def save_model(model: nn.Module, cfg: ModelConfig, path: str | os.PathLike[str]) -> Path:
    """Write the portable model file; a ``PairModel`` is saved as its combination, which
    ``build_model`` rebuilds."""
    if isinstance(model, PairModel):
        model = model.combined()
    payload = {
        "format": MODEL_FORMAT,
        "version": 1,
        "config": cfg.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    return torch_save_atomic(payload, path)


def load_model(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelConfig]:
    """Inverse of :func:`save_model`: (model in eval mode, its ModelConfig)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model file does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unreadable file is bad input
        raise DataError(f"{path}: not a readable model file ({one_line(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise DataError(f"{path}: not an avspot model file")
    try:
        cfg = ModelConfig.from_dict(payload["config"])
        model = build_model(cfg)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise DataError(f"{path}: model does not match its config ({one_line(exc)})") from None
    model.to(map_location)
    model.eval()
    return model, cfg

"""Action spotting: slide a trained chunk classifier over whole halves, turn the per-second
class probabilities into spots (``avmodels.postprocess``), write SoccerNet
``results_spotting.json`` files.

The windows are ``datasets.windows.sliding_starts``: one centred on every stride-th frame;
``forward_sequence`` shares the per-frame work between overlapping windows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from avspot.avmodels.device import autocast_dtype, module_device, to_tensor
from avspot.avmodels.postprocess import POSTPROCESS, Spot, postprocess, spots_to_detections
from avspot.avmodels.results_io import PREDICTIONS_FILE, predictions_json
from avspot.datasets.atomic import write_json_atomic
from avspot.datasets.errors import DataError
from avspot.datasets.windows import gather_chunks, sliding_starts

if TYPE_CHECKING:
    from avspot.datasets.halves import Half

__all__ = [
    "detections_for_half",
    "predict_half",
    "predict_half_naive",
    "spot_half",
    "spot_halves",
    "spots_to_json",
    "write_results",
]


# ---- model -> per-second probabilities ---------------------------------------------------------


def _window_frames(model: torch.nn.Module, window_frames: int | None) -> int:
    if window_frames is not None:
        return int(window_frames)
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "window_frames"):
        raise ValueError("window_frames not given and the model has no config.window_frames")
    return int(cfg.window_frames)


def classes_of(model: torch.nn.Module) -> tuple[str, ...]:
    """The class names a model spots (its config's label set; v1 for a bare module)."""
    cfg = getattr(model, "config", None)
    vocabulary = getattr(cfg, "vocabulary", None)
    return vocabulary.classes if vocabulary is not None else ("card", "subs", "soccer")


def _num_classes(model: torch.nn.Module, n_outputs: int) -> int:
    """Columns of the logits that are classes: all but the last (background)."""
    return n_outputs - 1


def _stride_frames(half: Half, stride_s: float) -> int:
    stride = round(stride_s * float(half.fps))
    if stride < 1 or abs(stride - stride_s * float(half.fps)) > 1e-6:
        raise ValueError(f"stride {stride_s} s is not a whole number of frames at {half.fps} fps")
    return int(stride)


def predict_half(
    model: torch.nn.Module,
    half: Half,
    stride_s: float = 1.0,
    *,
    window_frames: int | None = None,
    precision: str = "auto",
) -> np.ndarray:
    """Per-second class probabilities of one half: (ceil(N / stride), C) float32.

    Row i is the sigmoid of the class logits (the label set's, background left out) of the
    window centred on frame ``i * stride_frames`` (edge-padded), from
    ``model.forward_sequence`` which shares the per-frame work between overlapping windows.
    ``precision`` (auto | fp32 | bf16): on a CUDA device ``auto`` runs under bf16 autocast
    where the card has it, as trials train; on the CPU it is float32.
    """
    w = _window_frames(model, window_frames)
    stride = _stride_frames(half, stride_s)
    was_training = model.training
    model.eval()
    dev = module_device(model)
    amp = autocast_dtype(dev, precision)  # bf16 on a GPU that has it (as trials train), else None
    try:
        with torch.no_grad(), torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            logits = model.forward_sequence(
                to_tensor(half.video, dev), to_tensor(half.audio, dev), w, stride
            ).float()  # (n_windows, C + 1)
    finally:
        model.train(was_training)
    c = _num_classes(model, logits.shape[1])
    return torch.sigmoid(logits[:, :c]).cpu().numpy().astype(np.float32)


def predict_half_naive(
    model: torch.nn.Module,
    half: Half,
    stride_s: float = 1.0,
    *,
    window_frames: int | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Reference for :func:`predict_half`: every window gathered and scored on its own."""
    w = _window_frames(model, window_frames)
    stride = _stride_frames(half, stride_s)
    starts = sliding_starts(half.n_frames, w, stride)  # (n_windows,)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for lo in range(0, len(starts), batch_size):
                s = starts[lo : lo + batch_size]
                dev = module_device(model)
                v = to_tensor(gather_chunks(half.video, s, w), dev)  # (B, W, Dv)
                a = to_tensor(gather_chunks(half.audio, s, w), dev)  # (B, W, Da)
                logits = model(v, a)
                out.append(torch.sigmoid(logits[:, : _num_classes(model, logits.shape[1])]).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy().astype(np.float32)  # (n_windows, 3)


def spot_half(
    model: torch.nn.Module, half: Half, method: str = "nms", *, stride_s: float = 1.0, **kw: Any
) -> list[Spot]:
    """predict_half then postprocess."""
    probs = predict_half(model, half, stride_s)
    return postprocess(probs, method, stride_s=stride_s, fps=2.0, classes=classes_of(model), **kw)


def detections_for_half(
    model: torch.nn.Module, half: Half, method: str = "nms", *, stride_s: float = 1.0, **kw: Any
) -> np.ndarray:
    """Dense (N, 3) detections of one half, ready for ``metrics.average_map``."""
    n_frames = int(half.video.shape[0] * 2.0 / float(half.fps))  # evaluator frames at 2 fps
    spots = spot_half(model, half, method, stride_s=stride_s, **kw)
    return spots_to_detections(spots, n_frames, classes_of(model))


# ---- results_spotting.json ---------------------------------------------------------------------


def spots_to_json(
    game: str, spots_by_half: dict[int, list[Spot]], label_set: str = "v1"
) -> dict[str, Any]:
    """The SoccerNet ``results_spotting.json`` content of one game (all its halves), labels of
    ``label_set``."""
    rows = [
        (half, s.position_ms, s.label, s.confidence)
        for half in sorted(spots_by_half)
        for s in spots_by_half[half]
    ]
    return predictions_json(game, rows, label_set)


def write_results(
    predictions: dict[str, dict[int, list[Spot]]],
    out_dir: str | os.PathLike[str],
    label_set: str = "v1",
) -> list[Path]:
    """Write ``<out_dir>/<game>/results_spotting.json`` for each game (atomic); the paths."""
    paths = []
    for game in sorted(predictions):
        path = Path(out_dir) / game / PREDICTIONS_FILE
        write_json_atomic(path, spots_to_json(game, predictions[game], label_set))
        paths.append(path)
    return paths


def spot_halves(
    model: torch.nn.Module,
    halves: Iterable[Half],
    out_dir: str | os.PathLike[str] = "predictions",
    method: str = "nms",
    *,
    stride_s: float = 1.0,
    source: str = "input",
    **kw: Any,
) -> list[Path]:
    """Spot every half and write one results_spotting.json per game; the paths.

    Halves are consumed one at a time (a table streams them); only the spots are kept until the
    files are written. DataError naming ``source`` when there is no half.
    """
    if method not in POSTPROCESS:
        postprocess(np.zeros((0, 3)), method)  # raises the DataError naming valid methods
    predictions: dict[str, dict[int, list[Spot]]] = {}
    for half in halves:
        spots = spot_half(model, half, method, stride_s=stride_s, **kw)
        predictions.setdefault(half.game, {})[int(half.half)] = spots
    if not predictions:
        raise DataError(f"{source}: no halves to spot")
    vocabulary = getattr(getattr(model, "config", None), "label_set", "v1")
    return write_results(predictions, out_dir, vocabulary)

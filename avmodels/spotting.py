"""Action spotting: slide a trained chunk classifier over whole halves, turn the per-second
class probabilities into spots, write SoccerNet ``results_spotting.json`` files.

Seed section 3.2: a window of W = 2T frames slides with a 1 s stride; three post-processings
turn each class's probability series into spots:

- ``center``: watershed segments (runs of probability >= ``threshold``), spot at the centre of
  each segment; confidence = the segment's maximum.
- ``max``: the same segments, spot at the segment's maximum.
- ``nms``: greedy non-maximum suppression as SoccerNet's sn-spotting ``get_spot_from_NMS``
  (take the highest remaining value, suppress ``[i - w/2, i + w/2)``, repeat while the maximum is
  >= ``threshold``); defaults from sn-spotting: 30 s window, threshold 0.0.

The SoccerNet v1 baseline used a watershed threshold of 0.5 (its ``*_50`` prediction files).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from avspot.avmodels.data import CLASS_NAMES, gather_windows

if TYPE_CHECKING:
    from avspot.datasets.table import Half

__all__ = [
    "POSTPROCESS",
    "Spot",
    "detections_for_half",
    "postprocess",
    "predict_half",
    "predict_half_naive",
    "spot_half",
    "spot_table",
    "spots_to_detections",
    "spots_to_json",
    "write_results",
]


@dataclass(frozen=True)
class Spot:
    """One predicted event. ``frame`` is at the evaluator's 2 fps: ``int(2 * position_ms / 1000)``."""

    frame: int
    position_ms: int
    label: str  # card | subs | soccer
    confidence: float


# ---- model -> per-second probabilities ---------------------------------------------------------


def _window_frames(model: torch.nn.Module, window_frames: int | None) -> int:
    if window_frames is not None:
        return int(window_frames)
    cfg = getattr(model, "cfg", None) or getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "window_frames"):
        raise ValueError("window_frames not given and the model has no cfg.window_frames")
    return int(cfg.window_frames)


def _stride_frames(half: Half, stride_s: float) -> int:
    stride = round(stride_s * float(half.fps))
    if stride < 1 or abs(stride - stride_s * float(half.fps)) > 1e-6:
        raise ValueError(f"stride {stride_s} s is not a whole number of frames at {half.fps} fps")
    return int(stride)


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    a = np.asarray(a, dtype=np.float32)
    if not a.flags.writeable or not a.flags.c_contiguous:
        a = np.array(a, dtype=np.float32, order="C")  # Ray hands out read-only arrays
    return torch.from_numpy(a)


def predict_half(
    model: torch.nn.Module,
    half: Half,
    stride_s: float = 1.0,
    *,
    window_frames: int | None = None,
) -> np.ndarray:
    """Per-second class probabilities of one half: (ceil(N / stride), 3) float32.

    Row i is the sigmoid of the card/subs/soccer logits of the window centred on frame
    ``i * stride_frames`` (edge-padded), from ``model.forward_sequence`` which shares the
    per-frame work between overlapping windows.
    """
    w = _window_frames(model, window_frames)
    stride = _stride_frames(half, stride_s)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model.forward_sequence(
                _to_tensor(half.video), _to_tensor(half.audio), w, stride
            )  # (n_windows, 4)
    finally:
        model.train(was_training)
    return torch.sigmoid(logits[:, : len(CLASS_NAMES)]).numpy().astype(np.float32)


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
    n = half.video.shape[0]
    centres = np.arange(0, n, stride)  # (n_windows,)
    starts = centres - w // 2
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for lo in range(0, len(starts), batch_size):
                s = starts[lo : lo + batch_size]
                v = torch.from_numpy(gather_windows(half.video, s, w))  # (B, W, Dv)
                a = torch.from_numpy(gather_windows(half.audio, s, w))  # (B, W, Da)
                out.append(torch.sigmoid(model(v, a)[:, : len(CLASS_NAMES)]))
    finally:
        model.train(was_training)
    return torch.cat(out).numpy().astype(np.float32)  # (n_windows, 3)


# ---- post-processing: probability series -> spot indices -----------------------------------------


def _segments(p: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Maximal runs ``[start, end]`` (inclusive) where ``p >= threshold``."""
    above = np.concatenate([[False], p >= threshold, [False]])
    edges = np.flatnonzero(above[1:] != above[:-1])  # rising, falling, rising, ...
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def peaks_center(p: np.ndarray, threshold: float = 0.5) -> list[tuple[int, float]]:
    """Watershed segments over ``threshold``: (centre index, segment maximum) per segment."""
    return [((a + b) // 2, float(p[a : b + 1].max())) for a, b in _segments(p, threshold)]


def peaks_max(p: np.ndarray, threshold: float = 0.5) -> list[tuple[int, float]]:
    """Watershed segments over ``threshold``: (index of the maximum, maximum) per segment."""
    out = []
    for a, b in _segments(p, threshold):
        i = a + int(np.argmax(p[a : b + 1]))
        out.append((i, float(p[i])))
    return out


def peaks_nms(
    p: np.ndarray, window: float = 30.0, threshold: float = 0.0
) -> list[tuple[int, float]]:
    """Greedy NMS as sn-spotting's ``get_spot_from_NMS``; ``window`` in samples of ``p``.

    Repeatedly take the highest remaining value (first on ties) while it is >= ``threshold``
    and suppress ``[i - window/2, i + window/2)``.
    """
    p = np.array(p, dtype=np.float64)
    half_lo = window / 2
    half_hi = int(window / 2)
    out = []
    while p.size and p.max() >= threshold:
        i = int(np.argmax(p))
        out.append((i, float(p[i])))
        lo = int(max(i - half_lo, 0))
        hi = int(min(i + half_hi, p.size))
        p[lo:hi] = -1.0
        if hi <= i:  # window < 2: still remove the chosen sample
            p[i] = -1.0
    return out


def _pp_center(p: np.ndarray, stride_s: float, threshold: float = 0.5) -> list[tuple[int, float]]:
    return peaks_center(p, threshold)


def _pp_max(p: np.ndarray, stride_s: float, threshold: float = 0.5) -> list[tuple[int, float]]:
    return peaks_max(p, threshold)


def _pp_nms(
    p: np.ndarray, stride_s: float, window_s: float = 30.0, threshold: float = 0.0
) -> list[tuple[int, float]]:
    return peaks_nms(p, window=window_s / stride_s, threshold=threshold)


POSTPROCESS: dict[str, Callable[..., list[tuple[int, float]]]] = {
    "center": _pp_center,
    "max": _pp_max,
    "nms": _pp_nms,
}
"""Post-processing by name: ``f(p (n,), stride_s, **kw) -> [(index, confidence)]``."""


def postprocess(
    probs: np.ndarray, method: str = "nms", *, stride_s: float = 1.0, fps: float = 2.0, **kw: Any
) -> list[Spot]:
    """Spots from per-step probabilities (n, 3): one post-processing by name, each class alone.

    ``center``/``max`` take ``threshold`` (default 0.5); ``nms`` takes ``window_s`` (default 30)
    and ``threshold`` (default 0.0). Spots are sorted by position, then class.
    """
    if method not in POSTPROCESS:
        from avspot.datasets.errors import DataError

        raise DataError(
            f"spotting method {method!r}: unknown; valid methods: {', '.join(POSTPROCESS)}"
        )
    fn = POSTPROCESS[method]
    spots = []
    for c, label in enumerate(CLASS_NAMES):
        for i, conf in fn(np.asarray(probs[:, c]), stride_s, **kw):
            ms = int(round(i * stride_s * 1000))
            spots.append(Spot(int(fps * (ms / 1000)), ms, label, conf))
    spots.sort(key=lambda s: (s.position_ms, CLASS_NAMES.index(s.label)))
    return spots


def spots_to_detections(spots: Iterable[Spot], n_frames: int) -> np.ndarray:
    """Dense detections as the official ``predictions2vector``: (n_frames, 3), confidence at the
    spot's frame, -1 elsewhere (a later spot on the same frame and class overwrites)."""
    out = np.full((n_frames, len(CLASS_NAMES)), -1.0, dtype=np.float64)
    for s in spots:
        out[min(s.frame, n_frames - 1), CLASS_NAMES.index(s.label)] = s.confidence
    return out


def spot_half(
    model: torch.nn.Module, half: Half, method: str = "nms", *, stride_s: float = 1.0, **kw: Any
) -> list[Spot]:
    """predict_half then postprocess."""
    probs = predict_half(model, half, stride_s)
    return postprocess(probs, method, stride_s=stride_s, fps=2.0, **kw)


def detections_for_half(
    model: torch.nn.Module, half: Half, method: str = "nms", *, stride_s: float = 1.0, **kw: Any
) -> np.ndarray:
    """Dense (N, 3) detections of one half, ready for ``metrics.average_map``."""
    n_frames = int(half.video.shape[0] * 2.0 / float(half.fps))  # evaluator frames at 2 fps
    return spots_to_detections(spot_half(model, half, method, stride_s=stride_s, **kw), n_frames)


# ---- results_spotting.json ---------------------------------------------------------------------


def spots_to_json(game: str, spots_by_half: dict[int, list[Spot]]) -> dict[str, Any]:
    """The SoccerNet ``results_spotting.json`` content of one game (all its halves)."""
    from avspot.avmodels.results_io import predictions_json

    rows = [
        (half, s.position_ms, s.label, s.confidence)
        for half in sorted(spots_by_half)
        for s in spots_by_half[half]
    ]
    return predictions_json(game, rows)


def write_results(
    predictions: dict[str, dict[int, list[Spot]]], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write ``<out_dir>/<game>/results_spotting.json`` for each game (atomic); the paths."""
    from avspot.avmodels.results_io import PREDICTIONS_FILE, write_json_atomic

    paths = []
    for game in sorted(predictions):
        path = Path(out_dir) / game / PREDICTIONS_FILE
        write_json_atomic(path, spots_to_json(game, predictions[game]))
        paths.append(path)
    return paths


def spot_table(
    model: torch.nn.Module,
    data_uri: str,
    split: str = "test",
    out_dir: str | os.PathLike[str] = "predictions",
    method: str = "nms",
    endpoint: str | None = None,
    *,
    stride_s: float = 1.0,
    **kw: Any,
) -> list[Path]:
    """Spot every half of a table split and write one results_spotting.json per game.

    Halves stream one at a time; only the spots are kept until the files are written.
    """
    from avspot.datasets.errors import DataError

    if method not in POSTPROCESS:
        postprocess(np.zeros((0, 3)), method)  # raises the DataError naming valid methods
    predictions: dict[str, dict[int, list[Spot]]] = {}
    for half in _iter_halves(data_uri, split, endpoint):
        spots = spot_half(model, half, method, stride_s=stride_s, **kw)
        predictions.setdefault(half.game, {})[int(half.half)] = spots
    if not predictions:
        raise DataError(f"{data_uri}: split {split!r} has no halves to spot")
    return write_results(predictions, out_dir)


def _iter_halves(uri: str, split: str | None, endpoint: str | None) -> Iterable[Half]:
    from avspot.datasets.table import iter_halves

    return iter_halves(uri, split, endpoint=endpoint)

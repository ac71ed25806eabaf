"""From per-second class probabilities to spots: the seed's three post-processings.

Seed section 3.2: a window of W = 2T frames slides with a 1 s stride (``avmodels.spotting``);
three post-processings turn each class's probability series into spots:

- ``center``: watershed segments (runs of probability >= ``threshold``), spot at the centre of
  each segment; confidence = the segment's maximum.
- ``max``: the same segments, spot at the segment's maximum.
- ``nms``: greedy non-maximum suppression as SoccerNet's sn-spotting ``get_spot_from_NMS``
  (take the highest remaining value, suppress ``[i - w/2, i + w/2)``, repeat while the maximum is
  >= ``threshold``); defaults from sn-spotting: 30 s window, threshold 0.0.

The SoccerNet v1 baseline used a watershed threshold of 0.5 (its ``*_50`` prediction files).
numpy only: the CLI reads the method names from ``POSTPROCESS`` without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from avspot.datasets.errors import DataError
from avspot.datasets.labels import LABEL_SETS

__all__ = [
    "POSTPROCESS",
    "Spot",
    "peaks_center",
    "peaks_max",
    "peaks_nms",
    "postprocess",
    "spots_to_detections",
]


@dataclass(frozen=True)
class Spot:
    """One predicted event. ``frame`` is at the evaluator's 2 fps: ``int(2 * position_ms / 1000)``."""

    frame: int
    position_ms: int
    label: str  # card | subs | soccer
    confidence: float


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


def classes_for(n_classes: int, classes: Sequence[str] | None = None) -> tuple[str, ...]:
    """The class names of C probability columns: ``classes`` when given (checked), else the
    label set with C classes (v1: 3, v2: 17)."""
    if classes is not None:
        if len(classes) != n_classes:
            raise DataError(f"{n_classes} probability columns but {len(classes)} class names")
        return tuple(classes)
    found = [ls.classes for ls in LABEL_SETS.values() if ls.num_classes == n_classes]
    if len(found) != 1:
        raise DataError(f"{n_classes} probability columns: no label set has that many classes")
    return found[0]


def postprocess(
    probs: np.ndarray,
    method: str = "nms",
    *,
    stride_s: float = 1.0,
    fps: float = 2.0,
    classes: Sequence[str] | None = None,
    **kw: Any,
) -> list[Spot]:
    """Spots from per-step probabilities (n, C): one post-processing by name, each class alone.

    ``classes`` names the columns (default: the label set with C classes). ``center``/``max``
    take ``threshold`` (default 0.5); ``nms`` takes ``window_s`` (default 30) and ``threshold``
    (default 0.0). Spots are sorted by position, then class.
    """
    if method not in POSTPROCESS:
        raise DataError(
            f"spotting method {method!r}: unknown; valid methods: {', '.join(POSTPROCESS)}"
        )
    fn = POSTPROCESS[method]
    names = classes_for(np.shape(probs)[1] if np.ndim(probs) == 2 else 3, classes)
    index = {c: i for i, c in enumerate(names)}
    spots = []
    for c, label in enumerate(names):
        for i, conf in fn(np.asarray(probs[:, c]), stride_s, **kw):
            ms = int(round(i * stride_s * 1000))
            spots.append(Spot(int(fps * (ms / 1000)), ms, label, conf))
    spots.sort(key=lambda s: (s.position_ms, index[s.label]))
    return spots


def spots_to_detections(
    spots: Iterable[Spot], n_frames: int, classes: Sequence[str] | None = None
) -> np.ndarray:
    """Dense detections as the official ``predictions2vector``: (n_frames, C), confidence at the
    spot's frame, -1 elsewhere (a later spot on the same frame and class overwrites).
    ``classes``: the label set's names (default v1's)."""
    names = tuple(classes) if classes is not None else LABEL_SETS["v1"].classes
    index = {c: i for i, c in enumerate(names)}
    out = np.full((n_frames, len(names)), -1.0, dtype=np.float64)
    for s in spots:
        out[min(s.frame, n_frames - 1), index[s.label]] = s.confidence
    return out

"""Scoring a model's spots on table halves: shared by the trainer's per-epoch validation and a
trial's final evaluation of its best checkpoint.

Halves are scored as the official evaluator does: each half densified to at least the official
120-minute length (``metrics.official_half_frames``), events and spots at 2 frames/s.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from torch import nn

from avspot.avmodels.metrics import (
    HalfSpots,
    SpottingResult,
    average_map_spots,
    official_half_frames,
)
from avspot.avmodels.postprocess import POSTPROCESS, Spot, postprocess
from avspot.avmodels.spotting import predict_half
from avspot.datasets.halves import Half
from avspot.datasets.labels import CLASS_INDEX

__all__ = ["evaluate_checkpoint", "half_spots"]


def half_spots(half: Half, spots: Sequence[Spot]) -> HalfSpots:
    """One half's events and spots in the sparse form ``metrics.average_map_spots`` scores."""
    n = max(half.n_frames, official_half_frames())
    return HalfSpots.from_lists(
        np.array([int(e.frame) for e in half.events], dtype=np.int64),
        np.array([CLASS_INDEX[e.label] for e in half.events], dtype=np.int64),
        np.array([s.frame for s in spots], dtype=np.int64),
        np.array([CLASS_INDEX[s.label] for s in spots], dtype=np.int64),
        np.array([s.confidence for s in spots], dtype=np.float64),
        n,
    )


def evaluate_checkpoint(
    model: nn.Module,
    halves: Iterable[Half],
    window_frames: int,
    *,
    methods: Iterable[str] = tuple(POSTPROCESS),
    timeline_halves: Iterable[Half] = (),
    max_halves: int | None = None,
) -> dict[str, Any]:
    """Average-mAP (loose) of ``model`` per spotting post-processing over ``halves`` (one
    forward pass per half, shared by the methods), and (title, events, spots, minutes)
    timelines of ``timeline_halves`` (NMS spots) for a qualitative plot.

    Returns ``{"spotting": {method: SpottingResult}, "timelines": [...], "halves": n,
    "predict_s": s}``, ``predict_s`` being the seconds ``predict_half`` took over the n halves
    (the inference cost a search's Pareto front weighs against Average-mAP).
    """
    methods = list(methods)
    scored: dict[str, list[HalfSpots]] = {m: [] for m in methods}
    predict_s, n_halves = 0.0, 0
    for i, half in enumerate(halves):
        if max_halves is not None and i >= max_halves:
            break
        t0 = time.perf_counter()
        probs = predict_half(model, half, 1.0, window_frames=window_frames)  # (n_s, 3)
        predict_s += time.perf_counter() - t0
        n_halves += 1
        for m in methods:
            scored[m].append(half_spots(half, postprocess(probs, m, stride_s=1.0)))
    out: dict[str, Any] = {
        "spotting": {},
        "timelines": [],
        "halves": n_halves,
        "predict_s": predict_s,
    }
    if methods and scored[methods[0]]:
        spotting: dict[str, SpottingResult] = {
            m: average_map_spots(scored[m], metric="loose") for m in methods
        }
        out["spotting"] = spotting
    for half in timeline_halves:
        probs = predict_half(model, half, 1.0, window_frames=window_frames)
        spots = postprocess(probs, "nms", stride_s=1.0)
        minutes = half.n_frames / float(half.fps) / 60
        out["timelines"].append(
            (f"{half.game} / half {half.half}", list(half.events), spots, minutes)
        )
    return out

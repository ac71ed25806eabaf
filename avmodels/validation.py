"""Scoring a model's spots on table halves: the one scoring loop, used by the trainer's
per-epoch validation and by a search trial's final scoring of its kept epoch.

A half is scored as the official evaluator does: densified to at least the official 120-minute
length (``metrics.official_half_frames``), events and spots at 2 frames/s. :class:`SpotScorer`
takes halves one at a time (they stream from Parquet), so a caller that also computes chunk
metrics reads each half once; :func:`score_spots` is the loop over a stream of halves.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
from avspot.avmodels.spotting import classes_of, predict_half
from avspot.datasets.halves import Event, Half
from avspot.datasets.labels import get_label_set

__all__ = ["SpotScorer", "Timeline", "half_spots", "score_spots"]


def half_spots(half: Half, spots: Sequence[Spot]) -> HalfSpots:
    """One half's events and spots in the sparse form ``metrics.average_map_spots`` scores
    (classes by the half's label set)."""
    n = max(half.n_frames, official_half_frames())
    vocabulary = get_label_set(half.label_set)
    index = vocabulary.class_index
    return HalfSpots.from_lists(
        np.array([int(e.frame) for e in half.events], dtype=np.int64),
        np.array([index[e.label] for e in half.events], dtype=np.int64),
        np.array([s.frame for s in spots], dtype=np.int64),
        np.array([index[s.label] for s in spots], dtype=np.int64),
        np.array([s.confidence for s in spots], dtype=np.float64),
        n,
        num_classes=vocabulary.num_classes,
        event_values=np.array(  # the official's target values: 1 visible, -1 not shown
            [-1.0 if e.visibility == "not shown" else 1.0 for e in half.events]
        ),
    )


@dataclass
class Timeline:
    """One half's true events and the model's spots, for a qualitative figure."""

    title: str
    events: list[Event]
    spots: list[Spot]
    minutes: float


class SpotScorer:
    """Average-mAP of ``model``'s spots over the halves given to :meth:`add`.

    Each half costs one ``predict_half`` pass at ``stride_s``, shared by the post-processing
    ``methods``; the spots of the first ``keep`` halves (first method) are kept as timelines.
    ``predict_s`` sums the seconds ``predict_half`` took (the inference cost a search's Pareto
    front weighs against Average-mAP).
    """

    def __init__(
        self,
        model: nn.Module,
        window_frames: int,
        *,
        stride_s: float = 1.0,
        methods: Iterable[str] = tuple(POSTPROCESS),
        keep: int = 0,
        precision: str = "auto",
    ) -> None:
        self.model, self.window_frames, self.stride_s = model, int(window_frames), stride_s
        self.precision = precision
        self.methods = list(methods)
        self.classes = classes_of(model)
        self.keep = keep
        self.scored: dict[str, list[HalfSpots]] = {m: [] for m in self.methods}
        self.timelines: list[Timeline] = []
        self.halves = 0
        self.predict_s = 0.0

    def add(self, half: Half) -> None:
        t0 = time.perf_counter()
        probs = predict_half(
            self.model, half, self.stride_s, window_frames=self.window_frames,
            precision=self.precision,
        )  # fmt: skip
        self.predict_s += time.perf_counter() - t0  # (n_windows, C) probabilities
        for i, method in enumerate(self.methods):
            spots = postprocess(probs, method, stride_s=self.stride_s, classes=self.classes)
            self.scored[method].append(half_spots(half, spots))
            if i == 0 and len(self.timelines) < self.keep:
                minutes = half.n_frames / float(half.fps) / 60
                title = f"{half.game} / half {half.half}"
                self.timelines.append(Timeline(title, list(half.events), spots, minutes))
        self.halves += 1

    def results(self, metric: str = "loose", visibility: bool = False) -> dict[str, SpottingResult]:
        """{method: SpottingResult} over the halves added (empty when none were); with
        ``visibility`` also over visible and unshown events (SoccerNet-v2's split)."""
        if not self.halves:
            return {}
        return {
            m: average_map_spots(
                self.scored[m], metric=metric, class_names=self.classes, visibility=visibility
            )
            for m in self.methods
        }


def score_spots(
    model: nn.Module,
    halves: Iterable[Half],
    window_frames: int,
    *,
    stride_s: float = 1.0,
    methods: Iterable[str] = tuple(POSTPROCESS),
    keep: int = 0,
    max_halves: int | None = None,
) -> SpotScorer:
    """Every half of ``halves`` (at most ``max_halves``) added to a :class:`SpotScorer`."""
    scorer = SpotScorer(model, window_frames, stride_s=stride_s, methods=methods, keep=keep)
    for i, half in enumerate(halves):
        if max_halves is not None and i >= max_halves:
            break
        scorer.add(half)
    return scorer


def timeline_tuples(timelines: Sequence[Timeline]) -> list[tuple[Any, ...]]:
    """(title, events, spots, minutes) rows, as the timeline figure takes them."""
    return [(t.title, t.events, t.spots, t.minutes) for t in timelines]

"""Chunk-classification metrics and the exact, fast Average-mAP of the official SoccerNet evaluator.

Spotting follows `SoccerNet.Evaluation.ActionSpotting` (pip `soccernet==0.2.0`, version 1), rule
for rule, so that `average_map` agrees with its `average_mAP` to the last bit on any valid input:

- A half is a dense (N, C) array per side. Targets: non-zero at event frames (several events of
  one class in one frame are one event). Detections: -1 everywhere except the frames holding a
  confidence; only entries `>= 0` are detections (NaN and negative confidences are none).
- Tolerance `delta` (seconds) becomes `delta * framerate` frames; a detection at frame p may match
  an event at frame g when `|p - g| <= delta * framerate / 2` (both edges included).
- Greedy matching per class and half: events in increasing frame order each take the
  highest-confidence detection not taken yet inside their window; among equal confidences the
  earliest frame wins. Matched detections are true positives, all others false positives.
- 200 thresholds `np.linspace(0, 1, 200)`: precision = TP / #(conf >= t) (0 when none), recall =
  TP / #events (0 when the class has no events); 11-point AP = mean over r in {0, .1, .., 1} of
  the best precision at recall >= r. A class with no events scores 0 and still counts in the
  mean over classes.
- Average-mAP: trapezoid rule over the deltas, divided by (n_deltas - 1); a single delta returns
  its mAP. `loose` = 5..60 s step 5, `tight` = 1..5 s.

Instead of the official per-threshold loops, each class's detections are sorted once and the
thresholds are located with `searchsorted`; matching is vectorised over all events and only the
events whose windows overlap a previous event's window are resolved one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avspot.datasets.labels import CLASS_INDEX, CLASSES, OUTPUTS

FRAMERATE = 2  # the official evaluator's frames per second (labels.FPS)
# The validation metrics that training and search can select models on (``monitor``).
MONITORS: tuple[str, ...] = ("val_average_map", "val_map")
THRESHOLDS = np.linspace(0, 1, 200)
RECALL_POINTS = np.arange(11) / 10
METRICS: dict[str, np.ndarray] = {
    "loose": np.arange(12) * 5 + 5,
    "tight": np.arange(5) * 1 + 1,
}


def official_half_frames(framerate: float = FRAMERATE) -> int:
    """Frames per half in the official dense vectors: 120 minutes, whatever the half's length."""
    return int(120 * 60 * framerate)


def metric_deltas(metric: str) -> np.ndarray:
    """Tolerances in seconds of a named metric (`loose` or `tight`)."""
    try:
        return METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; valid: {sorted(METRICS)}") from None


# ---- chunk classification ---------------------------------------------------------------------


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision as sklearn's `average_precision_score` (step-wise, ties grouped).

    `sum_k (R_k - R_{k-1}) P_k` over distinct score thresholds in decreasing order. With no
    positive sample the result is 0.0 (sklearn's value, with a warning there).
    """
    y = np.asarray(y_true).reshape(-1) > 0  # (N,)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)  # (N,)
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} entries but scores has {s.size}")
    n_pos = int(y.sum())
    if n_pos == 0:
        return 0.0
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last].astype(np.float64)
    precision = tps / (last + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def chunk_metrics(targets: np.ndarray, probs: np.ndarray) -> dict:
    """Per-class AP, their mean over card/subs/soccer (`map`) and the seed's Table 3 confusion.

    targets, probs: (C, 4) in the model's output order card, subs, soccer, background; targets
    multi-hot (background = 1 when the chunk holds no event). Confusion rows are the true class,
    columns the argmax of the 4 outputs, both in that order. A chunk with several events counts
    once in the row of each of its classes (with its one predicted column), so row sums are the
    per-class chunk counts; a chunk with no positive target counts as background.
    """
    t = np.asarray(targets, dtype=np.float64)  # (C, 4)
    p = np.asarray(probs, dtype=np.float64)  # (C, 4)
    if t.ndim != 2 or t.shape[1] != len(OUTPUTS) or t.shape != p.shape:
        raise ValueError(f"targets and probs must both be (C, 4); got {t.shape} and {p.shape}")
    per_class = {name: average_precision(t[:, i], p[:, i]) for i, name in enumerate(OUTPUTS)}
    truth = t > 0.5  # (C, 4)
    truth[:, -1] |= ~truth.any(axis=1)
    pred = np.argmax(p, axis=1)  # (C,)
    confusion = np.zeros((len(OUTPUTS), len(OUTPUTS)), dtype=np.int64)
    for i in range(len(OUTPUTS)):
        confusion[i] = np.bincount(pred[truth[:, i]], minlength=len(OUTPUTS))
    return {
        "map": float(np.mean([per_class[c] for c in CLASSES])) if len(t) else 0.0,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "labels": list(OUTPUTS),
    }


# ---- spotting: sparse halves --------------------------------------------------------------------


@dataclass(frozen=True)
class HalfSpots:
    """One half in sparse form, per class: event frames and detection frames + confidences.

    Equivalent to the official dense pair (target, detection) of that half: `events[c]` are the
    sorted frames where `target[:, c] != 0`, `frames[c]`/`scores[c]` the sorted frames where
    `detection[:, c] >= 0` and their values.
    """

    events: tuple[np.ndarray, ...]
    frames: tuple[np.ndarray, ...]
    scores: tuple[np.ndarray, ...]
    n_frames: int

    @classmethod
    def from_dense(cls, target: np.ndarray, detection: np.ndarray) -> HalfSpots:
        """Sparse form of the official dense (N, C) label and prediction vectors."""
        target = np.asarray(target)
        detection = np.asarray(detection, dtype=np.float64)
        if target.ndim != 2 or target.shape[1] != detection.shape[1]:
            raise ValueError(f"target {target.shape} and detection {detection.shape} differ")
        events, frames, scores = [], [], []
        for c in range(target.shape[1]):
            events.append(np.flatnonzero(target[:, c] != 0))
            f = np.flatnonzero(detection[:, c] >= 0)
            frames.append(f)
            scores.append(detection[f, c])
        n_frames = max(target.shape[0], detection.shape[0])
        return cls(tuple(events), tuple(frames), tuple(scores), int(n_frames))

    @classmethod
    def from_lists(
        cls,
        event_frames: np.ndarray,
        event_classes: np.ndarray,
        det_frames: np.ndarray,
        det_classes: np.ndarray,
        det_scores: np.ndarray,
        n_frames: int,
        num_classes: int = len(CLASSES),
    ) -> HalfSpots:
        """Build from events and detections in file order, with the official writing rules.

        Frames past the end are clipped to `n_frames - 1`; negative frames index from the end
        (numpy's rule, which the official assignment inherits); when several detections of one
        class land in one frame the last one written wins, and only confidences `>= 0` count.
        """
        ev_f = _official_index(np.asarray(event_frames, dtype=np.int64), n_frames)
        ev_c = np.asarray(event_classes, dtype=np.int64)
        events = tuple(np.unique(ev_f[ev_c == c]) for c in range(num_classes))
        f = _official_index(np.asarray(det_frames, dtype=np.int64), n_frames)
        c_arr = np.asarray(det_classes, dtype=np.int64)
        s = np.asarray(det_scores, dtype=np.float64)
        key = c_arr * n_frames + f  # (M,)
        _, first_rev = np.unique(key[::-1], return_index=True)  # sorted by (class, frame)
        last = key.size - 1 - first_rev
        f, c_arr, s = f[last], c_arr[last], s[last]
        keep = s >= 0
        f, c_arr, s = f[keep], c_arr[keep], s[keep]
        frames = tuple(f[c_arr == c] for c in range(num_classes))
        scores = tuple(s[c_arr == c] for c in range(num_classes))
        return cls(events, frames, scores, int(n_frames))

    def to_dense(self) -> tuple[np.ndarray, np.ndarray]:
        """The official dense (target, detection) pair: (N, C) ones at events, -1 elsewhere."""
        n, nc = self.n_frames, len(self.events)
        target = np.zeros((n, nc))
        detection = np.full((n, nc), -1.0)
        for c in range(nc):
            target[self.events[c], c] = 1
            detection[self.frames[c], c] = self.scores[c]
        return target, detection


def _official_index(frames: np.ndarray, n_frames: int) -> np.ndarray:
    """`array[min(frame, n - 1)]` as numpy resolves it: clip the top, wrap negatives once."""
    frames = np.minimum(frames, n_frames - 1)
    frames = np.where(frames < 0, frames + n_frames, frames)
    if frames.size and frames.min() < 0:
        raise ValueError(f"frame {int(frames.min() - n_frames)} is out of range for {n_frames}")
    return frames


# ---- spotting: Average-mAP ---------------------------------------------------------------------


@dataclass(frozen=True)
class SpottingResult:
    """Average-mAP (official), per-class Average-mAP and the mAP-vs-tolerance curve."""

    average_map: float
    per_class: dict[str, float]
    deltas: tuple[float, ...]  # seconds
    map_per_delta: tuple[float, ...]
    per_class_per_delta: dict[str, tuple[float, ...]]
    metric: str
    events: dict[str, int] = field(default_factory=dict)
    detections: dict[str, int] = field(default_factory=dict)

    @property
    def seed_average_map(self) -> float:
        """The seed study's variant: the plain mean of mAP over the deltas (not the official)."""
        return float(np.mean(self.map_per_delta))

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "average_map": self.average_map,
            "per_class": dict(self.per_class),
            "metric": self.metric,
            "seed_average_map": self.seed_average_map,
            "deltas": list(self.deltas),
            "map_per_delta": list(self.map_per_delta),
            "per_class_per_delta": {k: list(v) for k, v in self.per_class_per_delta.items()},
            "events": dict(self.events),
            "detections": dict(self.detections),
        }


def average_map(
    targets: Sequence[np.ndarray],
    detections: Sequence[np.ndarray],
    framerate: float = FRAMERATE,
    metric: str = "loose",
    deltas: Sequence[float] | np.ndarray | None = None,
) -> SpottingResult:
    """Official Average-mAP of dense per-half inputs, exactly, much faster.

    targets[h]: (N_h, C) non-zero at event frames (official `label2vector`); detections[h]:
    (N_h, C) confidence at detection frames, -1 elsewhere (official `predictions2vector`).
    `deltas` (seconds) overrides the metric's tolerances.
    """
    if len(targets) != len(detections):
        raise ValueError(f"{len(targets)} target halves but {len(detections)} detection halves")
    halves = [HalfSpots.from_dense(t, d) for t, d in zip(targets, detections, strict=True)]
    return average_map_spots(halves, framerate=framerate, metric=metric, deltas=deltas)


def average_map_spots(
    halves: Sequence[HalfSpots],
    framerate: float = FRAMERATE,
    metric: str = "loose",
    deltas: Sequence[float] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
) -> SpottingResult:
    """Official Average-mAP of sparse halves (see `HalfSpots`)."""
    if not halves:
        raise ValueError("no halves to evaluate")
    d_sec = metric_deltas(metric) if deltas is None else np.asarray(deltas)
    if d_sec.ndim != 1 or d_sec.size == 0:
        raise ValueError("deltas must be a non-empty 1-D sequence")
    nc = len(halves[0].events)
    names = list(class_names or (CLASSES if nc == len(CLASSES) else [str(c) for c in range(nc)]))
    d_frames = d_sec * framerate  # as the official: `for delta in deltas * framerate`
    reach = int(np.floor(np.max(np.abs(d_frames)) / 2)) + 1
    longest = max(
        max([h.n_frames] + [int(a.max()) + 1 for a in (*h.events, *h.frames) if a.size])
        for h in halves
    )
    stride = longest + 2 * reach + 1  # windows never cross halves
    ap = np.zeros((d_frames.size, nc))  # (n_deltas, C)
    n_events: dict[str, int] = {}
    n_dets: dict[str, int] = {}
    for c in range(nc):
        offsets = [i * stride for i in range(len(halves))]
        g = np.concatenate([h.events[c] + o for h, o in zip(halves, offsets, strict=True)])
        p = np.concatenate([h.frames[c] + o for h, o in zip(halves, offsets, strict=True)])
        s = np.concatenate([h.scores[c] for h in halves]).astype(np.float64)
        g = g.astype(np.int64)
        p = p.astype(np.int64)
        n_events[names[c]] = int(g.size)
        n_dets[names[c]] = int(p.size)
        n_above = s.size - np.searchsorted(np.sort(s), THRESHOLDS, side="left")  # (200,)
        for k, delta in enumerate(d_frames):
            matched = _greedy_match(g, p, s, float(delta))
            tp_scores = np.sort(s[matched])
            tp = (tp_scores.size - np.searchsorted(tp_scores, THRESHOLDS, side="left")).astype(
                np.float64
            )
            ap[k, c] = _eleven_point_ap(tp, n_above, g.size)
    map_per_delta = [np.mean(ap[k]) for k in range(d_frames.size)]
    per_class_curve = {names[c]: tuple(float(v) for v in ap[:, c]) for c in range(nc)}
    return SpottingResult(
        average_map=float(_trapezoid(map_per_delta)),
        per_class={names[c]: float(_trapezoid(list(ap[:, c]))) for c in range(nc)},
        deltas=tuple(float(x) for x in d_sec),
        map_per_delta=tuple(float(v) for v in map_per_delta),
        per_class_per_delta=per_class_curve,
        metric=metric if deltas is None else "custom",
        events=n_events,
        detections=n_dets,
    )


def _greedy_match(g: np.ndarray, p: np.ndarray, s: np.ndarray, delta: float) -> np.ndarray:
    """Indices into p of the detections matched by the official greedy rule for one delta.

    g: sorted event frames; p: sorted detection frames (unique within a half), s: confidences.
    Each event in order takes the unmatched detection with |p - g| <= delta / 2 of highest
    confidence, the earliest on ties (the official scan keeps the first strict maximum).
    """
    if g.size == 0 or p.size == 0:
        return np.zeros(0, dtype=np.int64)
    w = np.floor(delta / 2)  # integer frames: |p - g| <= delta/2  <=>  |p - g| <= floor(delta/2)
    lo = np.searchsorted(p, g - w, side="left")  # (G,)
    hi = np.searchsorted(p, g + w, side="right")  # (G,)
    width = hi - lo
    wmax = int(width.max())
    if wmax == 0:
        return np.zeros(0, dtype=np.int64)
    idx = lo[:, None] + np.arange(wmax)  # (G, W)
    valid = np.arange(wmax) < width[:, None]
    vals = np.where(valid, s[np.minimum(idx, p.size - 1)], -np.inf)  # (G, W)
    best = lo + np.argmax(vals, axis=1)  # (G,) first maximum = earliest frame
    choice = np.where(width > 0, best, -1)
    # An event's choice can only be changed by earlier events whose windows overlap its own.
    chained = np.flatnonzero(np.diff(g) <= 2 * w) + 1
    if chained.size:
        taken: set[int] = set()
        prev = -2
        for i in chained.tolist():
            if i - 1 != prev:  # a new chain starts at i - 1, whose vectorised choice stands
                taken = {int(choice[i - 1])} if choice[i - 1] >= 0 else set()
            prev = i
            a, b = int(lo[i]), int(hi[i])
            seg = s[a:b].copy()
            for j in taken:
                if a <= j < b:
                    seg[j - a] = -np.inf
            if seg.size and seg.max() > -np.inf:
                j = a + int(np.argmax(seg))
                choice[i] = j
                taken.add(j)
            else:
                choice[i] = -1
    return choice[choice >= 0]


def _eleven_point_ap(tp: np.ndarray, n_above: np.ndarray, n_gt: int) -> float:
    """11-point interpolated AP from TP and detection counts at the 200 thresholds."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(tp / n_above)
        recall = np.nan_to_num(tp / n_gt) if n_gt else np.zeros_like(tp)
    ap = 0.0
    for r in RECALL_POINTS:
        sel = precision[recall >= r]
        ap += np.max(sel) if sel.size else 0
    return ap / 11


def _trapezoid(values: Sequence[float]) -> float:
    """The official integral: sum of (m_i + m_{i+1}) / 2, divided by n - 1; one value: itself."""
    if len(values) == 1:
        return values[0]
    integral = 0.0
    for i in range(len(values) - 1):
        integral += (values[i] + values[i + 1]) / 2
    return integral / (len(values) - 1)


# ---- conversions ---------------------------------------------------------------------------------


def position_to_frame(position_ms: np.ndarray | int, framerate: float = FRAMERATE) -> np.ndarray:
    """Official frame of a millisecond position: `int(framerate * (ms / 1000))` (truncation)."""
    ms = np.asarray(position_ms, dtype=np.float64)
    return np.trunc(framerate * (ms / 1000)).astype(np.int64)


def events_to_dense(
    events: Iterable[Any], n_frames: int, num_classes: int = len(CLASSES)
) -> np.ndarray:
    """(N, C) target of one half, official clipping rules.

    events: (frame, class index) pairs, or feature-table `Event`s (`.frame`, `.label` class name).
    """
    pairs = [(e.frame, CLASS_INDEX[e.label]) if hasattr(e, "frame") else e for e in events]
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    target = np.zeros((n_frames, num_classes))
    target[_official_index(arr[:, 0], n_frames), arr[:, 1]] = 1
    return target


def detections_to_dense(
    detections: Iterable[tuple[int, int, float]],
    n_frames: int,
    num_classes: int = len(CLASSES),
) -> np.ndarray:
    """(N, C) detection of one half from (frame, class, confidence) in file order (last wins)."""
    detection = np.full((n_frames, num_classes), -1.0)
    for frame, c, conf in detections:
        detection[min(int(frame), n_frames - 1), int(c)] = conf
    return detection

"""The exact, fast Average-mAP of the official SoccerNet evaluator, for any label set.

Spotting follows `SoccerNet.Evaluation.ActionSpotting` (pip `soccernet==0.2.0`, `evaluate` and
`average_mAP`, version 1 and 2), rule for rule, so that `average_map_spots` agrees with it to the
last bit on any valid input:

- A half is a dense (N, C) array per side. Targets: non-zero at event frames, 1 for a visible
  event, -1 for one "not shown" (several events of one class in one frame are one event, the
  last one written gives its value). Detections: -1 everywhere except the frames holding a
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
- Visible / unshown (the official `closests`): each frame of a half takes the value of its
  class's nearest event (the half split at `(g_i + g_{i+1}) // 2`; -1 in a half where the class
  has no event). Visible AP counts only the detections whose value is > 0.5 (their TP from the
  matching above, against all events) over the visible events; unshown AP those < -0.5 over the
  unshown events.
- Average-mAP: trapezoid rule over the deltas, divided by (n_deltas - 1); a single delta returns
  its mAP. The unshown Average-mAP is then multiplied by 17/13 (not for a single delta).
  `loose` = 5..60 s step 5, `tight` = 1..5 s, `at1`..`at5` = that one delta.

Instead of the official per-threshold loops, each class's detections are sorted once and the
thresholds are located with `searchsorted`; matching is vectorised over all events and only the
events whose windows overlap a previous event's window are resolved one by one.

Chunk classification (`average_precision`, `chunk_metrics`) lives in `classification`; the names
are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avspot.avmodels.classification import average_precision, chunk_metrics, resolve_label_set
from avspot.avmodels.halfspots import (
    FRAMERATE,
    HalfSpots,
    detections_to_dense,
    events_to_dense,
    official_half_frames,
    position_to_frame,
)
from avspot.datasets.labels import LabelSet

__all__ = [
    "FRAMERATE",
    "METRICS",
    "MONITORS",
    "HalfSpots",
    "SpottingResult",
    "average_map",
    "average_map_spots",
    "average_precision",
    "chunk_metrics",
    "detections_to_dense",
    "events_to_dense",
    "metric_deltas",
    "official_half_frames",
    "position_to_frame",
]

# The validation metrics that training and search can select models on (``monitor``).
MONITORS: tuple[str, ...] = ("val_average_map", "val_map")
THRESHOLDS = np.linspace(0, 1, 200)
RECALL_POINTS = np.arange(11) / 10
METRICS: dict[str, np.ndarray] = {
    "loose": np.arange(12) * 5 + 5,
    "tight": np.arange(5) * 1 + 1,
    **{f"at{d}": np.array([d]) for d in range(1, 6)},
}
UNSHOWN_RESCALE = (17, 13)  # the official multiplies the unshown Average-mAP by 17 / 13


def metric_deltas(metric: str) -> np.ndarray:
    """Tolerances in seconds of a named metric (`loose`, `tight`, `at1`..`at5`)."""
    try:
        return METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; valid: {list(METRICS)}") from None


# ---- spotting: Average-mAP ---------------------------------------------------------------------


@dataclass(frozen=True)
class SpottingResult:
    """Average-mAP (official), per-class Average-mAP and the mAP-vs-tolerance curve; the same
    over visible and over unshown events (the official `a_mAP_visible` / `a_mAP_unshown`, None
    when not computed)."""

    average_map: float
    per_class: dict[str, float]
    deltas: tuple[float, ...]  # seconds
    map_per_delta: tuple[float, ...]
    per_class_per_delta: dict[str, tuple[float, ...]]
    metric: str
    events: dict[str, int] = field(default_factory=dict)
    detections: dict[str, int] = field(default_factory=dict)
    average_map_visible: float | None = None
    average_map_unshown: float | None = None  # with the official 17/13 rescale
    per_class_visible: dict[str, float] | None = None
    per_class_unshown: dict[str, float] | None = None
    map_per_delta_visible: tuple[float, ...] | None = None
    map_per_delta_unshown: tuple[float, ...] | None = None
    events_unshown: dict[str, int] = field(default_factory=dict)

    @property
    def seed_average_map(self) -> float:
        """The seed study's variant: the plain mean of mAP over the deltas (not the official)."""
        return float(np.mean(self.map_per_delta))

    def to_dict(self) -> dict:
        """JSON-ready dict."""

        def opt(x: Any) -> Any:
            return None if x is None else (dict(x) if isinstance(x, dict) else list(x))

        return {
            "average_map": self.average_map,
            "per_class": dict(self.per_class),
            "metric": self.metric,
            "average_map_visible": self.average_map_visible,
            "average_map_unshown": self.average_map_unshown,
            "per_class_visible": opt(self.per_class_visible),
            "per_class_unshown": opt(self.per_class_unshown),
            "seed_average_map": self.seed_average_map,
            "deltas": list(self.deltas),
            "map_per_delta": list(self.map_per_delta),
            "map_per_delta_visible": opt(self.map_per_delta_visible),
            "map_per_delta_unshown": opt(self.map_per_delta_unshown),
            "per_class_per_delta": {k: list(v) for k, v in self.per_class_per_delta.items()},
            "events": dict(self.events),
            "events_unshown": dict(self.events_unshown),
            "detections": dict(self.detections),
        }


def average_map(
    targets: Sequence[np.ndarray],
    detections: Sequence[np.ndarray],
    framerate: float = FRAMERATE,
    metric: str = "loose",
    deltas: Sequence[float] | np.ndarray | None = None,
    label_set: LabelSet | str | None = None,
) -> SpottingResult:
    """Official Average-mAP of dense per-half inputs, exactly, much faster.

    targets[h]: (N_h, C) 1 at visible event frames, -1 at unshown ones, 0 elsewhere (official
    `label2vector`); detections[h]: (N_h, C) confidence at detection frames, -1 elsewhere
    (official `predictions2vector`). `deltas` (seconds) overrides the metric's tolerances. The
    visible / unshown values use the `closests` that the official `evaluate` derives from the
    targets.
    """
    if len(targets) != len(detections):
        raise ValueError(f"{len(targets)} target halves but {len(detections)} detection halves")
    halves = [HalfSpots.from_dense(t, d) for t, d in zip(targets, detections, strict=True)]
    return average_map_spots(
        halves, framerate=framerate, metric=metric, deltas=deltas, label_set=label_set
    )


def average_map_spots(
    halves: Sequence[HalfSpots],
    framerate: float = FRAMERATE,
    metric: str = "loose",
    deltas: Sequence[float] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    label_set: LabelSet | str | None = None,
    visibility: bool = True,
) -> SpottingResult:
    """Official Average-mAP of sparse halves (see `HalfSpots`).

    Class names: ``class_names``, else the label set's (None: the label set with that many
    classes, v1 for 3 and v2 for 17; indices for any other count). ``visibility``: also the
    visible and unshown Average-mAP (the official computes them always; ``False`` skips them).
    """
    if not halves:
        raise ValueError("no halves to evaluate")
    d_sec = metric_deltas(metric) if deltas is None else np.asarray(deltas)
    if d_sec.ndim != 1 or d_sec.size == 0:
        raise ValueError("deltas must be a non-empty 1-D sequence")
    nc = len(halves[0].events)
    names = _class_names(nc, class_names, label_set)
    d_frames = d_sec * framerate  # as the official: `for delta in deltas * framerate`
    reach = int(np.floor(np.max(np.abs(d_frames)) / 2)) + 1
    longest = max(
        max([h.n_frames] + [int(a.max()) + 1 for a in (*h.events, *h.frames) if a.size])
        for h in halves
    )
    stride = longest + 2 * reach + 1  # windows never cross halves
    offsets = np.arange(len(halves), dtype=np.int64) * stride
    groups = 3 if visibility else 1  # all, visible, unshown
    tp = np.zeros((groups, d_frames.size, nc, THRESHOLDS.size))
    n_above = np.zeros((groups, nc, THRESHOLDS.size), dtype=np.int64)
    n_gt = np.zeros((groups, nc), dtype=np.int64)
    n_events: dict[str, int] = {}
    n_unshown: dict[str, int] = {}
    n_dets: dict[str, int] = {}
    for c in range(nc):
        g = np.concatenate([h.events[c] + o for h, o in zip(halves, offsets, strict=True)])
        p = np.concatenate([h.frames[c] + o for h, o in zip(halves, offsets, strict=True)])
        s = np.concatenate([h.scores[c] for h in halves]).astype(np.float64)
        gv = np.concatenate([h.event_values(c) for h in halves])
        g = g.astype(np.int64)
        p = p.astype(np.int64)
        n_vis, n_uns = int(np.sum(gv > 0)), int(np.sum(gv < 0))
        n_events[names[c]] = int(g.size)
        n_unshown[names[c]] = n_uns
        n_dets[names[c]] = int(p.size)
        masks: list[np.ndarray | None] = [None]
        n_gt[0, c] = n_vis + n_uns  # the official recall divides by visible + unshown
        if visibility:
            gh = np.repeat(np.arange(len(halves)), [h.events[c].size for h in halves])
            ph = np.repeat(np.arange(len(halves)), [h.frames[c].size for h in halves])
            closest = _closest_values(g, gv, gh, p, ph, offsets)
            masks += [closest > 0.5, closest < -0.5]
            n_gt[1, c], n_gt[2, c] = n_vis, n_uns
        level = _threshold_level(s)
        for k_grp, mask in enumerate(masks):
            n_above[k_grp, c] = _count_at_least(level if mask is None else level[mask])
        for k, delta in enumerate(d_frames):
            matched = _greedy_match(g, p, s, float(delta))
            for k_grp, mask in enumerate(masks):
                m = matched if mask is None else matched[mask[matched]]
                tp[k_grp, k, c] = _count_at_least(level[m])
    ap = _eleven_point_ap(tp, n_above, n_gt)  # (groups, n_deltas, C)
    curves = [[np.mean(ap[k_grp, k]) for k in range(d_frames.size)] for k_grp in range(groups)]

    def per_class(k_grp: int) -> dict[str, float]:
        return {names[c]: float(_trapezoid(list(ap[k_grp, :, c]))) for c in range(nc)}

    def as_tuple(values: Sequence[float]) -> tuple[float, ...]:
        return tuple(float(v) for v in values)

    vis: dict[str, Any] = {}
    if visibility:
        unshown = _trapezoid(curves[2])
        if len(curves[2]) > 1:  # the official rescales after the integral only
            unshown = unshown * UNSHOWN_RESCALE[0] / UNSHOWN_RESCALE[1]
        vis = {
            "average_map_visible": float(_trapezoid(curves[1])),
            "average_map_unshown": float(unshown),
            "per_class_visible": per_class(1),
            "per_class_unshown": per_class(2),
            "map_per_delta_visible": as_tuple(curves[1]),
            "map_per_delta_unshown": as_tuple(curves[2]),
        }
    return SpottingResult(
        average_map=float(_trapezoid(curves[0])),
        per_class=per_class(0),
        deltas=as_tuple(d_sec),
        map_per_delta=as_tuple(curves[0]),
        per_class_per_delta={names[c]: as_tuple(ap[0, :, c]) for c in range(nc)},
        metric=metric if deltas is None else "custom",
        events=n_events,
        detections=n_dets,
        events_unshown=n_unshown,
        **vis,
    )


def _class_names(
    nc: int, class_names: Sequence[str] | None, label_set: LabelSet | str | None
) -> list[str]:
    if class_names is not None:
        names = list(class_names)
        if len(names) != nc:
            raise ValueError(f"{len(names)} class names for {nc} classes")
        return names
    try:
        return list(resolve_label_set(label_set, nc).classes)
    except ValueError:
        if label_set is not None:
            raise
        return [str(c) for c in range(nc)]


def _threshold_level(s: np.ndarray) -> np.ndarray:
    """Per score, the number of thresholds <= it: `searchsorted(THRESHOLDS, s, "right")`, 3x
    faster. The linspace index `floor(s * 199)` is corrected by one either way with the same
    `<=` comparisons; any score the check `T[l - 1] <= s < T[l]` rejects goes the slow way."""
    t, last = THRESHOLDS, THRESHOLDS.size - 1
    k = np.clip(np.floor(s * last), 0, last).astype(np.int64)
    k -= t[k] > s
    k = np.maximum(k, -1)
    level = k + 1 + ((k < last) & (t[np.minimum(k + 1, last)] <= s))
    ok = ((level == 0) | (t[np.maximum(level - 1, 0)] <= s)) & (
        (level == t.size) | (t[np.minimum(level, last)] > s)
    )
    if not ok.all():
        level[~ok] = np.searchsorted(t, s[~ok], side="right")
    return level


def _count_at_least(level: np.ndarray) -> np.ndarray:
    """(200,) number of scores >= each threshold, from each score's count of thresholds <= it
    (`searchsorted(THRESHOLDS, s, "right")`): s >= t_j exactly when that count exceeds j."""
    counts = np.bincount(level, minlength=THRESHOLDS.size + 1)  # (201,)
    return level.size - np.cumsum(counts)[: THRESHOLDS.size]


def _closest_values(
    g: np.ndarray,
    gv: np.ndarray,
    gh: np.ndarray,
    p: np.ndarray,
    ph: np.ndarray,
    offsets: np.ndarray,
) -> np.ndarray:
    """The official `closests` at the detection frames: the value of the nearest event.

    g, gv, gh: sorted event frames (halves laid end to end at `offsets`), their values and
    halves; p, ph: detection frames and halves. In a half, event i owns the frames from
    `(g[i-1] + g[i]) // 2` to `(g[i] + g[i+1]) // 2` (excluded); a half without events of the
    class is -1 throughout.
    """
    out = np.full(p.size, -1.0)
    if g.size == 0 or p.size == 0:
        return out
    same = gh[1:] == gh[:-1]
    bounds = np.where(same, (g[:-1] + g[1:]) // 2, offsets[gh[1:]])  # sorted
    idx = np.searchsorted(bounds, p, side="right")
    hit = gh[idx] == ph
    out[hit] = gv[idx[hit]]
    return out


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
        picks = choice.tolist()
        for i in chained.tolist():
            if i - 1 != prev:  # a new chain starts at i - 1, whose vectorised choice stands
                taken = {picks[i - 1]} if picks[i - 1] >= 0 else set()
            prev = i
            j = picks[i]
            if j < 0:  # an empty window stays empty
                continue
            if j not in taken:  # the window's first maximum is free: it is still the choice
                taken.add(j)
                continue
            a, b = int(lo[i]), int(hi[i])
            seg = s[a:b].copy()
            for j in taken:
                if a <= j < b:
                    seg[j - a] = -np.inf
            if seg.size and seg.max() > -np.inf:
                j = a + int(np.argmax(seg))
                choice[i] = picks[i] = j
                taken.add(j)
            else:
                choice[i] = picks[i] = -1
    return choice[choice >= 0]


def _eleven_point_ap(tp: np.ndarray, n_above: np.ndarray, n_gt: np.ndarray) -> np.ndarray:
    """11-point interpolated AP from TP and detection counts at the 200 thresholds.

    tp: (G, K, C, 200), n_above: (G, C, 200), n_gt: (G, C) -> (G, K, C). As the official:
    precision and recall through `nan_to_num` (0/0 -> 0), the best precision at recall >= r
    summed over r = 0, .1, .., 1 in that order, then / 11. TP falls as the threshold rises, so
    the points with recall >= r are a prefix of the thresholds: the running maximum of the
    precision at the prefix's end is the official maximum.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(tp / n_above[:, None])
        recall = np.nan_to_num(tp / n_gt[:, None, :, None].astype(np.float64))
    best = np.maximum.accumulate(precision, axis=-1)  # (G, K, C, 200)
    ap = np.zeros(tp.shape[:-1])
    for r in RECALL_POINTS:
        m = np.sum(recall >= r, axis=-1)  # (G, K, C) prefix lengths
        at = np.take_along_axis(best, np.maximum(m - 1, 0)[..., None], axis=-1)[..., 0]
        ap = ap + np.where(m > 0, at, 0.0)
    return ap / 11


def _trapezoid(values: Sequence[float]) -> float:
    """The official integral: sum of (m_i + m_{i+1}) / 2, divided by n - 1; one value: itself."""
    if len(values) == 1:
        return values[0]
    integral = 0.0
    for i in range(len(values) - 1):
        integral += (values[i] + values[i + 1]) / 2
    return integral / (len(values) - 1)

"""One half as the official SoccerNet evaluator sees it, in sparse form, and the conversions.

The official `label2vector` / `predictions2vector` write each half into dense (N, C) vectors of
120 minutes at 2 frames/s (14,400 frames): events as 1 (visible) or -1 (not shown), detections as
their confidence over a background of -1; frame = `int(2 * ms / 1000)`, clipped to the last
frame; a later write to the same (frame, class) replaces an earlier one. `HalfSpots` holds the
same information per class as sorted arrays, which is what `metrics.average_map_spots` scores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from avspot.datasets.labels import V1, LabelSet, get_label_set

FRAMERATE = 2  # the official evaluator's frames per second (labels.FPS)


def official_half_frames(framerate: float = FRAMERATE) -> int:
    """Frames per half in the official dense vectors: 120 minutes, whatever the half's length."""
    return int(120 * 60 * framerate)


# ---- spotting: sparse halves --------------------------------------------------------------------


@dataclass(frozen=True)
class HalfSpots:
    """One half in sparse form, per class: event frames and detection frames + confidences.

    Equivalent to the official dense pair (target, detection) of that half: `events[c]` are the
    sorted frames where `target[:, c] != 0` and `values[c]` the target there (1 visible, -1 not
    shown; None: every event visible), `frames[c]`/`scores[c]` the sorted frames where
    `detection[:, c] >= 0` and their values.
    """

    events: tuple[np.ndarray, ...]
    frames: tuple[np.ndarray, ...]
    scores: tuple[np.ndarray, ...]
    n_frames: int
    values: tuple[np.ndarray, ...] | None = None

    def event_values(self, c: int) -> np.ndarray:
        """Target values at class c's events (1 visible, -1 not shown)."""
        if self.values is None:
            return np.ones(self.events[c].size)
        return np.asarray(self.values[c], dtype=np.float64)

    @classmethod
    def from_dense(cls, target: np.ndarray, detection: np.ndarray) -> HalfSpots:
        """Sparse form of the official dense (N, C) label and prediction vectors."""
        target = np.asarray(target)
        detection = np.asarray(detection, dtype=np.float64)
        if target.ndim != 2 or target.shape[1] != detection.shape[1]:
            raise ValueError(f"target {target.shape} and detection {detection.shape} differ")
        nc = target.shape[1]
        events, values = _by_class(target, target != 0, nc)
        frames, scores = _by_class(detection, detection >= 0, nc)
        n_frames = max(target.shape[0], detection.shape[0])
        return cls(events, frames, scores, int(n_frames), values)

    @classmethod
    def from_lists(
        cls,
        event_frames: np.ndarray,
        event_classes: np.ndarray,
        det_frames: np.ndarray,
        det_classes: np.ndarray,
        det_scores: np.ndarray,
        n_frames: int,
        num_classes: int = V1.num_classes,
        event_values: np.ndarray | None = None,
    ) -> HalfSpots:
        """Build from events and detections in file order, with the official writing rules.

        Frames past the end are clipped to `n_frames - 1`; negative frames index from the end
        (numpy's rule, which the official assignment inherits); when several events or several
        detections of one class land in one frame the last one written wins (an event's value,
        a detection's confidence), and only confidences `>= 0` count. ``event_values``: 1 per
        visible event, -1 per event not shown (None: all visible).
        """
        ev_f = _official_index(np.asarray(event_frames, dtype=np.int64), n_frames)
        ev_c = np.asarray(event_classes, dtype=np.int64)
        if event_values is None:
            ev_v = np.ones(ev_f.size)
        else:
            ev_v = np.asarray(event_values, dtype=np.float64).reshape(-1)
        ev_f, ev_c, ev_v = _last_written(ev_f, ev_c, ev_v, n_frames)
        events = tuple(ev_f[ev_c == c] for c in range(num_classes))
        values = tuple(ev_v[ev_c == c] for c in range(num_classes))
        f = _official_index(np.asarray(det_frames, dtype=np.int64), n_frames)
        c_arr = np.asarray(det_classes, dtype=np.int64)
        s = np.asarray(det_scores, dtype=np.float64)
        f, c_arr, s = _last_written(f, c_arr, s, n_frames)
        keep = s >= 0
        f, c_arr, s = f[keep], c_arr[keep], s[keep]
        frames = tuple(f[c_arr == c] for c in range(num_classes))
        scores = tuple(s[c_arr == c] for c in range(num_classes))
        return cls(events, frames, scores, int(n_frames), values)

    def to_dense(self) -> tuple[np.ndarray, np.ndarray]:
        """The official dense (target, detection) pair: (N, C) event values, -1 elsewhere."""
        n, nc = self.n_frames, len(self.events)
        target = np.zeros((n, nc))
        detection = np.full((n, nc), -1.0)
        for c in range(nc):
            target[self.events[c], c] = self.event_values(c)
            detection[self.frames[c], c] = self.scores[c]
        return target, detection


def _by_class(
    array: np.ndarray, where: np.ndarray, nc: int
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Per class, the sorted frames where ``where`` holds and ``array``'s values there (one
    row-major pass and a stable radix sort by class: faster than scanning strided columns)."""
    idx = np.flatnonzero(where)  # row-major: frame, then class
    cls_of = (idx % nc).astype(np.int16)
    order = np.argsort(cls_of, kind="stable")  # frames stay sorted within a class
    idx = idx[order]
    cut = np.searchsorted(cls_of[order], np.arange(1, nc))
    frames = tuple(np.split(idx // nc, cut))
    vals = tuple(np.split(array.reshape(-1)[idx].astype(np.float64), cut))
    return frames, vals


def _last_written(
    frames: np.ndarray, classes: np.ndarray, values: np.ndarray, n_frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One entry per (class, frame), the last in file order, sorted by class then frame."""
    key = classes * n_frames + frames  # (M,)
    _, first_rev = np.unique(key[::-1], return_index=True)
    last = key.size - 1 - first_rev
    return frames[last], classes[last], values[last]


def _official_index(frames: np.ndarray, n_frames: int) -> np.ndarray:
    """`array[min(frame, n - 1)]` as numpy resolves it: clip the top, wrap negatives once."""
    frames = np.minimum(frames, n_frames - 1)
    frames = np.where(frames < 0, frames + n_frames, frames)
    if frames.size and frames.min() < 0:
        raise ValueError(f"frame {int(frames.min() - n_frames)} is out of range for {n_frames}")
    return frames


# ---- conversions ---------------------------------------------------------------------------------


def position_to_frame(position_ms: np.ndarray | int, framerate: float = FRAMERATE) -> np.ndarray:
    """Official frame of a millisecond position: `int(framerate * (ms / 1000))` (truncation)."""
    ms = np.asarray(position_ms, dtype=np.float64)
    return np.trunc(framerate * (ms / 1000)).astype(np.int64)


def events_to_dense(
    events: Iterable[Any],
    n_frames: int,
    num_classes: int | None = None,
    label_set: LabelSet | str | None = None,
) -> np.ndarray:
    """(N, C) target of one half, official rules: clipping, 1 visible, -1 not shown, last wins.

    events: (frame, class index[, value]) tuples, or feature-table `Event`s (`.frame`, `.label`
    class name of ``label_set``, default v1; `.visibility` "visible" / "not shown", visible when
    absent). C: ``num_classes``, else the label set's.
    """
    ls = get_label_set(label_set) if isinstance(label_set, str) else (label_set or V1)
    nc = ls.num_classes if num_classes is None else num_classes
    index = ls.class_index
    rows = []
    for e in events:
        if hasattr(e, "frame"):
            shown = getattr(e, "visibility", "visible") != "not shown"
            rows.append((e.frame, index[e.label], 1 if shown else -1))
        else:
            rows.append((*e, 1) if len(e) == 2 else tuple(e))
    arr = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    target = np.zeros((n_frames, nc))
    target[_official_index(arr[:, 0], n_frames), arr[:, 1]] = arr[:, 2]
    return target


def detections_to_dense(
    detections: Iterable[tuple[int, int, float]],
    n_frames: int,
    num_classes: int = V1.num_classes,
) -> np.ndarray:
    """(N, C) detection of one half from (frame, class, confidence) in file order (last wins)."""
    detection = np.full((n_frames, num_classes), -1.0)
    for frame, c, conf in detections:
        detection[min(int(frame), n_frames - 1), int(c)] = conf
    return detection

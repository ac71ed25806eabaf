"""Windows over a half: consecutive chunks for training, sliding windows for spotting."""

from __future__ import annotations

import numpy as np

from avspot.datasets.errors import DataError
from avspot.datasets.halves import Half
from avspot.datasets.labels import LabelSet, get_label_set


def _check_window(window_frames: int, name: str = "window_frames") -> None:
    if (
        isinstance(window_frames, bool)
        or not isinstance(window_frames, int | np.integer)
        or window_frames < 1
    ):
        raise DataError(f"{name} {window_frames!r}: must be a positive integer")


def n_chunks(n_frames: int, window_frames: int) -> int:
    """Number of consecutive chunks of ``window_frames`` covering a half (the last may be short)."""
    _check_window(window_frames)
    return -(-int(n_frames) // int(window_frames))


def chunk_labels(
    half: Half, window_frames: int, label_set: LabelSet | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive chunks of W = 2T frames: (starts (C,) int64, targets (C, K + 1) float32
    multi-hot) for the K classes of ``label_set`` (default: the half's own; v1: card, subs,
    soccer) and background, 1 exactly when the chunk holds no event. The last chunk may run
    past the half's end (``gather_chunks`` pads it by repetition).
    """
    ls = label_set if label_set is not None else get_label_set(half.label_set)
    w = int(window_frames)
    c = n_chunks(half.n_frames, w)
    starts = np.arange(c, dtype=np.int64) * w  # (C,)
    targets = np.zeros((c, ls.num_outputs), np.float32)  # (C, K + 1)
    if half.events:
        index = ls.class_index
        frames = np.fromiter((e.frame for e in half.events), np.int64, len(half.events))
        cls = np.fromiter((index[e.label] for e in half.events), np.int64, len(half.events))
        chunk = np.clip(frames // w, 0, c - 1)
        targets[chunk, cls] = 1.0
    bg = ls.background
    targets[:, bg] = targets[:, :bg].max(axis=1) == 0
    return starts, targets


def window_indices(
    starts: np.ndarray, window_frames: int, n_frames: int | np.ndarray
) -> np.ndarray:
    """(B, W) frame indices of windows starting at ``starts``, clamped to the half (edge
    padding): the one definition of a window's frames. ``n_frames`` is the half's length, or
    (B,) lengths when the windows come from different halves."""
    _check_window(window_frames)
    idx = np.asarray(starts, np.int64)[:, None] + np.arange(int(window_frames))  # (B, W)
    last = np.asarray(n_frames, np.int64)[..., None] - 1  # (1,) or (B, 1)
    return np.clip(idx, 0, last)


def gather_chunks(features: np.ndarray, starts: np.ndarray, window_frames: int) -> np.ndarray:
    """(B, W, D) batch of windows gathered from (N, D) features by index arithmetic (one copy)."""
    if features.ndim != 2 or features.shape[0] == 0:
        raise DataError(f"features must be a non-empty (N, D) array, got shape {features.shape}")
    return features[window_indices(starts, window_frames, features.shape[0])]  # (B, W, D)


def n_sliding_windows(n_frames: int, stride_frames: int) -> int:
    """ceil(N / stride): one window centred on every stride-th frame."""
    _check_window(stride_frames, "stride_frames")
    return -(-int(n_frames) // int(stride_frames))


def sliding_starts(n_frames: int, window_frames: int, stride_frames: int) -> np.ndarray:
    """First frame of every sliding window, (n_windows,) int64: the one definition of spotting
    windows. Window i is centred on frame ``i * S``: it covers frames ``i*S - W//2`` to
    ``i*S - W//2 + W - 1``; frames outside the half repeat its first or last frame (edge
    padding, as ``window_indices`` clamps). ``avmodels.sliding`` computes the same windows
    over an edge-padded tensor without gathering them.
    """
    _check_window(window_frames)
    centres = np.arange(n_sliding_windows(n_frames, stride_frames), dtype=np.int64)
    return centres * int(stride_frames) - int(window_frames) // 2

"""In-process numpy batching for the plain trainer: chunk windows of in-memory halves.

The trainer consumes ``train_batches(epoch) -> Iterable[dict]`` with numpy arrays
``{"video": (B, W, Dv) f32, "audio": (B, W, Da) f32, "targets": (B, 4) f32}``. The search layer
feeds the same dicts from Ray Data; :class:`ChunkBatches` is the in-process equivalent: the
consecutive chunks of every train half (``datasets.windows.chunk_labels``), shuffled per epoch
with ``numpy.random.default_rng((seed, epoch))`` so that an epoch's order depends only on the
seed and the epoch (a resumed run sees the same batches), gathered by index arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from avspot.datasets.errors import DataError
from avspot.datasets.halves import Half
from avspot.datasets.labels import OUTPUTS
from avspot.datasets.windows import chunk_labels, gather_chunks


def gather_windows(features: np.ndarray, starts: np.ndarray, window_frames: int) -> np.ndarray:
    """Windows ``features[s : s + W]`` for each start, edge-padded at both ends.

    features (N, D), starts (B,) -> (B, W, D) float32 (a copy); the data layer's
    ``gather_chunks`` does the index arithmetic.
    """
    return np.ascontiguousarray(gather_chunks(features, starts, window_frames), dtype=np.float32)


def half_chunks(half: Half, window_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive chunk starts (C,) and multi-hot targets (C, 4) of one half."""
    starts, targets = chunk_labels(half, window_frames)
    return np.asarray(starts, dtype=np.int64), np.asarray(targets, dtype=np.float32)


def iter_chunk_batches(
    half: Half, window_frames: int, batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive chunks of one half in order, as batch dicts (validation)."""
    starts, targets = half_chunks(half, window_frames)
    for lo in range(0, len(starts), batch_size):
        s = starts[lo : lo + batch_size]
        yield {
            "video": gather_windows(half.video, s, window_frames),  # (B, W, Dv)
            "audio": gather_windows(half.audio, s, window_frames),  # (B, W, Da)
            "targets": targets[lo : lo + batch_size],  # (B, 4)
        }


class ChunkBatches:
    """``epoch -> iterator of batch dicts`` over the consecutive chunks of in-memory halves.

    Holds each half's features once (no per-window copies); a batch is gathered from the
    halves its chunks come from. Batches of one sample are skipped (BatchNorm-safe).
    """

    def __init__(
        self,
        halves: Iterable[Half],
        window_frames: int,
        batch_size: int = 256,
        *,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        self.window_frames = int(window_frames)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.video: list[np.ndarray] = []  # per half (N_h, Dv)
        self.audio: list[np.ndarray] = []  # per half (N_h, Da)
        half_ids, starts, targets = [], [], []
        for i, half in enumerate(halves):
            s, t = half_chunks(half, self.window_frames)
            self.video.append(np.asarray(half.video, dtype=np.float32))
            self.audio.append(np.asarray(half.audio, dtype=np.float32))
            half_ids.append(np.full(len(s), i, dtype=np.int64))
            starts.append(s)
            targets.append(t)
        if not self.video:
            raise DataError("training data: no halves to train on")
        self.half_ids = np.concatenate(half_ids)  # (C,)
        self.starts = np.concatenate(starts)  # (C,)
        self.targets = np.concatenate(targets).astype(np.float32)  # (C, 4)

    @property
    def num_samples(self) -> int:
        return int(len(self.starts))

    def __len__(self) -> int:
        """Batches per epoch."""
        n = self.num_samples
        full, rest = divmod(n, self.batch_size)
        return full + (1 if rest > 1 else 0)

    @property
    def pos_freq(self) -> np.ndarray:
        """Fraction of chunks positive for each output (4,): for balanced class weights."""
        return self.targets.mean(axis=0)

    def order(self, epoch: int) -> np.ndarray:
        """Sample order of an epoch, a function of (seed, epoch) only."""
        n = self.num_samples
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng((self.seed, int(epoch))).permutation(n)

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Gather the samples ``indices`` (B,) into one batch dict."""
        indices = np.asarray(indices, dtype=np.int64)
        w = self.window_frames
        b = len(indices)
        video = np.empty((b, w, self.video[0].shape[1]), dtype=np.float32)  # (B, W, Dv)
        audio = np.empty((b, w, self.audio[0].shape[1]), dtype=np.float32)  # (B, W, Da)
        hids = self.half_ids[indices]
        for h in np.unique(hids):
            rows = np.nonzero(hids == h)[0]
            s = self.starts[indices[rows]]
            video[rows] = gather_windows(self.video[h], s, w)
            audio[rows] = gather_windows(self.audio[h], s, w)
        return {"video": video, "audio": audio, "targets": self.targets[indices].copy()}

    def __call__(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        order = self.order(epoch)
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo : lo + self.batch_size]
            if len(idx) < 2:
                continue
            yield self.batch(idx)

    def describe(self) -> dict[str, Any]:
        """Counts for logs: halves, samples, batches, positives per class."""
        pos = self.targets.sum(axis=0)
        return {
            "halves": len(self.video),
            "samples": self.num_samples,
            "batches": len(self),
            **{f"pos_{c}": int(p) for c, p in zip(OUTPUTS, pos, strict=True)},
        }

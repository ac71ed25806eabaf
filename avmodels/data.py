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

    Holds the halves' features once, end to end in one (N_total, D) array per modality (no
    per-window copies), and gathers a batch's windows with one index operation: frame
    ``offset[h] + clip(start + j, 0, n_h - 1)`` (edge padding inside each half). With a
    ``device`` the features live there as tensors and batches are gathered there: a GPU trial
    then never copies features from the host after the first epoch. Batches of one sample are
    skipped (BatchNorm-safe).
    """

    def __init__(
        self,
        halves: Iterable[Half],
        window_frames: int,
        batch_size: int = 256,
        *,
        seed: int = 0,
        shuffle: bool = True,
        device: Any = None,
    ) -> None:
        self.window_frames = int(window_frames)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        videos, audios, half_ids, starts, targets, lengths = [], [], [], [], [], []
        for i, half in enumerate(halves):
            s, t = half_chunks(half, self.window_frames)
            videos.append(np.asarray(half.video, dtype=np.float32))
            audios.append(np.asarray(half.audio, dtype=np.float32))
            lengths.append(half.n_frames)
            half_ids.append(np.full(len(s), i, dtype=np.int64))
            starts.append(s)
            targets.append(t)
        if not videos:
            raise DataError("training data: no halves to train on")
        self.n_halves = len(videos)
        self.lengths = np.asarray(lengths, dtype=np.int64)  # (H,)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])  # (H,)
        self.half_ids = np.concatenate(half_ids)  # (C,)
        self.starts = np.concatenate(starts)  # (C,)
        self.targets = np.concatenate(targets).astype(np.float32)  # (C, 4)
        video = np.concatenate(videos)  # (N_total, Dv)
        audio = np.concatenate(audios)  # (N_total, Da)
        del videos, audios
        self.device = device
        if device is None:
            self.video, self.audio = video, audio
        else:
            import torch

            self.video = torch.from_numpy(video).to(device)
            self.audio = torch.from_numpy(audio).to(device)
            self._targets_t = torch.from_numpy(self.targets).to(device)

    @property
    def num_samples(self) -> int:
        return int(len(self.starts))

    @property
    def nbytes(self) -> int:
        """Bytes of features held (both modalities)."""
        return (
            int(self.video.nelement() * 4 + self.audio.nelement() * 4)
            if self.device
            else int(self.video.nbytes + self.audio.nbytes)
        )

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

    def frame_index(self, indices: np.ndarray) -> np.ndarray:
        """(B, W) rows of the flat feature arrays that the windows of samples ``indices`` read."""
        h = self.half_ids[indices]  # (B,)
        local = self.starts[indices][:, None] + np.arange(self.window_frames)  # (B, W)
        local = np.clip(local, 0, self.lengths[h][:, None] - 1)
        return self.offsets[h][:, None] + local  # (B, W)

    def batch(self, indices: np.ndarray) -> dict[str, Any]:
        """Gather the samples ``indices`` (B,) into one batch dict (numpy, or tensors on the
        device)."""
        indices = np.asarray(indices, dtype=np.int64)
        rows = self.frame_index(indices)  # (B, W)
        if self.device is None:
            return {
                "video": self.video[rows],  # (B, W, Dv), a new array
                "audio": self.audio[rows],  # (B, W, Da)
                "targets": self.targets[indices].copy(),  # (B, 4)
            }
        import torch

        rows_t = torch.from_numpy(rows).to(self.device, non_blocking=True)
        idx_t = torch.from_numpy(indices).to(self.device, non_blocking=True)
        return {
            "video": self.video[rows_t],  # (B, W, Dv) on the device
            "audio": self.audio[rows_t],  # (B, W, Da)
            "targets": self._targets_t[idx_t],  # (B, 4)
        }

    def __call__(self, epoch: int) -> Iterator[dict[str, Any]]:
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
            "halves": self.n_halves,
            "samples": self.num_samples,
            "batches": len(self),
            **{f"pos_{c}": int(p) for c, p in zip(OUTPUTS, pos, strict=True)},
        }

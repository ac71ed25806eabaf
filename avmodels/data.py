"""The one batch type and the one batcher: chunk windows gathered from halves held in memory.

Every training and validation batch is a :class:`Batch`. :class:`ChunkBatches` holds the
features of its halves once, end to end in one (N_total, D) array per modality, and gathers a
batch's windows with one index operation (``datasets.windows.window_indices``, the one
definition of a window's frames, edge-padded inside each half). Training shuffles the chunks
per epoch with ``numpy.random.default_rng((seed, epoch))`` so that an epoch's order depends only
on the seed and the epoch (a resumed run sees the same batches); validation walks them in order.

Features keep the table's dtype (float16 tables stay float16 in memory and on the way to the
device); the trainer upcasts on the device (``device.to_tensor``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypedDict

import numpy as np

from avspot.datasets.errors import DataError
from avspot.datasets.halves import Half
from avspot.datasets.windows import chunk_labels, window_indices

__all__ = ["Batch", "ChunkBatches"]


class Batch(TypedDict):
    """One batch of B chunk windows of W frames (numpy arrays, or tensors on a device)."""

    video: Any  # (B, W, Dv) float32 | float16
    audio: Any  # (B, W, Da) float32 | float16 (Da = 0: a table without audio)
    targets: Any  # (B, C + 1) float32 multi-hot: the classes, then background


class ChunkBatches:
    """``epoch -> iterator of Batch`` over the consecutive chunks of in-memory halves.

    ``shuffle=True`` (training): a permutation per epoch, and a last batch of a single sample
    is skipped (BatchNorm-safe). ``shuffle=False`` (validation): every chunk, in order. With a
    ``device`` the features live there as tensors and batches are gathered there: a GPU trial
    then never copies features from the host after they are loaded. ``features`` (video,
    audio) already holding the halves end to end in order (a node cache's shared map, a
    streamed group's buffer) are used as they are, not copied.
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
        features: tuple[Any, Any] | None = None,
    ) -> None:
        self.window_frames = int(window_frames)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        videos, audios, half_ids, starts, targets, lengths = [], [], [], [], [], []
        for i, half in enumerate(halves):
            s, t = chunk_labels(half, self.window_frames)  # (C,), (C, 4)
            if features is None:
                videos.append(half.video)
                audios.append(half.audio)
            lengths.append(half.n_frames)
            half_ids.append(np.full(len(s), i, dtype=np.int64))
            starts.append(s)
            targets.append(t)
        if not lengths:
            raise DataError("training data: no halves to train on")
        self.n_halves = len(lengths)
        self.lengths = np.asarray(lengths, dtype=np.int64)  # (H,)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])  # (H,)
        self.half_ids = np.concatenate(half_ids)  # (S,)
        self.starts = np.concatenate(starts)  # (S,)
        self.targets = np.concatenate(targets).astype(np.float32)  # (S, C + 1)
        if features is None:
            video = np.concatenate(videos)  # (N_total, Dv), the table's dtype
            audio = np.concatenate(audios)  # (N_total, Da)
        else:
            video, audio = features
        del videos, audios
        self.device = device
        if device is None:
            self.video, self.audio = video, audio
        else:
            self.video, self.audio = _on_device(video, device), _on_device(audio, device)
            self._targets_t = _on_device(self.targets, device)

    @property
    def num_samples(self) -> int:
        return int(len(self.starts))

    @property
    def nbytes(self) -> int:
        """Bytes of features held (both modalities)."""
        if self.device is None:
            return int(self.video.nbytes + self.audio.nbytes)
        return int(
            self.video.nelement() * self.video.element_size()
            + self.audio.nelement() * self.audio.element_size()
        )

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest > (1 if self.shuffle else 0) else 0)

    @property
    def pos_freq(self) -> np.ndarray:
        """Fraction of chunks positive for each output (C + 1,): for balanced class weights."""
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
        local = window_indices(self.starts[indices], self.window_frames, self.lengths[h])
        return self.offsets[h][:, None] + local  # (B, W)

    def batch(self, indices: np.ndarray) -> Batch:
        """Gather the samples ``indices`` (B,) into one batch (numpy, or tensors on the
        device)."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.device is None:
            out = self.empty(len(indices))  # video (B, W, Dv), audio (B, W, Da), targets (B, C+1)
            self.batch_into(indices, out)
            return out
        rows = self.frame_index(indices)  # (B, W)
        import torch

        rows_t = torch.from_numpy(rows).to(self.device, non_blocking=True)
        idx_t = torch.from_numpy(indices).to(self.device, non_blocking=True)
        return Batch(
            video=self.video[rows_t],  # (B, W, Dv) on the device
            audio=self.audio[rows_t],  # (B, W, Da)
            targets=self._targets_t[idx_t],  # (B, C + 1)
        )

    def empty(self, n: int) -> Batch:
        """An uninitialised batch of ``n`` samples (numpy, or tensors on the device)."""
        w = self.window_frames
        shapes = {
            "video": ((n, w, self.video.shape[1]), self.video.dtype),
            "audio": ((n, w, self.audio.shape[1]), self.audio.dtype),
            "targets": ((n, self.targets.shape[1]), self.targets.dtype),
        }
        if self.device is None:
            return Batch(**{k: np.empty(s, d) for k, (s, d) in shapes.items()})  # type: ignore[misc]
        import torch

        targets_dtype = self._targets_t.dtype
        return Batch(
            video=torch.empty(shapes["video"][0], dtype=self.video.dtype, device=self.device),
            audio=torch.empty(shapes["audio"][0], dtype=self.audio.dtype, device=self.device),
            targets=torch.empty(shapes["targets"][0], dtype=targets_dtype, device=self.device),
        )

    def batch_into(self, indices: np.ndarray, out: Batch, at: int = 0) -> None:
        """Gather the samples ``indices`` into rows ``at`` .. of ``out`` (no further copy)."""
        indices = np.asarray(indices, dtype=np.int64)
        n = len(indices)
        if self.device is not None:
            part = self.batch(indices)
            for k in ("video", "audio", "targets"):
                out[k][at : at + n] = part[k]  # type: ignore[literal-required]
            return
        rows = self.frame_index(indices)  # (n, W)
        # mode="clip": with the default "raise" numpy buffers ``out`` (a second copy); the
        # indices are in range by construction
        np.take(self.video, rows, axis=0, out=out["video"][at : at + n], mode="clip")
        np.take(self.audio, rows, axis=0, out=out["audio"][at : at + n], mode="clip")
        np.take(self.targets, indices, axis=0, out=out["targets"][at : at + n], mode="clip")

    def __call__(self, epoch: int = 1) -> Iterator[Batch]:
        order = self.order(epoch)
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo : lo + self.batch_size]
            if self.shuffle and len(idx) < 2:
                continue
            yield self.batch(idx)

    def describe(self) -> dict[str, Any]:
        """Counts for logs: halves, samples, batches, positives per output (classes, then
        background)."""
        return {
            "halves": self.n_halves,
            "samples": self.num_samples,
            "batches": len(self),
            "positives": self.targets.sum(axis=0).astype(int).tolist(),
        }


def _on_device(x: Any, device: Any) -> Any:
    """A tensor copy of array ``x`` on ``device`` (read-only maps included: only read)."""
    import warnings

    import torch

    if isinstance(x, torch.Tensor):
        return x.to(device)
    with warnings.catch_warnings():  # "non-writable array": torch only reads it to copy
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(x)).to(device)

"""Sliding windows over a half as tensors, shared by every pooling layer's sliding inference.

The windows are the ones ``avspot.datasets.windows.sliding_starts`` defines: window ``i`` is
centred on frame ``i * S`` (``ceil(N / S)`` windows), frames outside the half repeat its edges.
Here a half of N frames is edge-padded with ``W // 2`` copies of its first frame at the start
and ``W - W // 2`` copies of its last frame at the end (padded length ``N + W``, one spare frame
so that blocks of W frames tile it), so window ``i`` covers padded frames ``[i * S, i * S + W)``.
``windows_reference`` materialises the windows and exists for tests and benchmarks only; the
pooling layers compute the same result without it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from avspot.datasets.windows import n_sliding_windows

__all__ = [
    "check_window_args",
    "edge_pad",
    "num_windows",
    "window_sums",
    "windows_reference",
]


def check_window_args(x: Tensor, window_frames: int, stride_frames: int) -> None:
    """Reject a sequence that is not (N, D) with N >= 1, or a window/stride below 1."""
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"sequence must have shape (N, D) with N >= 1, got {tuple(x.shape)}")
    if int(window_frames) < 1:
        raise ValueError(f"window_frames must be >= 1, got {window_frames}")
    if int(stride_frames) < 1:
        raise ValueError(f"stride_frames must be >= 1, got {stride_frames}")


def num_windows(n_frames: int, stride_frames: int) -> int:
    """Number of windows of a half: one centred on every ``stride_frames``-th frame."""
    return n_sliding_windows(n_frames, stride_frames)


def edge_pad(x: Tensor, window_frames: int) -> Tensor:
    """Pad (N, D) to (N + W, D): W//2 first frames before, W - W//2 last frames after."""
    w = int(window_frames)
    head = x[:1].expand(w // 2, -1)
    tail = x[-1:].expand(w - w // 2, -1)
    return torch.cat([head, x, tail], dim=0)  # (N + W, D)


def windows_reference(x: Tensor, window_frames: int, stride_frames: int) -> Tensor:
    """Materialise every window, (n_windows, W, D). For tests and benchmarks only."""
    check_window_args(x, window_frames, stride_frames)
    w, s = int(window_frames), int(stride_frames)
    xp = edge_pad(x, w)  # (N + W, D)
    n = num_windows(x.shape[0], s)
    return xp.unfold(0, w, s)[:n].transpose(1, 2).contiguous()  # (n, W, D)


def window_sums(
    values: Tensor,
    window_frames: int,
    stride_frames: int,
    n_windows: int,
    weights: Tensor | None = None,
    dtype: torch.dtype | None = None,
    max_bytes: int = 64 << 20,
) -> Tensor:
    """Sums of ``values * weights`` (Np, *F) over every window, (n_windows, *F).

    The padded sequence is cut into blocks of W frames; the W windows that start in block j
    lie in blocks j and j + 1, and their sums are one matrix product with a 0/1 band matrix
    (W x 2W) over the two blocks (an overlapping view, no copy of the sequence). Each sum
    adds only the window's own frames: no difference of running sums, so a term that is tiny
    in one window is not lost to cancellation against its neighbours. O(W) per frame and
    feature, in chunks of blocks within ``max_bytes``. ``weights`` broadcasts against
    ``values``; ``dtype`` is the accumulation type (default: at least float32).
    """
    w, s = int(window_frames), int(stride_frames)
    if dtype is None:
        dtype = torch.promote_types(values.dtype, torch.float32)
    feat_shape = values.shape[1:]
    if weights is not None:
        feat_shape = torch.broadcast_shapes(feat_shape, weights.shape[1:])
    width = max(1, math.prod(feat_shape))
    out = torch.empty((n_windows, width), dtype=dtype, device=values.device)
    if n_windows == 0:
        return out.reshape((0, *feat_shape))
    lag = torch.arange(2 * w, device=values.device)
    band = ((lag[None, :] >= lag[:w, None]) & (lag[None, :] < lag[:w, None] + w)).to(dtype)
    itemsize = torch.finfo(dtype).bits // 8
    per_block = 4 * w * width * itemsize  # the two-block input and the W sums of a block
    blocks_per_chunk = max(1, max_bytes // per_block)
    n_blocks = ((n_windows - 1) * s) // w + 1  # blocks in which a window starts
    starts = torch.arange(n_windows, device=values.device) * s
    for j0 in range(0, n_blocks, blocks_per_chunk):
        j1 = min(n_blocks, j0 + blocks_per_chunk)
        f0, f1 = j0 * w, min(values.shape[0], (j1 + 1) * w)
        seg = torch.empty(((j1 - j0 + 1) * w, width), dtype=dtype, device=values.device)
        seg[f1 - f0 :] = 0
        part = values[f0:f1].to(dtype)
        if weights is not None:
            part = part * weights[f0:f1].to(dtype)
        seg[: f1 - f0] = part.reshape(f1 - f0, width)
        pairs = seg.as_strided((j1 - j0, 2 * w, width), (w * width, width, 1))
        sums = torch.matmul(band, pairs).reshape(-1, width)  # window sums from f0 + 0, 1, ...
        i0 = -(-f0 // s)  # first window starting at or after f0
        i1 = min(n_windows, -(-(j1 * w) // s))
        out[i0:i1] = sums[starts[i0:i1] - f0]
    return out.reshape((n_windows, *feat_shape))

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
import torch.nn.functional as F
from torch import Tensor

from avspot.datasets.windows import n_sliding_windows

EPS = 1e-12  # F.normalize's eps: x / max(||x||, eps)
CHUNK_BYTES = 48 << 20  # working-set budget of one chunk of windows in sliding inference


def chunk_windows(bytes_per_window: int, budget: int = CHUNK_BYTES) -> int:
    """How many windows one chunk holds within the working-set budget (at least 1)."""
    return max(1, min(4096, budget // max(1, bytes_per_window)))


__all__ = [
    "CHUNK_BYTES",
    "EPS",
    "check_window_args",
    "chunk_windows",
    "edge_pad",
    "num_windows",
    "vlad_sliding_linear",
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


def vlad_sliding_linear(
    xp: Tensor,
    a: Tensor,
    lin: Tensor,
    centers: Tensor | None,
    w: int,
    s: int,
    n: int,
) -> Tensor:
    """Linear map of every window's descriptor without forming any descriptor.

    With no gating, ``weight @ hidden`` is one linear map L (O, K, D) of the normalised
    descriptor, so logits_w = sum_k s_wk (sum_{t in w} a_tk x_t.L_k - A_wk c_k.L_k) with
    A_wk = sum_{t in w} a_tk and s_wk = 1 / (||v_wk|| * ||u_w||) from the cluster norms,
    which come from the Gram expansion ||v_wk||^2 = Q_wk - 2 A_wk sum_t a_tk x_t.c_k +
    A_wk^2 ||c_k||^2, Q_wk = sum_{t,u in w} a_tk a_uk x_t.x_u (float64).

    Per frame, once: a_t, x_t.L (O x K numbers), x_t.c_k. Per window: O(W K (W + O))
    instead of O(W K D) twice (assignment and aggregation) plus O(K D O). Window sums are
    direct sums over the window's frames, never differences of running sums: a cluster
    nearly absent from a window still counts fully after the intra-normalisation, and
    would be lost to cancellation against the frames around it.

    xp (Np, D) edge-padded frames, a (Np, K) their soft assignments, lin (O, K, D) the linear
    map, ``centers`` (K, D) for NetVLAD's residuals (None: NetRVLAD); returns (n, O).
    """
    residual = centers is not None
    o, k, d = lin.shape
    z = (xp @ lin.reshape(o * k, d).t()).reshape(-1, o, k)  # (Np, O, K): x_t . L_ok
    x64, a64 = xp.double(), a.double()
    if residual:
        c64 = centers.double()  # (K, D)
        xc = x64 @ c64.t()  # (Np, K): x_t . c_k
        cl = torch.einsum("okd,kd->ok", lin.double(), c64)  # (O, K): c_k . L_ok
        cc = c64.square().sum(1)  # (K,)
    za = window_sums(z, w, s, n, weights=a.unsqueeze(1))  # (n, O, K): sum a_tk x_t.L_ok
    a_sum = window_sums(a64, w, s, n)  # (n, K): A_wk
    if residual:
        xc_sum = window_sums(xc, w, s, n, weights=a64)  # (n, K): sum a_tk x_t.c_k
        za = za.double() - a_sum.unsqueeze(1) * cl
    band = _gram_band(x64, w)  # (Np, 2W - 1): x_t . x_{t+o}, o in (-W, W)
    # window i's Gram matrix G[p, q] = band[i*s + p, W - 1 + q - p]: a strided view
    g_all = band.as_strided((n, w, w), (s * (2 * w - 1), 2 * w - 2, 1), w - 1)
    a_win = a64.unfold(0, w, s)[:n]  # (n, K, W) view: no copy
    norm2 = torch.empty((n, k), dtype=torch.float64, device=xp.device)  # Q_wk, chunk by chunk
    chunk = chunk_windows(8 * w * k * 2)
    for i0 in range(0, n, chunk):
        aw = a_win[i0 : i0 + chunk]  # (c, K, W)
        gaw = torch.bmm(aw, g_all[i0 : i0 + chunk])  # (c, K, W): G_w a_wk
        torch.linalg.vecdot(gaw, aw, out=norm2[i0 : i0 + chunk])
    if residual:
        norm2 = norm2 - 2 * a_sum * xc_sum + a_sum.square() * cc
    norm = norm2.clamp_min_(0).sqrt_()  # (n, K): ||v_wk||
    inv = 1.0 / norm.clamp_min(EPS)  # intra-normalisation factors
    glob = (norm * inv).square().sum(1).sqrt().clamp_min(EPS)  # (n,) global norm after
    scale = (inv / glob.unsqueeze(1)).to(za.dtype)  # (n, K)
    out = torch.linalg.vecdot(za, scale.unsqueeze(1))  # (n, O)
    return out.to(xp.dtype)  # (n, O)


def _gram_band(x: Tensor, w: int, block: int = 256) -> Tensor:
    """band[t, W - 1 + o] = x_t . x_{t+o} for o in (-W, W), zero outside, (Np + 1, 2W - 1).

    One GEMM per block of frames against the block extended by W - 1 frames on both sides;
    the band is a strided (diagonal) view of each block's Gram matrix.
    """
    np_ = x.shape[0]
    xe = F.pad(x, (0, 0, w - 1, w - 1))  # (Np + 2W - 2, D): xe[t + W - 1] = x_t
    band = torch.zeros(
        (np_ + 1, 2 * w - 1), dtype=x.dtype, device=x.device
    )  # one spare row for views
    for f0 in range(0, np_, block):
        f1 = min(np_, f0 + block)
        g = x[f0:f1] @ xe[f0 : f1 + 2 * w - 2].t()  # (b, b + 2W - 2): column j is u = f0+j-W+1
        band[f0:f1] = g.as_strided((f1 - f0, 2 * w - 1), (g.shape[1] + 1, 1))  # g[i, i + j]
    return band

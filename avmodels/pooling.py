"""Temporal pooling layers: one interface ``(B, T, D) -> (B, out_dim)``, chosen by name.

The seven layers of SoccerNet's baseline (seed paper, section 3.2): ``mean``, ``max``, ``cnn``
and the learnable clustering layers of Miech et al. (LOUPE) ``softdbow``, ``netfv``,
``netvlad``, ``netrvlad``. ``create_pooling(name, input_dim, window_frames, **kw)`` builds one
and passes only the keyword arguments its constructor accepts.

Every layer also scores a whole half at once: ``forward_sliding(x (N, D), W, S)`` equals
``forward`` applied to every sliding window of the half (``avmodels.sliding``) but computes
per-frame work (cluster assignments, residual terms) once per frame instead of once per window
containing it. ``forward_sliding_linear`` additionally applies a linear map (the classifier)
and, when nothing non-linear follows the aggregation (no context gating), never forms a window
descriptor at all: see ``_VLADBase._sliding_linear``. Sliding inference is inference only: it
requires eval mode (batch norm uses its running statistics) and runs without gradients.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avspot.avmodels.gating import ContextGating
from avspot.avmodels.sliding import (
    EPS,
    check_window_args,
    chunk_windows,
    edge_pad,
    num_windows,
    vlad_sliding_linear,
    window_sums,
)

__all__ = [
    "POOLINGS",
    "Pooling",
    "create_pooling",
    "register_pooling",
]


POOLINGS: dict[str, type[Pooling]] = {}

_PoolingT = TypeVar("_PoolingT", bound="type[Pooling]")


def register_pooling(name: str) -> Callable[[_PoolingT], _PoolingT]:
    """Class decorator: register a Pooling subclass under ``name``."""

    def deco(cls: _PoolingT) -> _PoolingT:
        if name in POOLINGS:
            raise ValueError(f"pooling {name!r} is already registered")
        cls.name = name
        POOLINGS[name] = cls
        return cls

    return deco


def create_pooling(name: str, input_dim: int, window_frames: int, **kw: Any) -> Pooling:
    """Build the pooling layer ``name``; keyword arguments it does not accept are ignored."""
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling {name!r}; valid poolings: {sorted(POOLINGS)}")
    cls = POOLINGS[name]
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in kw.items() if k in accepted}
    return cls(input_dim=input_dim, window_frames=window_frames, **kwargs)


class Pooling(nn.Module):
    """Base class: ``forward`` (B, T, D) -> (B, out_dim) plus sliding-window inference."""

    name: ClassVar[str] = ""
    has_clusters: ClassVar[bool] = False  # the layer learns cluster centres (``clusters`` = k)
    out_dim: int

    def __init__(self, input_dim: int, window_frames: int) -> None:
        super().__init__()
        if int(input_dim) < 1 or int(window_frames) < 1:
            raise ValueError(
                f"input_dim and window_frames must be >= 1, got {input_dim}, {window_frames}"
            )
        self.input_dim = int(input_dim)
        self.window_frames = int(window_frames)

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}, out_dim={self.out_dim}"

    # -- sliding inference -------------------------------------------------------------------

    def forward_sliding(
        self, x: Tensor, window_frames: int | None = None, stride_frames: int = 1
    ) -> Tensor:
        """(N, D) -> (ceil(N / S), out_dim): ``forward`` of every window, per-frame work shared.

        Eval mode only; no gradients.
        """
        w, s = self._sliding_args(x, window_frames, stride_frames)
        with torch.no_grad():
            return torch.cat(list(self._sliding_chunks(x, w, s)), dim=0)

    def forward_sliding_linear(
        self,
        x: Tensor,
        window_frames: int | None,
        stride_frames: int,
        weight: Tensor,
        bias: Tensor | None = None,
    ) -> Tensor:
        """(N, D) -> (n_windows, O): ``F.linear(forward(window), weight (O, out_dim), bias)``.

        The classifier of a window is linear in its pooled vector in eval mode; layers whose
        aggregation is followed by linear maps only fold them in (see ``_VLADBase``).
        """
        w, s = self._sliding_args(x, window_frames, stride_frames)
        if weight.dim() != 2 or weight.shape[1] != self.out_dim:
            raise ValueError(
                f"weight must have shape (O, {self.out_dim}), got {tuple(weight.shape)}"
            )
        with torch.no_grad():
            return self._sliding_linear(x, w, s, weight, bias)

    def _sliding_args(
        self, x: Tensor, window_frames: int | None, stride_frames: int
    ) -> tuple[int, int]:
        if self.training:
            raise RuntimeError(
                f"{type(self).__name__}.forward_sliding needs eval mode (call model.eval()): "
                "batch norm must use its running statistics"
            )
        w = self.window_frames if window_frames is None else int(window_frames)
        check_window_args(x, w, stride_frames)
        if x.shape[1] != self.input_dim:
            raise ValueError(f"expected {self.input_dim}-d frames, got {tuple(x.shape)}")
        return w, int(stride_frames)

    def _sliding_chunks(self, x: Tensor, w: int, s: int) -> Iterator[Tensor]:
        """Pooled vectors of consecutive chunks of windows; the default shares nothing."""
        xp = edge_pad(x, w)  # (N + W, D)
        n = num_windows(x.shape[0], s)
        view = xp.unfold(0, w, s)[:n].transpose(1, 2)  # (n, W, D) view, no copy
        chunk = chunk_windows(w * self.input_dim * 4 * 4)
        for i0 in range(0, n, chunk):
            yield self.forward(view[i0 : i0 + chunk])

    def _sliding_linear(
        self, x: Tensor, w: int, s: int, weight: Tensor, bias: Tensor | None
    ) -> Tensor:
        outs = [F.linear(p, weight, bias) for p in self._sliding_chunks(x, w, s)]
        return torch.cat(outs, dim=0)


def intra_global_normalize(v: Tensor) -> Tensor:
    """L2-normalise each cluster's row, then the whole descriptor, with one scale.

    Equals ``F.normalize(F.normalize(v, dim=2).flatten(1), dim=1).view_as(v)`` for v (B, K, D)
    but touches the (B, K, D) tensor three times instead of about eight (forward + backward).
    """
    norm = torch.linalg.vector_norm(v, dim=2, keepdim=True)  # (B, K, 1)
    inv = 1.0 / norm.clamp_min(EPS)  # intra-normalisation
    glob = (norm * inv).square().sum(dim=1, keepdim=True).sqrt().clamp_min(EPS)  # (B, 1, 1)
    return v * (inv / glob)


# ---- parameter-free poolings ------------------------------------------------------------------


class _FramePooling(Pooling):
    """A parameter-free pooling: the output has the input's width."""

    def __init__(self, input_dim: int, window_frames: int) -> None:
        super().__init__(input_dim, window_frames)
        self.out_dim = self.input_dim


@register_pooling("mean")
class MeanPooling(_FramePooling):
    """Average of the frames of the window."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=1)  # (B, D)

    def _sliding_chunks(self, x: Tensor, w: int, s: int) -> Iterator[Tensor]:
        xp = edge_pad(x, w)  # (N + W, D)
        n = num_windows(x.shape[0], s)
        yield window_sums(xp, w, s, n) / w  # (n, D)


@register_pooling("max")
class MaxPooling(_FramePooling):
    """Element-wise maximum over the frames of the window."""

    def forward(self, x: Tensor) -> Tensor:
        return x.amax(dim=1)  # (B, D)

    def _sliding_chunks(self, x: Tensor, w: int, s: int) -> Iterator[Tensor]:
        xp = edge_pad(x, w).t().unsqueeze(0)  # (1, D, N + W)
        n = num_windows(x.shape[0], s)
        yield F.max_pool1d(xp, w, s)[0, :, :n].t()  # (n, D)


@register_pooling("cnn")
class CNNPooling(Pooling):
    """Temporal convolution over the window, ReLU, then max over time (SoccerNet's CNN).

    SoccerNet slides a ``D x 20`` kernel (all features, 20 frames = 10 s) along time; here
    ``kernel_frames`` (default 20, clipped to the window) with ``pool_out`` filters
    (default: as many as input features).
    """

    def __init__(
        self,
        input_dim: int,
        window_frames: int,
        pool_out: int | None = None,
        kernel_frames: int = 20,
    ) -> None:
        super().__init__(input_dim, window_frames)
        self.kernel_frames = max(1, min(int(kernel_frames), self.window_frames))
        self.out_dim = int(pool_out) if pool_out else self.input_dim
        self.conv = nn.Conv1d(self.input_dim, self.out_dim, self.kernel_frames)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] < self.kernel_frames:
            raise ValueError(f"window of {x.shape[1]} frames < cnn kernel {self.kernel_frames}")
        h = F.relu(self.conv(x.transpose(1, 2)))  # (B, C, T - k + 1)
        return h.amax(dim=2)  # (B, C)

    def _sliding_chunks(self, x: Tensor, w: int, s: int) -> Iterator[Tensor]:
        if w < self.kernel_frames:
            raise ValueError(f"window of {w} frames < cnn kernel {self.kernel_frames}")
        xp = edge_pad(x, w).t().unsqueeze(0)  # (1, D, N + W)
        n = num_windows(x.shape[0], s)
        h = F.relu(self.conv(xp))  # (1, C, N + W - k + 1): every position computed once
        yield F.max_pool1d(h, w - self.kernel_frames + 1, s)[0, :, :n].t()  # (n, C)


# ---- learnable clustering poolings (LOUPE) ----------------------------------------------------


class _ClusterPooling(Pooling):
    """Soft assignment of frames to ``clusters`` learnt centres, LOUPE style.

    assignment = softmax(BN(x W)); the layer aggregates an ``agg_dim`` descriptor, then (as in
    LOUPE and SoccerNet v1) projects it to ``pool_out`` features with a bias-free "hidden"
    layer followed by context gating (``gating``). ``pool_out=None`` keeps the raw descriptor
    and no gating (sn-spotting's head).
    """

    has_clusters: ClassVar[bool] = True

    def __init__(
        self,
        input_dim: int,
        window_frames: int,
        clusters: int = 64,
        pool_out: int | None = 512,
        gating: bool = True,
    ) -> None:
        super().__init__(input_dim, window_frames)
        if int(clusters) < 1:
            raise ValueError(f"clusters must be >= 1, got {clusters}")
        self.clusters = int(clusters)
        d, k = self.input_dim, self.clusters
        self.cluster_weights = nn.Parameter(torch.randn(d, k) / math.sqrt(d))  # (D, K)
        self.cluster_bn = nn.BatchNorm1d(k)
        agg = self.agg_dim()
        if pool_out:
            self.hidden: nn.Linear | None = nn.Linear(agg, int(pool_out), bias=False)
            nn.init.normal_(self.hidden.weight, std=1.0 / math.sqrt(k))
            self.gating: ContextGating | None = ContextGating(int(pool_out)) if gating else None
            self.out_dim = int(pool_out)
        else:
            self.hidden, self.gating, self.out_dim = None, None, agg
        self.init_aggregation()

    def agg_dim(self) -> int:
        raise NotImplementedError

    def init_aggregation(self) -> None:
        """Create the aggregation's own parameters (cluster centres...), after the head's, so
        that parameters are drawn in the same order for every layer of the family."""

    def assign(self, x: Tensor) -> Tensor:
        """Soft assignment of each frame to the clusters, (..., D) -> (..., K)."""
        logits = x @ self.cluster_weights  # (..., K)
        shape = logits.shape
        logits = self.cluster_bn(logits.reshape(-1, self.clusters)).reshape(shape)
        return torch.softmax(logits, dim=-1)

    def aggregate(self, x: Tensor, a: Tensor) -> Tensor:
        """Normalised descriptor of each window from frames (B, T, D) and assignments (B, T, K)."""
        raise NotImplementedError

    def head(self, u: Tensor) -> Tensor:
        """Projection and context gating, (B, agg_dim) -> (B, out_dim)."""
        if self.hidden is not None:
            u = self.hidden(u)
        if self.gating is not None:
            u = self.gating(u)
        return u

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.aggregate(x, self.assign(x)))  # (B, out_dim)

    def _sliding_chunks(self, x: Tensor, w: int, s: int) -> Iterator[Tensor]:
        # Assignments once per frame; each chunk of windows aggregates strided views of them.
        xp = edge_pad(x, w)  # (N + W, D)
        a = self.assign(xp)  # (N + W, K)
        n = num_windows(x.shape[0], s)
        xv = xp.unfold(0, w, s)[:n].transpose(1, 2)  # (n, W, D) view
        av = a.unfold(0, w, s)[:n].transpose(1, 2)  # (n, W, K) view
        # up to 256 windows per chunk (a projection's weight is read once per chunk)
        chunk = max(1, min(256, (256 << 20) // (12 * self.agg_dim())))
        for i0 in range(0, n, chunk):
            yield self.head(self.aggregate(xv[i0 : i0 + chunk], av[i0 : i0 + chunk]))


@register_pooling("softdbow")
class SoftDBoW(_ClusterPooling):
    """Soft deep bag of words: L2-normalised sum of the soft assignments, (B, K)."""

    def agg_dim(self) -> int:
        return self.clusters

    def aggregate(self, x: Tensor, a: Tensor) -> Tensor:
        return F.normalize(a.sum(dim=1), dim=1)  # (B, K)

    def _sliding_chunks(self, x: Tensor, w: int, s: int) -> Iterator[Tensor]:
        a = self.assign(edge_pad(x, w))  # (N + W, K)
        n = num_windows(x.shape[0], s)
        bow = window_sums(a, w, s, n)  # (n, K)
        yield self.head(F.normalize(bow, dim=1))


@register_pooling("netfv")
class NetFV(_ClusterPooling):
    """NetFV: first- and second-order soft Fisher vector statistics, (B, 2 * K * D)."""

    def init_aggregation(self) -> None:
        d, k = self.input_dim, self.clusters
        self.centers = nn.Parameter(torch.randn(k, d) / math.sqrt(d))  # (K, D)
        self.covar_weights = nn.Parameter(1.0 + torch.randn(k, d) / math.sqrt(d))  # (K, D)

    def agg_dim(self) -> int:
        return 2 * self.clusters * self.input_dim

    def aggregate(self, x: Tensor, a: Tensor) -> Tensor:
        covar = self.covar_weights.square() + 1e-6  # (K, D) positive variances
        a_sum = a.sum(dim=1).unsqueeze(2)  # (B, K, 1)
        at = a.transpose(1, 2)  # (B, K, T)
        fv1 = torch.bmm(at, x)  # (B, K, D): sum_t a x
        fv2 = torch.bmm(at, x * x)  # (B, K, D): sum_t a x^2
        c = self.centers
        # second order: sum_t a (x - c)^2 / covar^2 - a_sum
        fv2 = (fv2 - 2 * fv1 * c + a_sum * c.square()) / covar.square() - a_sum
        fv2 = F.normalize(fv2.flatten(1), dim=1)  # (B, K * D)
        fv1 = (fv1 - a_sum * c) / covar  # first order
        fv1 = intra_global_normalize(fv1).flatten(1)  # (B, K * D)
        return torch.cat([fv1, fv2], dim=1)  # (B, 2 * K * D)

    def _sliding_chunks(self, x: Tensor, w: int, s: int) -> Iterator[Tensor]:
        """``aggregate`` + ``head`` of every window, with the per-frame work done once.

        x^2 and the assignments are computed once per frame (not once per window that holds the
        frame); the Fisher-vector algebra runs in place on each chunk's statistics with the
        per-cluster constants folded; the projection takes the first- and second-order halves
        as two GEMMs into one output instead of concatenating a (c, 2 K D) descriptor.
        """
        k, d = self.clusters, self.input_dim
        xp = edge_pad(x, w)  # (N + W, D)
        a = self.assign(xp)  # (N + W, K)
        n = num_windows(x.shape[0], s)
        xv = xp.unfold(0, w, s)[:n].transpose(1, 2)  # (n, W, D) views
        x2v = (xp * xp).unfold(0, w, s)[:n].transpose(1, 2)
        av = a.unfold(0, w, s)[:n]  # (n, K, W) view
        covar = self.covar_weights.square() + 1e-6  # (K, D)
        c = self.centers
        inv_cov = 1.0 / covar
        inv_cov2 = inv_cov.square()
        c_cov2 = -2.0 * c * inv_cov2  # fv2 = x2 / s^2 - 2 fv1 c / s^2 + A (c^2 / s^2 - 1)
        const2 = c.square() * inv_cov2 - 1.0
        c_cov = -c * inv_cov  # fv1 = fv1 / s - A c / s
        kd = k * d
        w1 = w2 = None
        if self.hidden is not None:
            w1, w2 = self.hidden.weight[:, :kd], self.hidden.weight[:, kd:]
        chunk = max(1, min(256, (256 << 20) // (12 * self.agg_dim())))
        for i0 in range(0, n, chunk):
            aw = av[i0 : i0 + chunk]  # (c, K, W)
            a_sum = aw.sum(2).unsqueeze(2)  # (c, K, 1)
            fv1 = torch.bmm(aw, xv[i0 : i0 + chunk])  # (c, K, D)
            fv2 = torch.bmm(aw, x2v[i0 : i0 + chunk])  # (c, K, D)
            fv2.mul_(inv_cov2).addcmul_(fv1, c_cov2).addcmul_(a_sum, const2)
            norm2 = torch.linalg.vector_norm(fv2.flatten(1), dim=1).clamp_min_(EPS)
            fv2.div_(norm2.view(-1, 1, 1))
            fv1.mul_(inv_cov).addcmul_(a_sum, c_cov)
            norm = torch.linalg.vector_norm(fv1, dim=2, keepdim=True)  # (c, K, 1)
            inv = 1.0 / norm.clamp_min(EPS)
            glob = (norm * inv).square().sum(dim=1, keepdim=True).sqrt().clamp_min(EPS)
            fv1.mul_(inv / glob)
            if w1 is None:
                yield torch.cat([fv1.flatten(1), fv2.flatten(1)], dim=1)
                continue
            u = F.linear(fv1.flatten(1), w1).addmm_(fv2.flatten(1), w2.t())
            yield u if self.gating is None else self.gating(u)


class _VLADBase(_ClusterPooling):
    """NetVLAD (``residual=True``) and NetRVLAD (residual-less) aggregation.

    v_k = sum_t a_tk (x_t - c_k) (NetRVLAD: sum_t a_tk x_t), intra-normalised per cluster,
    flattened (K * D, cluster-major) and L2-normalised.
    """

    residual: ClassVar[bool] = True

    def init_aggregation(self) -> None:
        if self.residual:
            d = self.input_dim
            self.centers = nn.Parameter(torch.randn(self.clusters, d) / math.sqrt(d))  # (K, D)

    def agg_dim(self) -> int:
        return self.clusters * self.input_dim

    def aggregate(self, x: Tensor, a: Tensor) -> Tensor:
        vlad = torch.bmm(a.transpose(1, 2), x)  # (B, K, D): one batched matmul a^T x
        if self.residual:  # minus a_sum * c, fused
            vlad = torch.addcmul(vlad, a.sum(dim=1).unsqueeze(2), self.centers, value=-1.0)
        return intra_global_normalize(vlad).flatten(1)  # (B, K * D)

    def _sliding_chunks(self, x: Tensor, w: int, s: int) -> Iterator[Tensor]:
        """Descriptors of chunks of windows from per-frame assignments, then the head.

        With a projection, the K * D x pool_out weight is read once per chunk: chunks of up to
        256 windows (like batched scoring) keep that traffic down while the descriptors of a
        chunk (c x K x D floats, normalised in place) bound the memory.
        """
        xp = edge_pad(x, w)  # (N + W, D)
        a = self.assign(xp)  # (N + W, K): once per frame
        n = num_windows(x.shape[0], s)
        xv = xp.unfold(0, w, s)[:n].transpose(1, 2)  # (n, W, D) view
        av = a.unfold(0, w, s)[:n]  # (n, K, W) view
        chunk = max(1, min(256, (256 << 20) // (4 * self.agg_dim())))
        for i0 in range(0, n, chunk):
            aw = av[i0 : i0 + chunk]
            vlad = torch.bmm(aw, xv[i0 : i0 + chunk])  # (c, K, D)
            if self.residual:
                vlad.addcmul_(aw.sum(2).unsqueeze(2), self.centers, value=-1.0)
            norm = torch.linalg.vector_norm(vlad, dim=2, keepdim=True)  # (c, K, 1)
            inv = 1.0 / norm.clamp_min(EPS)
            glob = (norm * inv).square().sum(dim=1, keepdim=True).sqrt().clamp_min(EPS)
            yield self.head(vlad.mul_(inv / glob).flatten(1))

    def _sliding_linear(
        self, x: Tensor, w: int, s: int, weight: Tensor, bias: Tensor | None
    ) -> Tensor:
        """Linear map of every window's descriptor without forming any descriptor, on the CPU
        (``sliding.vlad_sliding_linear``: per-frame work once, the cluster norms from a
        float64 Gram expansion). With gating, or on a GPU (float64 runs at 1/64 of float32 on
        an A10G), the descriptors are formed chunk by chunk in the model's precision instead."""
        if self.gating is not None or x.is_cuda:
            return super()._sliding_linear(x, w, s, weight, bias)
        lin = weight if self.hidden is None else weight @ self.hidden.weight  # (O, K * D)
        lin = lin.reshape(lin.shape[0], self.clusters, self.input_dim)  # (O, K, D)
        xp = edge_pad(x, w)  # (Np, D)
        centers = self.centers if self.residual else None
        y = vlad_sliding_linear(xp, self.assign(xp), lin, centers, w, s, num_windows(x.shape[0], s))
        return y if bias is None else y + bias


@register_pooling("netvlad")
class NetVLAD(_VLADBase):
    """NetVLAD: soft-assigned residuals to learnt centres, intra- and L2-normalised."""

    residual = True


@register_pooling("netrvlad")
class NetRVLAD(_VLADBase):
    """NetRVLAD: NetVLAD without the residual (soft-assigned sums of the frames)."""

    residual = False

"""One audio-video model class for every fusion method, by composition.

A model is the seed's pipeline ``pool -> dropout -> fc`` (then the sigmoid, in the loss) with a
merge point taken from the fusion registry (``avmodels.fusion_methods``). Stages before the
merge point run once per modality (``ModuleDict`` entries ``video`` / ``audio``), a fuse
operation joins the branches, and the stages after it are shared (entry ``fused``). There is no
class per method.

Methods whose ``requires_pretrained`` is set (seed methods 1 and 2) combine two *trained*
single-modality models: train ``component_configs(cfg)`` (a video and an audio model), then
``combine_trained(video_model, audio_model, method)``. ``build_model`` still builds them, as an
untrained container flagged ``requires_pretrained = True``, so that a saved combined model can
be rebuilt and loaded; ``build_trainable`` gives the ``PairModel`` that the trainer trains
instead (both single-modality models side by side).

Dropout is element-wise, so in distribution methods 4 and 5 differ only in where the mask is
drawn (per branch vs. on the concatenation); both are kept as in the seed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import torch
from torch import Tensor, nn

from avspot.avmodels.config import ModelConfig
from avspot.avmodels.fusion_methods import (
    FUSE_OPS,
    FUSED,
    FUSIONS,
    MODALITIES,
    STAGES,
    FusionMethod,
    concat_features,
)
from avspot.avmodels.pooling import create_pooling

__all__ = [
    "AVModel",
    "PairModel",
    "build_model",
    "build_trainable",
    "combine_trained",
    "component_configs",
    "count_parameters",
]


class AVModel(nn.Module):
    """Audio-video classifier: logits (B, 4) for card, subs, soccer, background.

    ``pool``, ``dropout`` and ``fc`` are ``ModuleDict`` s keyed by branch (``video``,
    ``audio``) before the merge point and ``fused`` after it.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.fusion: FusionMethod = FUSIONS[config.fusion]
        self.modalities: tuple[str, ...] = self.fusion.modalities
        self.requires_pretrained: bool = self.fusion.requires_pretrained
        self.pool = nn.ModuleDict()
        self.dropout = nn.ModuleDict()
        self.fc = nn.ModuleDict()
        widths = {
            m: config.video_dim if m == "video" else config.audio_dim for m in self.modalities
        }
        for i, stage in enumerate(STAGES):
            if i == self.fusion.merge_index:
                widths = {FUSED: sum(widths.values())}
            for key, width in widths.items():
                module, widths[key] = self._make_stage(stage, key, width)
                getattr(self, stage)[key] = module

    def _make_stage(self, stage: str, key: str, width: int) -> tuple[nn.Module, int]:
        cfg = self.config
        if stage == "pool":
            scale = self.fusion.pool_scale if key == FUSED else 1
            pool = create_pooling(
                cfg.pooling,
                width,
                cfg.window_frames,
                clusters=cfg.clusters,
                pool_out=cfg.pool_out * scale if cfg.pool_out else None,
                gating=cfg.gating,
                kernel_frames=cfg.cnn_kernel,
            )
            return pool, pool.out_dim
        if stage == "dropout":
            return nn.Dropout(cfg.dropout), width
        n = cfg.vocabulary.num_outputs  # the classes, then background
        return nn.Linear(width, n), n

    @property
    def window_frames(self) -> int:
        return self.config.window_frames

    def extra_repr(self) -> str:
        return f"fusion={self.fusion.name!r}, merge={self.fusion.merge!r}"

    def _inputs(self, video: Tensor | None, audio: Tensor | None, ndim: int) -> dict[str, Tensor]:
        given = {"video": video, "audio": audio}
        dims = {"video": self.config.video_dim, "audio": self.config.audio_dim}
        out: dict[str, Tensor] = {}
        for m in self.modalities:
            x = given[m]
            if x is None:
                raise ValueError(f"fusion {self.fusion.name!r} needs {m} input, got None")
            if x.dim() != ndim or x.shape[-1] != dims[m]:
                want = "(B, W, D)" if ndim == 3 else "(N, D)"
                raise ValueError(f"{m} input must be {want} with D={dims[m]}, got {tuple(x.shape)}")
            out[m] = x
        return out

    def forward(self, video: Tensor | None, audio: Tensor | None = None) -> Tensor:
        """video (B, W, Dv), audio (B, W, Da) -> logits (B, 4); an unused input may be None."""
        h = self._inputs(video, audio, ndim=3)
        for i, stage in enumerate(STAGES):
            if i == self.fusion.merge_index:
                h = {FUSED: FUSE_OPS[self.fusion.op](h)}
            modules = getattr(self, stage)
            h = {key: modules[key](x) for key, x in h.items()}
        if len(h) > 1:  # late merge: logits or probabilities
            return FUSE_OPS[self.fusion.op](h)
        return next(iter(h.values()))  # (B, 4)

    def forward_sequence(
        self,
        video: Tensor | None,
        audio: Tensor | None = None,
        window_frames: int | None = None,
        stride_frames: int = 1,
    ) -> Tensor:
        """Logits of every sliding window of a half, (ceil(N / S), 4); eval mode only.

        video (N, Dv), audio (N, Da). Equals ``forward`` on every window of the edge-padded
        half (``avmodels.sliding``), but each pooling shares per-frame work between windows
        and the (linear, in eval mode) dropout + FC are folded into it.
        """
        if self.training:
            raise RuntimeError("forward_sequence needs eval mode (call model.eval())")
        xs = self._inputs(video, audio, ndim=2)
        lengths = {x.shape[0] for x in xs.values()}
        if len(lengths) > 1:
            raise ValueError(f"video and audio must have the same number of frames, got {lengths}")
        w = self.config.window_frames if window_frames is None else int(window_frames)
        merge = self.fusion.merge_index
        with torch.no_grad():
            if merge == 0:  # early fusion: one pooling over concatenated frame features
                fc = self.fc[FUSED]
                return self.pool[FUSED].forward_sliding_linear(
                    concat_features(xs), w, stride_frames, fc.weight, fc.bias
                )
            if merge < len(STAGES):  # pooled vectors concatenated before a shared FC
                fc, offset, logits = self.fc[FUSED], 0, None
                for m in MODALITIES:
                    if m not in xs:
                        continue
                    pool = self.pool[m]
                    part = fc.weight[:, offset : offset + pool.out_dim]
                    offset += pool.out_dim
                    y = pool.forward_sliding_linear(xs[m], w, stride_frames, part)
                    logits = y if logits is None else logits + y
                return logits + fc.bias
            h = {
                m: self.pool[m].forward_sliding_linear(
                    x, w, stride_frames, self.fc[m].weight, self.fc[m].bias
                )
                for m, x in xs.items()
            }
            if len(h) > 1:
                return FUSE_OPS[self.fusion.op](h)
            return next(iter(h.values()))


def build_model(config: ModelConfig | Mapping[str, Any]) -> AVModel:
    """Build the model of ``config`` (a ModelConfig or a dict for ``ModelConfig.from_dict``).

    For ``prob_product`` / ``logit_mean`` this is an untrained container with
    ``requires_pretrained = True``: use ``combine_trained`` to fill it from trained models.
    """
    cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
    return AVModel(cfg)


def component_configs(config: ModelConfig) -> dict[str, ModelConfig]:
    """The single-modality configs to train for a ``requires_pretrained`` fusion method."""
    return {m: config.replace(fusion=m) for m in FUSIONS[config.fusion].modalities}


def combine_trained(video_model: AVModel, audio_model: AVModel, method: str) -> AVModel:
    """Join a trained video-only and audio-only model with fusion method 1 or 2.

    The branches are copied (the inputs are left untouched); their configs must agree on
    everything but ``fusion`` and the input widths.
    """
    allowed = sorted(n for n, f in FUSIONS.items() if f.requires_pretrained)
    if method not in allowed:
        raise ValueError(f"method: {method!r} does not combine trained models; valid: {allowed}")
    for model, m in ((video_model, "video"), (audio_model, "audio")):
        if tuple(getattr(model, "modalities", ())) != (m,):
            raise ValueError(f"{m}_model must be a {m}-only AVModel (fusion {m!r})")
    vc, ac = video_model.config, audio_model.config
    ignored = {"fusion", "video_dim", "audio_dim"}
    differ = [
        f.name
        for f in fields(ModelConfig)
        if f.name not in ignored and getattr(vc, f.name) != getattr(ac, f.name)
    ]
    if differ:
        raise ValueError(f"video and audio model configs differ in {differ}")
    cfg = vc.replace(fusion=method, audio_dim=ac.audio_dim)
    with torch.device("meta"):
        model = AVModel(cfg)  # skeleton without storage; every branch is replaced below
    for stage in STAGES:
        getattr(model, stage)["video"] = copy.deepcopy(getattr(video_model, stage)["video"])
        getattr(model, stage)["audio"] = copy.deepcopy(getattr(audio_model, stage)["audio"])
    return model.train(video_model.training)


class PairModel(nn.Module):
    """Two single-modality models trained side by side for a ``requires_pretrained`` fusion
    method (seed methods 1 and 2: ``prob_product``, ``logit_mean``).

    ``forward_parts`` gives both models' logits (each trained on its own loss; their parameters
    are disjoint, so one Adam over both equals two Adams); ``combined()`` is the fused model from
    ``combine_trained``, used for validation, spotting and saving.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.method = cfg.fusion
        parts = component_configs(cfg)
        self.video_model = build_model(parts["video"])
        self.audio_model = build_model(parts["audio"])

    def forward_parts(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """(B, W, Dv), (B, W, Da) -> video logits (B, 4), audio logits (B, 4)."""
        return self.video_model(video, audio), self.audio_model(video, audio)

    def fuse_logits(self, video_logits: Tensor, audio_logits: Tensor) -> Tensor:
        """The combined model's logits from the two parts' logits (no second forward pass)."""
        return FUSE_OPS[FUSIONS[self.method].op]({"video": video_logits, "audio": audio_logits})

    def combined(self) -> AVModel:
        return combine_trained(self.video_model, self.audio_model, self.method)

    def forward(self, video: Tensor, audio: Tensor) -> Tensor:
        return self.fuse_logits(*self.forward_parts(video, audio))


def build_trainable(config: ModelConfig) -> nn.Module:
    """The module a trainer optimises for ``config``: a ``PairModel`` for a
    ``requires_pretrained`` fusion method, else ``build_model(config)``."""
    if FUSIONS[config.fusion].requires_pretrained:
        return PairModel(config)
    return build_model(config)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (works on meta-device models, which hold no storage)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)

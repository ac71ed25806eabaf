"""One audio-video model class for every fusion method, by composition.

A model is the seed's pipeline ``pool -> dropout -> fc`` (then the sigmoid, in the loss) with a
merge point. Stages before the merge point run once per modality (``ModuleDict`` entries
``video`` / ``audio``), a fuse operation joins the branches, and the stages after it are shared
(entry ``fused``). A fusion method is data: a name, its modalities, its merge point and its fuse
operation, registered in ``FUSIONS``. There is no class per method.

Merge points (seed paper, section 3.3, Figure 1):

==============  =====  ==========  ===========  =============================================
name            seed   merge       fuse op      what is joined
==============  =====  ==========  ===========  =============================================
video           -      -           -            video only (the SoccerNet baseline)
audio           -      -           -            audio only
prob_product    1      probs       product      probabilities of two trained single models
logit_mean      2      logits      mean         logits of two trained single models
late_joint      3      logits      mean         as 2, both branches trained jointly
before_fc       4      dropped     concat       pooled vectors after each branch's dropout
before_dropout  5      pooled      concat       pooled vectors, then one shared dropout
early_1024      6      frames      concat       per-frame features (feature axis), pooled
                                                 to 2 * pool_out (1,024 at the default 512)
early_512       7      frames      concat       per-frame features, pooled to pool_out (512)
==============  =====  ==========  ===========  =============================================

Methods 1 and 2 combine two *trained* single-modality models: train ``component_configs(cfg)``
(a video and an audio model), then ``combine_trained(video_model, audio_model, method)``.
``build_model`` still builds them, as an untrained container flagged
``requires_pretrained = True``, so that a saved combined model can be rebuilt and loaded; a
trainer must not train such a model. Method 1 outputs ``logit(p_v * p_a)`` so that every model
outputs logits.

Dropout is element-wise, so in distribution methods 4 and 5 differ only in where the mask is
drawn (per branch vs. on the concatenation); both are kept as in the seed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from .config import NUM_OUTPUTS, ModelConfig
from .pooling import create_pooling

__all__ = [
    "FUSED",
    "FUSIONS",
    "MERGE_POINTS",
    "STAGES",
    "AVModel",
    "FusionMethod",
    "build_model",
    "combine_trained",
    "component_configs",
    "count_parameters",
    "register_fusion",
]

STAGES = ("pool", "dropout", "fc")
# A merge point sits before the stage of the same index; "logits"/"probs" follow the pipeline.
MERGE_POINTS = ("frames", "pooled", "dropped", "logits", "probs")
FUSED = "fused"
MODALITIES = ("video", "audio")


@dataclass(frozen=True)
class FusionMethod:
    """Where the video and audio branches merge, and how."""

    name: str
    modalities: tuple[str, ...]
    merge: str | None = None  # one of MERGE_POINTS; None for a single-modality model
    op: str | None = None  # concat | mean | prob_product
    seed_method: int | None = None  # number in the seed paper
    requires_pretrained: bool = False  # combines two trained single-modality models
    pool_scale: int = 1  # pooled width multiplier of an early-fused pooling
    description: str = ""

    @property
    def merge_index(self) -> int:
        """Index of the merge point in MERGE_POINTS (len(MERGE_POINTS) when never merged)."""
        return len(MERGE_POINTS) if self.merge is None else MERGE_POINTS.index(self.merge)


FUSIONS: dict[str, FusionMethod] = {}


def register_fusion(method: FusionMethod) -> FusionMethod:
    """Register a fusion method by name (checked for consistency)."""
    if method.name in FUSIONS:
        raise ValueError(f"fusion {method.name!r} is already registered")
    if any(m not in MODALITIES for m in method.modalities) or not method.modalities:
        raise ValueError(f"fusion {method.name!r}: modalities must come from {MODALITIES}")
    if (len(method.modalities) > 1) != (method.merge is not None):
        raise ValueError(f"fusion {method.name!r}: a merge point needs two modalities")
    if method.merge is not None:
        if method.merge not in MERGE_POINTS or method.op not in _FUSE_OPS:
            raise ValueError(
                f"fusion {method.name!r}: merge must be one of {MERGE_POINTS} and op one of "
                f"{sorted(_FUSE_OPS)}"
            )
        if (method.op == "concat") != (method.merge_index < len(STAGES)):
            raise ValueError(f"fusion {method.name!r}: concat merges before the fc only")
    FUSIONS[method.name] = method
    return method


def _concat(h: dict[str, Tensor]) -> Tensor:
    # Feature axis (last), never time: (B, T, Dv) + (B, T, Da) -> (B, T, Dv + Da).
    parts = [h[m] for m in MODALITIES if m in h]
    if parts[0].dim() == 3 and any(p.shape[1] != parts[0].shape[1] for p in parts):
        raise ValueError(f"early fusion needs equal window lengths, got {[p.shape for p in parts]}")
    return torch.cat(parts, dim=-1)


def _mean(h: dict[str, Tensor]) -> Tensor:
    return torch.stack([h[m] for m in MODALITIES if m in h]).mean(dim=0)


def _prob_product(h: dict[str, Tensor]) -> Tensor:
    # logit(prod_i sigmoid(l_i)), computed in log space: log p - log(1 - p).
    log_p = sum(nn.functional.logsigmoid(h[m]) for m in MODALITIES if m in h)
    tiny = torch.finfo(log_p.dtype).tiny
    return log_p - torch.log((-torch.expm1(log_p)).clamp_min(tiny))


_FUSE_OPS = {"concat": _concat, "mean": _mean, "prob_product": _prob_product}

for _m in (
    FusionMethod("video", ("video",), description="video only (SoccerNet baseline)"),
    FusionMethod("audio", ("audio",), description="audio only"),
    FusionMethod(
        "prob_product", MODALITIES, "probs", "prob_product", 1, True,
        description="product of the probabilities of two trained single-modality models",
    ),
    FusionMethod(
        "logit_mean", MODALITIES, "logits", "mean", 2, True,
        description="mean of the logits of two trained single-modality models",
    ),
    FusionMethod(
        "late_joint", MODALITIES, "logits", "mean", 3,
        description="mean of the branch logits, both branches trained jointly",
    ),
    FusionMethod(
        "before_fc", MODALITIES, "dropped", "concat", 4,
        description="concatenate each branch's pooled+dropout vector before the shared FC",
    ),
    FusionMethod(
        "before_dropout", MODALITIES, "pooled", "concat", 5,
        description="concatenate pooled vectors, then one shared dropout and FC",
    ),
    FusionMethod(
        "early_1024", MODALITIES, "frames", "concat", 6, pool_scale=2,
        description="concatenate per-frame features, pool to 2 * pool_out (1,024)",
    ),
    FusionMethod(
        "early_512", MODALITIES, "frames", "concat", 7,
        description="concatenate per-frame features, pool to pool_out (512)",
    ),
):  # fmt: skip
    register_fusion(_m)


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
        return nn.Linear(width, NUM_OUTPUTS), NUM_OUTPUTS

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
                h = {FUSED: _FUSE_OPS[self.fusion.op](h)}
            modules = getattr(self, stage)
            h = {key: modules[key](x) for key, x in h.items()}
        if len(h) > 1:  # late merge: logits or probabilities
            return _FUSE_OPS[self.fusion.op](h)
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
                    _concat(xs), w, stride_frames, fc.weight, fc.bias
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
                return _FUSE_OPS[self.fusion.op](h)
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


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (works on meta-device models, which hold no storage)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)

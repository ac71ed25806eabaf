"""The fusion registry: where the video and audio branches merge, and how (data, not classes).

A fusion method is a name, its modalities, its merge point and its fuse operation; ``FUSIONS``
holds them by name and ``avmodels.fusion.AVModel`` is built from one. Adding a fusion point is
one ``register_fusion(FusionMethod(...))`` call here; ``tests/avmodels/test_fusion.py``
iterates over the registry, so the new method is covered by the contract tests at once.

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

``requires_pretrained`` methods (1 and 2) combine two *trained* single-modality models; the
trainer trains both side by side (``avmodels.fusion.PairModel``). Method 1 outputs
``logit(p_v * p_a)`` so that every model outputs logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "FUSED",
    "FUSE_OPS",
    "FUSIONS",
    "MERGE_POINTS",
    "MODALITIES",
    "STAGES",
    "FusionMethod",
    "concat_features",
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
    label: str = ""  # the seed's table row name, e.g. "Merging method 4 (before the FC layer)"

    @property
    def single_modality(self) -> bool:
        return len(self.modalities) == 1

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
        if method.merge not in MERGE_POINTS or method.op not in FUSE_OPS:
            raise ValueError(
                f"fusion {method.name!r}: merge must be one of {MERGE_POINTS} and op one of "
                f"{sorted(FUSE_OPS)}"
            )
        if (method.op == "concat") != (method.merge_index < len(STAGES)):
            raise ValueError(f"fusion {method.name!r}: concat merges before the fc only")
    FUSIONS[method.name] = method
    return method


def concat_features(h: dict[str, Tensor]) -> Tensor:
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


FUSE_OPS = {"concat": concat_features, "mean": _mean, "prob_product": _prob_product}

for _m in (
    FusionMethod(
        "video", ("video",), description="video only (SoccerNet baseline)",
        label="Video baseline",
    ),
    FusionMethod(
        "audio", ("audio",), description="audio only", label="Audio baseline",
    ),
    FusionMethod(
        "prob_product", MODALITIES, "probs", "prob_product", 1, True,
        description="product of the probabilities of two trained single-modality models",
        label="Merging method 1 (product of probabilities)",
    ),
    FusionMethod(
        "logit_mean", MODALITIES, "logits", "mean", 2, True,
        description="mean of the logits of two trained single-modality models",
        label="Merging method 2 (mean of logits)",
    ),
    FusionMethod(
        "late_joint", MODALITIES, "logits", "mean", 3,
        description="mean of the branch logits, both branches trained jointly",
        label="Merging method 3 (joint late fusion)",
    ),
    FusionMethod(
        "before_fc", MODALITIES, "dropped", "concat", 4,
        description="concatenate each branch's pooled+dropout vector before the shared FC",
        label="Merging method 4 (before the FC layer)",
    ),
    FusionMethod(
        "before_dropout", MODALITIES, "pooled", "concat", 5,
        description="concatenate pooled vectors, then one shared dropout and FC",
        label="Merging method 5 (before dropout)",
    ),
    FusionMethod(
        "early_1024", MODALITIES, "frames", "concat", 6, pool_scale=2,
        description="concatenate per-frame features, pool to 2 * pool_out (1,024)",
        label="Merging method 6 (before pooling, 1024)",
    ),
    FusionMethod(
        "early_512", MODALITIES, "frames", "concat", 7,
        description="concatenate per-frame features, pool to pool_out (512)",
        label="Merging method 7 (before pooling, 512)",
    ),
):  # fmt: skip
    register_fusion(_m)

"""The seed's hand-run grid: which fusion point, pooling (NetRVLAD k=64 / NetVLAD k=512) and window win?

9 models (video-only, audio-only and the 7 fusion methods) x 2 poolings x 3 windows (20/30/60 s)
= 54 trials, sampled exhaustively (GridSampler). Fusion methods prob_product and logit_mean train
their video and audio models inside the same trial, with the same budget.
"""

from __future__ import annotations

from typing import Any

from avspot.search.spaces._common import FUSION_METHODS

POOLING_K = {"netrvlad-64": ("netrvlad", 64), "netvlad-512": ("netvlad", 512)}

GRID = {"fusion": FUSION_METHODS, "_pooling_k": list(POOLING_K), "window_s": [20.0, 30.0, 60.0]}
DEFAULTS = {"dropout": 0.4, "lr": 1e-3, "schedule": "step", "batch_size": 256}


def space(trial: Any) -> dict[str, Any]:
    trial.suggest_categorical("fusion", GRID["fusion"])
    pooling_k = trial.suggest_categorical("_pooling_k", GRID["_pooling_k"])
    trial.suggest_categorical("window_s", GRID["window_s"])
    pooling, clusters = POOLING_K[pooling_k]
    return {"pooling": pooling, "clusters": clusters}

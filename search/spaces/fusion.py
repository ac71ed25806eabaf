"""Where should audio join video, with which pooling, window and schedule? (TPE over all of it)

The conditional space of the platform: fusion method (video-only and audio-only included, so a
search can show what fusion buys), pooling and its cluster count where the pooling has clusters,
window 10-60 s, dropout, learning rate, schedule and its parameters, batch size, and the pooled
width. Cluster counts stop at 64 so that a trial fits a CPU worker (an early-fusion NetFV with
k=512 has over a billion parameters); the seed's k=512 NetVLAD lives in the `paper` space.

The first three trials are the seed's configuration (NetVLAD k=64 with a 512-wide projection,
20 s windows, dropout 0.4, step decay) for video only, audio only and fusion before the last FC
(`BASELINES`): whatever TPE finds afterwards, the search itself shows what fusion buys at equal
settings, and the leaderboard has single-modality trials to compare the best one against.
"""

from __future__ import annotations

from typing import Any

from avspot.search.spaces._common import CLUSTERED_POOLINGS, FUSION_METHODS, POOLINGS

_SEED = {
    "pooling": "netvlad",
    "clusters": 64,
    "pool_out": 512,
    "window_s": 20.0,
    "dropout": 0.4,
    "lr": 1e-3,
    "schedule": "step",
    "patience": 3,
    "batch_size": 128,
}
BASELINES = [{"fusion": f, **_SEED} for f in ("video", "audio", "before_fc")]


def space(trial: Any) -> dict[str, Any]:
    trial.suggest_categorical("fusion", FUSION_METHODS)
    pooling = trial.suggest_categorical("pooling", POOLINGS)
    if pooling in CLUSTERED_POOLINGS:
        trial.suggest_categorical("clusters", [8, 16, 32, 64])
    trial.suggest_categorical("pool_out", [128, 256, 512])
    trial.suggest_float("window_s", 10.0, 60.0, step=5.0)
    trial.suggest_float("dropout", 0.0, 0.6)
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    schedule = trial.suggest_categorical("schedule", ["step", "cosine", "plateau"])
    if schedule in ("step", "plateau"):
        trial.suggest_int("patience", 1, 4)
    trial.suggest_categorical("batch_size", [64, 128, 256])
    return None

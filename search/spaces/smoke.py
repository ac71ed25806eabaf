"""Does the whole loop run, and does fusion beat either modality? A 4-trial grid for tests and the quickstart.

Video-only, audio-only and two fusion points (before the last FC, and per-frame early fusion) with a
small NetVLAD (k=16, 128-wide projection), 10 s windows, 3 epochs: minutes on 2 CPUs.
"""

from __future__ import annotations

from typing import Any

GRID = {"fusion": ["video", "audio", "before_fc", "early_512"]}
DEFAULTS = {
    "max_epochs": 3,
    "batch_size": 64,
    "schedule": "cosine",
    "lr": 3e-3,
    "pooling": "netvlad",
    "clusters": 16,
    "pool_out": 128,
    "window_s": 10.0,
}


def space(trial: Any) -> dict[str, Any] | None:
    trial.suggest_categorical("fusion", GRID["fusion"])
    return None

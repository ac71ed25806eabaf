"""The model vocabulary the spaces sample from, read from the model registries (never copied)."""

from __future__ import annotations

from avspot.avmodels.fusion_methods import FUSIONS
from avspot.avmodels.pooling import POOLINGS as _POOLING_REGISTRY

# Video-only and audio-only first, then the seed's fusion methods 1-7 (registration order).
FUSION_METHODS: list[str] = list(FUSIONS)
POOLINGS: list[str] = list(_POOLING_REGISTRY)
CLUSTERED_POOLINGS: set[str] = {n for n, cls in _POOLING_REGISTRY.items() if cls.has_clusters}

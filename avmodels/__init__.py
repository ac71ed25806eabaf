"""Models: pooling layers, context gating, audio-video fusion, training, spotting, metrics.

The public names below are imported lazily (PEP 562), so ``import avspot.avmodels`` stays cheap
and never imports Ray or MLflow; torch is imported on first use of a model name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ModelConfig": "config",
    "NUM_OUTPUTS": "config",
    "OUTPUT_NAMES": "config",
    "POOLINGS": "pooling",
    "Pooling": "pooling",
    "create_pooling": "pooling",
    "register_pooling": "pooling",
    "ContextGating": "gating",
    "FUSIONS": "fusion",
    "AVModel": "fusion",
    "FusionMethod": "fusion",
    "build_model": "fusion",
    "combine_trained": "fusion",
    "component_configs": "fusion",
    "count_parameters": "fusion",
    "register_fusion": "fusion",
    "edge_pad": "sliding",
    "num_windows": "sliding",
    "windows_reference": "sliding",
}

__all__ = [
    "FUSIONS",
    "NUM_OUTPUTS",
    "OUTPUT_NAMES",
    "POOLINGS",
    "AVModel",
    "ContextGating",
    "FusionMethod",
    "ModelConfig",
    "Pooling",
    "build_model",
    "combine_trained",
    "component_configs",
    "count_parameters",
    "create_pooling",
    "edge_pad",
    "num_windows",
    "register_fusion",
    "register_pooling",
    "windows_reference",
]

if TYPE_CHECKING:
    from .config import NUM_OUTPUTS, OUTPUT_NAMES, ModelConfig
    from .fusion import (
        FUSIONS,
        AVModel,
        FusionMethod,
        build_model,
        combine_trained,
        component_configs,
        count_parameters,
        register_fusion,
    )
    from .gating import ContextGating
    from .pooling import POOLINGS, Pooling, create_pooling, register_pooling
    from .sliding import edge_pad, num_windows, windows_reference


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

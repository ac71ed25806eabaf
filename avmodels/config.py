"""``ModelConfig``: the validated, JSON-serialisable description of one audio-video model."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["NUM_OUTPUTS", "OUTPUT_NAMES", "ModelConfig"]

# Logit order of every model (docs/architecture.md): card, subs, soccer, background.
OUTPUT_NAMES = ("card", "subs", "soccer", "background")
NUM_OUTPUTS = len(OUTPUT_NAMES)

_INT_FIELDS = ("clusters", "video_dim", "audio_dim", "cnn_kernel")
_FLOAT_FIELDS = ("window_s", "fps", "dropout")


@dataclass(frozen=True)
class ModelConfig:
    """What to build: fusion method, pooling layer and their sizes (seed defaults).

    ``dropout`` is the drop probability (0.4 == the seed's keep probability 0.6).
    ``pool_out`` is the projection ("hidden") width of the clustering poolings and the filter
    count of ``cnn``; ``None`` keeps the raw descriptor (K * D for NetVLAD, sn-spotting's head).
    ``gating`` adds context gating after that projection (LOUPE, the seed).
    ``cnn_kernel`` is the temporal kernel of ``cnn`` in frames (SoccerNet: 20).
    """

    fusion: str = "video"
    pooling: str = "netvlad"
    clusters: int = 64
    window_s: float = 20.0
    fps: float = 2.0
    dropout: float = 0.4
    video_dim: int = 512
    audio_dim: int = 512
    pool_out: int | None = 512
    gating: bool = True
    cnn_kernel: int = 20

    def __post_init__(self) -> None:
        self.validate()

    # -- derived --------------------------------------------------------------------------------

    @property
    def window_frames(self) -> int:
        """Frames per window, W = round(window_s * fps) (seed: 2 frames/s, 20 s -> 40)."""
        return round(self.window_s * self.fps)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The inputs this model reads: ("video",), ("audio",) or ("video", "audio")."""
        from .fusion import FUSIONS

        return FUSIONS[self.fusion].modalities

    # -- validation -----------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ValueError naming the parameter and the valid choices."""
        from .fusion import FUSIONS
        from .pooling import POOLINGS

        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion: unknown value {self.fusion!r}; valid: {sorted(FUSIONS)}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling: unknown value {self.pooling!r}; valid: {sorted(POOLINGS)}")
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ValueError(f"{name}: must be a finite number, got {value!r}")
        if self.window_s <= 0 or self.fps <= 0:
            raise ValueError(
                f"window_s and fps: must be > 0, got window_s={self.window_s}, fps={self.fps}"
            )
        if self.window_frames < 1:
            raise ValueError(
                f"window_s: window_s * fps must round to >= 1 frame, got {self.window_s}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: drop probability must be in [0, 1), got {self.dropout}")
        po = self.pool_out
        if po is not None and (isinstance(po, bool) or not isinstance(po, int) or po < 1):
            raise ValueError(f"pool_out: must be an integer >= 1 or None, got {po!r}")
        if not isinstance(self.gating, bool):
            raise ValueError(f"gating: must be true or false, got {self.gating!r}")

    # -- serialisation --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (``from_dict`` inverts it)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build from a dict; strings (``--set key=value``) are converted to the field types.

        Unknown keys raise ValueError naming the key and the valid fields.
        """
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"unknown model parameter(s) {unknown}; valid: {sorted(valid)}")
        return cls(**{k: _coerce(k, v) for k, v in data.items()})

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied (validated, unknown names rejected)."""
        merged = self.to_dict()
        unknown = sorted(set(changes) - set(merged))
        if unknown:
            raise ValueError(f"unknown model parameter(s) {unknown}; valid: {sorted(merged)}")
        merged.update(changes)
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in merged.items()})


def _coerce(name: str, value: Any) -> Any:
    """Convert a string value to the type of field ``name``; other values pass unchanged."""
    if not isinstance(value, str):
        if name in _FLOAT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    try:
        if name in _INT_FIELDS:
            return int(text)
        if name in _FLOAT_FIELDS:
            return float(text)
        if name == "pool_out":
            return None if text.lower() in ("none", "null") else int(text)
        if name == "gating":
            lowered = text.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
    except ValueError:
        raise ValueError(f"{name}: cannot parse {value!r}") from None
    return text

"""``ModelConfig``: the validated, JSON-serialisable description of one audio-video model."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from avspot.avmodels.fusion_methods import FUSIONS
from avspot.avmodels.overrides import check_fields
from avspot.avmodels.pooling import POOLINGS
from avspot.datasets.errors import DataError
from avspot.datasets.labels import LABEL_SETS, LabelSet, get_label_set

__all__ = ["ModelConfig"]

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
    ``label_set`` is the vocabulary the model spots (the table's: v1's 3 classes, v2's 17); the
    model has one output per class plus background. ``audio_dim`` 0: a table without audio
    (video-only fusion).
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
    label_set: str = "v1"

    def __post_init__(self) -> None:
        self.validate()

    # -- derived --------------------------------------------------------------------------------

    @property
    def window_frames(self) -> int:
        """Frames per window, W = round(window_s * fps) (seed: 2 frames/s, 20 s -> 40)."""
        return round(self.window_s * self.fps)

    @property
    def vocabulary(self) -> LabelSet:
        """The label set: class names in order (``classes``), ``num_outputs``."""
        return get_label_set(self.label_set)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The inputs this model reads: ("video",), ("audio",) or ("video", "audio")."""
        return FUSIONS[self.fusion].modalities

    # -- validation -----------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise DataError naming the parameter and the valid choices."""
        if self.fusion not in FUSIONS:
            raise DataError(
                f"fusion: unknown value {self.fusion!r}; valid: {sorted(FUSIONS)}", field="fusion"
            )
        if self.pooling not in POOLINGS:
            raise DataError(
                f"pooling: unknown value {self.pooling!r}; valid: {sorted(POOLINGS)}",
                field="pooling",
            )
        if self.label_set not in LABEL_SETS:
            raise DataError(
                f"label_set: unknown value {self.label_set!r}; valid: {sorted(LABEL_SETS)}",
                field="label_set",
            )
        for name in _INT_FIELDS:
            value = getattr(self, name)
            low = 0 if name == "audio_dim" and "audio" not in self.modalities else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise DataError(f"{name}: must be an integer >= {low}, got {value!r}", field=name)
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise DataError(f"{name}: must be a finite number, got {value!r}", field=name)
        if self.window_s <= 0 or self.fps <= 0:
            raise DataError(
                f"window_s and fps: must be > 0, got window_s={self.window_s}, fps={self.fps}",
                field="window_s",
            )
        if self.window_frames < 1:
            raise DataError(
                f"window_s: window_s * fps must round to >= 1 frame, got {self.window_s}",
                field="window_s",
            )
        if not 0.0 <= self.dropout < 1.0:
            raise DataError(
                f"dropout: drop probability must be in [0, 1), got {self.dropout}", field="dropout"
            )
        po = self.pool_out
        if po is not None and (isinstance(po, bool) or not isinstance(po, int) or po < 1):
            raise DataError(
                f"pool_out: must be an integer >= 1 or None, got {po!r}", field="pool_out"
            )
        if not isinstance(self.gating, bool):
            raise DataError(f"gating: must be true or false, got {self.gating!r}", field="gating")

    # -- serialisation --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (``from_dict`` inverts it)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build from a dict of typed values (JSON); unknown keys and values of the wrong type
        raise DataError naming the key."""
        return cls(**check_fields(cls, dict(data), "model"))

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied (validated, unknown names rejected)."""
        return dataclasses.replace(self, **check_fields(type(self), changes, "model"))

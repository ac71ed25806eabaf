"""``TrainConfig``: one training run (the model and every trainer setting).

``merge`` applies typed values to a config: the keys are the fields of ``TrainConfig`` and of
``ModelConfig`` (``model.`` prefix optional), the same keys ``avspot train --set`` and ``avspot
search --set`` accept (the command line parses those strings, ``search.cli.sets``) and that a
search space suggests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from avspot.avmodels.config import ModelConfig
from avspot.avmodels.device import PRECISIONS, check_device_name
from avspot.avmodels.fusion_methods import FUSIONS
from avspot.avmodels.metrics import MONITORS
from avspot.avmodels.overrides import check_value, field_types
from avspot.avmodels.postprocess import POSTPROCESS
from avspot.datasets.errors import DataError

__all__ = ["CLASS_WEIGHTS", "SCHEDULES", "TrainConfig"]

SCHEDULES = ("step", "cosine", "plateau")
CLASS_WEIGHTS = ("none", "balanced")


@dataclass
class TrainConfig:
    """One training run: the model and every trainer setting (JSON-able via to_dict)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lr: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 30
    schedule: str = "step"  # step | cosine | plateau
    lr_decay: float = 10.0  # step/plateau: divide the rate by this
    patience: int = 5  # step/plateau: epochs without improvement before a decay
    stop_patience: int = 10  # stop after this many epochs without improvement
    max_decays: int = 2  # step: stop instead of decaying more than this
    min_lr: float = 0.0  # cosine/plateau floor
    monitor: str = "val_map"  # val_map | val_average_map
    class_weight: str = "none"  # none | balanced (pos_weight per output from train frequencies)
    weight_decay: float = 0.0
    seed: int = 0
    spot_method: str = "nms"  # center | max | nms: validation spotting post-processing
    val_spotting: bool = True  # compute val_average_map each epoch (required by its monitor)
    val_stride_s: float = 1.0  # stride of the per-epoch validation spotting (final scoring: 1 s)
    val_spot_every: int = 1  # per-epoch spotting of every k-th validation half (final: all)
    num_threads: int = 0  # torch threads; 0 leaves torch's default
    device: str = "auto"  # auto (a GPU when there is one) | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 autocast on a GPU that has it, else fp32) | fp32 | bf16

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise DataError naming the first bad field and its valid values."""
        choices = {
            "schedule": SCHEDULES,
            "monitor": MONITORS,
            "class_weight": CLASS_WEIGHTS,
            "spot_method": tuple(POSTPROCESS),
            "precision": PRECISIONS,
        }
        for name, valid in choices.items():
            value = getattr(self, name)
            if value not in valid:
                raise DataError(f"{name}={value!r}: unknown; valid: {', '.join(valid)}", field=name)
        positive = (
            "lr", "batch_size", "max_epochs", "lr_decay", "patience", "stop_patience",
            "val_stride_s", "val_spot_every",
        )  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise DataError(f"{name}={getattr(self, name)!r}: must be > 0", field=name)
        for name in ("max_decays", "min_lr", "weight_decay", "num_threads"):
            if getattr(self, name) < 0:
                raise DataError(f"{name}={getattr(self, name)!r}: must be >= 0", field=name)
        check_device_name(self.device)
        frames = self.val_stride_s * self.model.fps
        if abs(frames - round(frames)) > 1e-9:
            raise DataError(
                f"val_stride_s={self.val_stride_s!r}: must be a whole number of frames at "
                f"{self.model.fps:g} fps",
                field="val_stride_s",
            )
        if self.monitor == "val_average_map" and not self.val_spotting:
            raise DataError("monitor=val_average_map needs val_spotting=true", field="monitor")

    @property
    def pair(self) -> bool:
        """True when the fusion method combines two separately trained models."""
        return FUSIONS[self.model.fusion].requires_pretrained

    def to_dict(self) -> dict[str, Any]:
        """JSON-able nested dict (``model`` is the ModelConfig's dict)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        out["model"] = self.model.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Inverse of to_dict; unknown keys raise DataError."""
        d = dict(d)
        model = ModelConfig.from_dict(d.pop("model", {}))
        known = {f.name for f in dataclasses.fields(cls)} - {"model"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(f"train config: unknown keys {unknown}; valid: {sorted(known)}")
        return cls(model=model, **d)

    def flat(self) -> dict[str, Any]:
        """Trainer and model fields in one flat dict (the keys ``--set`` accepts)."""
        out = {k: v for k, v in self.to_dict().items() if k != "model"}
        out.update(self.model.to_dict())
        return out

    def for_table(
        self,
        *,
        video_dim: int,
        audio_dim: int,
        label_set: str,
        fps: float,
        given: Iterable[str] = (),
    ) -> TrainConfig:
        """This config fitted to a table: the feature widths, label set and frame rate are the
        table's. A key in ``given`` (set explicitly) must agree; a fusion that reads audio
        needs a table that has it. DataError names the field."""
        table = {
            "video_dim": int(video_dim),
            "audio_dim": int(audio_dim),
            "label_set": label_set,
            "fps": float(fps),
        }
        given = {k.removeprefix("model.") for k in given}
        for key, value in table.items():
            if key in given and getattr(self.model, key) != value:
                raise DataError(
                    f"{key}={getattr(self.model, key)!r}: the table's is {value!r}", field=key
                )
        if not audio_dim and "audio" in FUSIONS[self.model.fusion].modalities:
            raise DataError(
                f"fusion={self.model.fusion!r} reads audio and the table has none: use "
                "fusion=video",
                field="fusion",
            )
        return dataclasses.replace(self, model=dataclasses.replace(self.model, **table))

    @staticmethod
    def key_types() -> dict[str, tuple[str, Any]]:
        """{key: ("train" | "model", field type)} of every key ``merge`` accepts."""
        out: dict[str, tuple[str, Any]] = {
            k: ("model", t) for k, t in field_types(ModelConfig).items()
        }
        out.update({k: ("train", t) for k, t in field_types(TrainConfig).items() if k != "model"})
        return out

    def merge(self, values: Mapping[str, Any]) -> TrainConfig:
        """A copy with typed ``values`` applied (trainer or model fields; a ``model.`` prefix
        is allowed). Values must have the field's type (an int is taken for a float): strings
        are parsed only by the command line. DataError names the first unknown or bad key."""
        keys = self.key_types()
        train_kw: dict[str, Any] = {}
        model_kw: dict[str, Any] = {}
        for raw_key, value in values.items():
            key = raw_key.removeprefix("model.")
            if key not in keys or (raw_key.startswith("model.") and keys[key][0] != "model"):
                raise DataError(
                    f"{raw_key}: unknown key; valid keys: {', '.join(sorted(keys))}", field=raw_key
                )
            role, typ = keys[key]
            (model_kw if role == "model" else train_kw)[key] = check_value(key, value, typ)
        model = dataclasses.replace(self.model, **model_kw)
        return dataclasses.replace(self, model=model, **train_kw)

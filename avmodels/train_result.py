"""What a training run hands its caller: an :class:`EpochEnd` after every epoch and the
:class:`TrainResult` at the end (the best epoch's model, metrics and history)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from avspot.avmodels import names as N
from avspot.avmodels.train_config import TrainConfig

__all__ = ["EpochEnd", "TrainResult"]


@dataclass(frozen=True)
class EpochEnd:
    """What the trainer hands its caller after an epoch (the state is complete: a checkpoint
    saved now resumes at the next epoch)."""

    epoch: int
    metrics: dict[str, float]
    best: float  # the best monitored value so far
    best_epoch: int
    last: bool  # training ends after this epoch (schedule, early stopping or max_epochs)


@dataclass
class TrainResult:
    """Outcome of one run: the best model (weights of the best epoch) and its metrics."""

    config: TrainConfig
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    model: nn.Module | None
    stop_reason: str  # max_epochs | early_stop | stopped (by the caller) | interrupted
    wall_s: float
    best_chunk: dict[str, Any] = field(default_factory=dict)  # confusion at the best epoch

    @property
    def per_class(self) -> dict[str, dict[str, float]]:
        """Best epoch's per-class chunk AP and spotting Average-mAP (loose)."""
        m = self.best_metrics
        return {
            c: {
                "chunk_ap": m.get(N.val_ap(c), float("nan")),
                "average_map": m.get(N.val_average_map_of(c), float("nan")),
            }
            for c in self.config.model.vocabulary.classes
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (without the model)."""
        return {
            "config": self.config.to_dict(),
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "per_class": self.per_class,
            "history": self.history,
            "stop_reason": self.stop_reason,
            "wall_s": self.wall_s,
            "best_chunk": self.best_chunk,
        }

    def summary(self) -> str:
        """One readable block."""
        m = self.best_metrics
        mc = self.config.model
        head = ", ".join(
            f"{k}={getattr(mc, k)}"
            for k in ("fusion", "pooling", "clusters", "window_s")
            if hasattr(mc, k)
        )
        lines = [
            f"trained {head}",
            f"  epochs run {len(self.history)}, best epoch {self.best_epoch} "
            f"(monitor {self.config.monitor}), stopped: {self.stop_reason}, "
            f"wall {self.wall_s:.1f}s",
            f"  val_map {m.get(N.VAL_MAP, float('nan')):.4f}   "
            f"val_average_map loose {m.get(N.VAL_AVERAGE_MAP, float('nan')):.4f}   "
            f"tight {m.get(N.VAL_AVERAGE_MAP_TIGHT, float('nan')):.4f}",
            "  per class        chunk AP   Average-mAP (loose)",
        ]
        for c, v in self.per_class.items():
            lines.append(f"    {c:<12} {v['chunk_ap']:>9.4f}   {v['average_map']:>9.4f}")
        return "\n".join(lines)

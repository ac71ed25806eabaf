"""Plain-PyTorch training of one configuration: Adam, sigmoid BCE, step decay, early stopping.

Seed section 3.2: chunks of W = 2T frames, multi-label sigmoid + binary cross-entropy, Adam, a
step-decayed learning rate with early stopping on the validation metric. The SoccerNet v1 code
divides the rate by 10 after 10 epochs without improvement (restoring the best weights) and stops
after 30; our defaults are shorter (``patience=5``, ``stop_patience=10``, ``max_decays=2``).

The trainer knows nothing of Ray or MLflow: it takes ``train_batches(epoch) -> Iterable[dict]``
of numpy arrays (the search layer feeds Ray Data, :class:`avspot.avmodels.data.ChunkBatches`
feeds in-memory halves) and reports through callbacks.

Each epoch: train, then validate on every validation half: chunk metrics over consecutive chunks
(``val_map``, ``val_ap_<class>``, ``val_loss``) and spotting Average-mAP (``val_average_map``
loose, ``val_average_map_tight``, ``val_average_map_<class>``) by sliding the model with a 1 s
stride (``forward_sequence``) and post-processing with ``spot_method``.

Fusion methods ``prob_product`` and ``logit_mean`` combine two separately trained single-modality
models (seed section 3.3, methods 1 and 2). :class:`Trainer` handles them inside ``fit``: it
trains a video model and an audio model side by side with the same budget (each on its own BCE
loss; their parameters are disjoint, so one Adam over both equals two Adams), validates the
combination from ``combine_trained`` every epoch, and drives the schedule and early stopping from
the combined model's validation metric. ``TrainResult.model`` is the combined model.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import math
import os
import tempfile
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from avspot.avmodels.data import CLASS_NAMES, ChunkBatches, iter_chunk_batches
from avspot.datasets.errors import DataError

if TYPE_CHECKING:
    from avspot.avmodels.config import ModelConfig
    from avspot.datasets.table import Half

__all__ = [
    "PAIR_FUSIONS",
    "Callback",
    "PairModel",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "load_model",
    "save_model",
    "train",
    "train_from_table",
]

SCHEDULES = ("step", "cosine", "plateau")
MONITORS = ("val_map", "val_average_map")
CLASS_WEIGHTS = ("none", "balanced")
SPOT_METHODS = ("center", "max", "nms")
PAIR_FUSIONS = ("prob_product", "logit_mean")
"""Fusion methods applied to two separately trained single-modality models."""

CHECKPOINT_FORMAT = "avspot-trainer-checkpoint"
MODEL_FORMAT = "avspot-model"


def _model_config_cls() -> type[ModelConfig]:
    from avspot.avmodels.config import ModelConfig

    return ModelConfig


def _default_model_config() -> ModelConfig:
    return _model_config_cls()()


# ---- configuration ------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """One training run: the model and every trainer setting (JSON-able via to_dict)."""

    model: ModelConfig = field(default_factory=_default_model_config)
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
    num_threads: int = 0  # torch threads; 0 leaves torch's default

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise DataError naming the first bad field and its valid values."""
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise DataError(f"{name}={value!r}: unknown; valid: {', '.join(choices)}")
        positive = ("lr", "batch_size", "max_epochs", "lr_decay", "patience", "stop_patience")
        for name in positive:
            if not getattr(self, name) > 0:
                raise DataError(f"{name}={getattr(self, name)!r}: must be > 0")
        for name in ("max_decays", "min_lr", "weight_decay", "num_threads"):
            if getattr(self, name) < 0:
                raise DataError(f"{name}={getattr(self, name)!r}: must be >= 0")
        if self.monitor == "val_average_map" and not self.val_spotting:
            raise DataError("monitor=val_average_map needs val_spotting=true")

    @property
    def pair(self) -> bool:
        """True when the fusion method combines two separately trained models."""
        return getattr(self.model, "fusion", None) in PAIR_FUSIONS

    def to_dict(self) -> dict[str, Any]:
        """JSON-able nested dict (``model`` is the ModelConfig's dict)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        out["model"] = self.model.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Inverse of to_dict; unknown keys raise DataError."""
        d = dict(d)
        try:
            model = _model_config_cls().from_dict(d.pop("model", {}))
        except (TypeError, ValueError) as exc:
            raise DataError(f"train config: bad model config: {exc}") from None
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

    @classmethod
    def from_overrides(
        cls, overrides: Mapping[str, Any], base: TrainConfig | None = None
    ) -> TrainConfig:
        """Apply ``--set key=value`` pairs (trainer or model fields; values parsed by type).

        Keys may carry a ``model.`` prefix. An unknown key or a bad value raises DataError
        naming it with the valid keys or choices.
        """
        base = base or cls()
        mcls = type(base.model)
        train_types = _field_types(cls)
        model_types = _field_types(mcls)
        train_kw: dict[str, Any] = {}
        model_kw: dict[str, Any] = {}
        for raw_key, raw in overrides.items():
            key = raw_key.strip()
            if key.startswith("model."):
                key = key[len("model.") :]
                target, types = model_kw, model_types
            elif key in train_types and key != "model":
                target, types = train_kw, train_types
            elif key in model_types:
                target, types = model_kw, model_types
            else:
                valid = sorted((set(train_types) - {"model"}) | set(model_types))
                raise DataError(f"--set {raw_key}: unknown key; valid keys: {', '.join(valid)}")
            if key not in types:
                raise DataError(
                    f"--set {raw_key}: unknown model key; valid: {', '.join(sorted(model_types))}"
                )
            target[key] = _parse_value(raw_key, raw, types[key])
        model_dict = {**base.model.to_dict(), **model_kw}
        try:
            model = mcls.from_dict(model_dict)
        except DataError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise DataError(f"--set: bad model config: {exc}") from exc
        _check_model_choices(model)
        kw = {f.name: getattr(base, f.name) for f in dataclasses.fields(cls) if f.name != "model"}
        kw.update(train_kw)
        return cls(model=model, **kw)


_CHOICES: dict[str, tuple[str, ...]] = {
    "schedule": SCHEDULES,
    "monitor": MONITORS,
    "class_weight": CLASS_WEIGHTS,
    "spot_method": SPOT_METHODS,
}


def _field_types(klass: type) -> dict[str, Any]:
    hints = typing.get_type_hints(klass, localns={"ModelConfig": _model_config_cls()})
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(klass)}


def _parse_value(key: str, raw: Any, typ: Any) -> Any:
    """Parse a ``--set`` string by the field's annotated type."""
    if not isinstance(raw, str):
        return raw
    origin = typing.get_origin(typ)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if origin is typing.Literal:
        if raw not in typ.__args__:
            raise DataError(f"--set {key}={raw}: bad value; valid: {', '.join(map(str, args))}")
        return raw
    if origin is not None and args:  # Optional[X] / X | None
        if raw.lower() in ("none", "null", ""):
            return None
        typ = args[0]
    try:
        if typ is bool:
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            f = float(raw)
            if not f.is_integer():
                raise ValueError(raw)
            return int(f)
        if typ is float:
            v = float(raw)
            if not math.isfinite(v):
                raise ValueError(raw)
            return v
    except ValueError:
        raise DataError(f"--set {key}={raw}: bad value; expected {typ.__name__}") from None
    return raw


def _check_model_choices(model: Any) -> None:
    """Reject unknown fusion/pooling names with the valid ones (registries of avmodels)."""
    try:
        from avspot.avmodels import fusion as fusion_mod
    except ImportError:
        return
    regs = {"fusion": getattr(fusion_mod, "FUSIONS", None)}
    try:
        from avspot.avmodels import pooling as pooling_mod

        regs["pooling"] = getattr(pooling_mod, "POOLINGS", None)
    except ImportError:
        pass
    for name, reg in regs.items():
        value = getattr(model, name, None)
        if reg is not None and value is not None and value not in reg:
            raise DataError(f"{name}={value!r}: unknown; valid: {', '.join(sorted(reg))}")


# ---- models ------------------------------------------------------------------------------------


class PairModel(nn.Module):
    """Two single-modality models trained side by side for ``prob_product`` / ``logit_mean``.

    ``forward_parts`` gives both models' logits (each trained on its own loss); ``combined()``
    is the fused model from ``fusion.combine_trained`` used for validation and spotting.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from avspot.avmodels.fusion import build_model, component_configs

        self.config = cfg
        self.method = cfg.fusion
        parts = component_configs(cfg)
        self.video_model = build_model(parts["video"])
        self.audio_model = build_model(parts["audio"])

    def forward_parts(
        self, video: torch.Tensor, audio: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, W, Dv), (B, W, Da) -> video logits (B, 4), audio logits (B, 4)."""
        return self.video_model(video, audio), self.audio_model(video, audio)

    def combined(self) -> nn.Module:
        from avspot.avmodels.fusion import combine_trained

        return combine_trained(self.video_model, self.audio_model, self.method)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.combined()(video, audio)


def _build(cfg: ModelConfig) -> nn.Module:
    if cfg.fusion in PAIR_FUSIONS:
        return PairModel(cfg)
    from avspot.avmodels.fusion import build_model

    return build_model(cfg)


def save_model(model: nn.Module, cfg: ModelConfig, path: str | os.PathLike[str]) -> Path:
    """Portable model file: ``{"format", "version", "config": cfg.to_dict(), "state_dict"}``.

    Written with torch.save (atomically), readable with ``torch.load(weights_only=True)``;
    :func:`load_model` rebuilds the model with ``build_model(config)``. A paired model
    (prob_product / logit_mean) is saved as its combination, which ``build_model`` rebuilds.
    """
    if isinstance(model, PairModel):
        model = model.combined()
    payload = {
        "format": MODEL_FORMAT,
        "version": 1,
        "config": cfg.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    _atomic(path, lambda tmp: _torch_save(payload, tmp))
    return path


def load_model(path: str | os.PathLike[str]) -> tuple[nn.Module, ModelConfig]:
    """Inverse of :func:`save_model`: (model in eval mode, its ModelConfig)."""
    from avspot.avmodels.fusion import build_model

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model file does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is bad input
        raise DataError(f"{path}: not a readable model file ({_one_line(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise DataError(f"{path}: not an avspot model file")
    try:
        cfg = _model_config_cls().from_dict(payload["config"])
        model = build_model(cfg)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise DataError(f"{path}: model does not match its config ({_one_line(exc)})") from None
    model.eval()
    return model, cfg


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


# ---- callbacks and results -----------------------------------------------------------------------


class Callback(Protocol):
    """Both methods are optional. ``on_epoch_end`` may return ``"stop"`` (or set
    ``trainer.should_stop = True``) to end training after this epoch; a callback may call
    ``trainer.save_checkpoint(path)`` there (the state is complete for the epoch)."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], trainer: Trainer) -> Any: ...

    def on_train_end(self, result: TrainResult) -> None: ...


@dataclass
class TrainResult:
    """Outcome of one run: the best model (weights of the best epoch) and its metrics."""

    config: TrainConfig
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    model: nn.Module | None
    stop_reason: str  # max_epochs | early_stop | callback | interrupted
    wall_s: float
    best_chunk: dict[str, Any] = field(default_factory=dict)  # confusion at the best epoch

    @property
    def monitor_value(self) -> float:
        return float(self.best_metrics.get(self.config.monitor, float("nan")))

    @property
    def per_class(self) -> dict[str, dict[str, float]]:
        """Best epoch's per-class chunk AP and spotting Average-mAP (loose)."""
        m = self.best_metrics
        return {
            c: {
                "chunk_ap": m.get(f"val_ap_{c}", float("nan")),
                "average_map": m.get(f"val_average_map_{c}", float("nan")),
            }
            for c in CLASS_NAMES
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
            f"  val_map {m.get('val_map', float('nan')):.4f}   "
            f"val_average_map loose {m.get('val_average_map', float('nan')):.4f}   "
            f"tight {m.get('val_average_map_tight', float('nan')):.4f}",
            "  per class        chunk AP   Average-mAP (loose)",
        ]
        for c, v in self.per_class.items():
            lines.append(f"    {c:<12} {v['chunk_ap']:>9.4f}   {v['average_map']:>9.4f}")
        return "\n".join(lines)


@dataclass
class _LoopState:
    epoch: int = 0  # epochs completed
    best: float = -math.inf
    best_epoch: int = 0
    since_best: int = 0
    since_change: int = 0  # epochs since the last improvement or decay
    decays: int = 0
    finished: str = ""  # early_stop once the schedule has ended the run


# ---- trainer -----------------------------------------------------------------------------------


class Trainer:
    """Trains one configuration; resumable from :meth:`save_checkpoint` files."""

    def __init__(self, cfg: TrainConfig, model: nn.Module | None = None) -> None:
        cfg.validate()
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.model = model if model is not None else _build(cfg.model)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.scheduler: Any = None
        if cfg.schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=cfg.max_epochs, eta_min=cfg.min_lr
            )
        elif cfg.schedule == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer,
                mode="max",
                factor=1.0 / cfg.lr_decay,
                patience=cfg.patience - 1,
                min_lr=cfg.min_lr,
            )
        self.state = _LoopState()
        self.history: list[dict[str, float]] = []
        self.best_model_state = _clone_state(self.model.state_dict())
        self.best_optim_state = copy.deepcopy(self.optimizer.state_dict())
        self.best_chunk: dict[str, Any] = {}
        self.pos_weight: torch.Tensor | None = None
        self.pos_freq: np.ndarray | None = None  # (4,) train positives per output
        self.should_stop = False

    # -- public ---------------------------------------------------------------------------------

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def will_stop(self) -> bool:
        """True when the run ends after the current epoch (schedule, max_epochs or a stop)."""
        st = self.state
        return bool(st.finished) or st.epoch >= self.cfg.max_epochs or self.should_stop

    def fit(
        self,
        train_batches: Callable[[int], Iterable[Mapping[str, np.ndarray]]],
        valid_halves: Callable[[], Iterable[Half]],
        callbacks: Sequence[Any] = (),
        *,
        pos_freq: Sequence[float] | np.ndarray | None = None,
    ) -> TrainResult:
        """Train until ``max_epochs``, early stopping or a callback's stop; resumes after a
        :meth:`load_checkpoint`. ``train_batches(epoch)`` (epoch counted from 1) yields dicts of
        numpy arrays video (B, W, Dv), audio (B, W, Da), targets (B, 4); ``valid_halves()``
        yields the validation halves anew each epoch. ``pos_freq`` (4,) is each output's
        positive fraction in the train set for ``class_weight="balanced"``; without it the
        first epoch estimates it from the targets seen so far (then it is fixed and saved).

        KeyboardInterrupt ends the run cleanly: the result holds the best epoch so far.
        """
        t0 = time.perf_counter()
        cfg = self.cfg
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self._set_pos_weight(pos_freq)
        self.should_stop = False
        stop_reason = self.state.finished or "max_epochs"
        try:
            while not self.state.finished and self.state.epoch < cfg.max_epochs:
                epoch = self.state.epoch + 1
                metrics = self._run_epoch(epoch, train_batches, valid_halves)
                if metrics is None:  # stopped mid-epoch
                    stop_reason = "callback"
                    break
                for cb in callbacks:
                    if _call_epoch_end(cb, epoch, metrics, self) == "stop":
                        self.should_stop = True
                if self.state.finished:
                    stop_reason = self.state.finished
                    break
                if self.should_stop:
                    stop_reason = "callback"
                    break
        except KeyboardInterrupt:
            stop_reason = "interrupted"
        result = self._result(stop_reason, time.perf_counter() - t0)
        for cb in callbacks:
            fn = getattr(cb, "on_train_end", None)
            if fn is not None:
                fn(result)
        return result

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Everything a resumed run needs to continue exactly (torch.save, weights_only-safe)."""
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": 1,
            "config": self.cfg.to_dict(),
            "model": _clone_state(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "loop": dataclasses.asdict(self.state),
            "best_model": self.best_model_state,
            "best_optimizer": self.best_optim_state,
            "best_chunk": self.best_chunk,
            "history": self.history,
            "pos_freq": None if self.pos_freq is None else self.pos_freq.tolist(),
            "rng_torch": torch.get_rng_state(),
        }
        path = Path(path)
        _atomic(path, lambda tmp: _torch_save(payload, tmp))
        return path

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore a :meth:`save_checkpoint` file into this trainer (same configuration)."""
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise DataError(f"{path}: not an avspot trainer checkpoint")
        saved = payload["config"]
        if saved != self.cfg.to_dict():
            diff = sorted(k for k in saved if saved.get(k) != self.cfg.to_dict().get(k))
            raise DataError(f"{path}: checkpoint config differs from this trainer's in {diff}")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None and payload["scheduler"] is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        self.state = _LoopState(**payload["loop"])
        self.best_model_state = payload["best_model"]
        self.best_optim_state = payload["best_optimizer"]
        self.best_chunk = payload["best_chunk"]
        self.history = list(payload["history"])
        self.pos_freq = None if payload["pos_freq"] is None else np.asarray(payload["pos_freq"])
        self._set_pos_weight(None)
        torch.set_rng_state(payload["rng_torch"])

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str]) -> Trainer:
        """A trainer rebuilt from the checkpoint's own config, state restored."""
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        trainer = cls(TrainConfig.from_dict(payload["config"]))
        trainer.load_checkpoint(path)
        return trainer

    def eval_model(self) -> nn.Module:
        """The model as validated and spotted (the combination for paired fusions)."""
        return self.model.combined() if isinstance(self.model, PairModel) else self.model

    def evaluate(self, halves: Iterable[Half]) -> tuple[dict[str, float], dict[str, Any]]:
        """Validation metrics of the current weights: (flat metrics, chunk confusion info)."""
        from avspot.avmodels import metrics as M
        from avspot.avmodels.spotting import postprocess, predict_half

        cfg = self.cfg
        model = self.eval_model()
        w = cfg.model.window_frames
        criterion = self._criterion()
        was_training = self.model.training
        self.model.eval()
        model.eval()
        chunk_t, chunk_p = [], []
        loss_sum, n_chunks = 0.0, 0
        spot_halves = []
        try:
            with torch.no_grad():
                for half in halves:
                    for batch in iter_chunk_batches(half, w, cfg.batch_size):
                        logits = model(_t(batch["video"]), _t(batch["audio"]))  # (B, 4)
                        targets = _t(batch["targets"])
                        loss_sum += float(criterion(logits, targets)) * len(targets)
                        n_chunks += len(targets)
                        chunk_t.append(batch["targets"])
                        chunk_p.append(torch.sigmoid(logits).numpy())
                    if cfg.val_spotting:
                        probs = predict_half(model, half, 1.0, window_frames=w)  # (n_s, 3)
                        spots = postprocess(probs, cfg.spot_method, stride_s=1.0)
                        spot_halves.append(_half_spots(half, spots))
        finally:
            self.model.train(was_training)
        if not n_chunks:
            raise DataError("validation: no validation halves (or all shorter than a window)")
        cm = M.chunk_metrics(np.concatenate(chunk_t), np.concatenate(chunk_p))
        out: dict[str, float] = {"val_loss": loss_sum / n_chunks, "val_map": float(cm["map"])}
        for c in CLASS_NAMES:
            out[f"val_ap_{c}"] = float(cm["per_class"][c])
        if spot_halves:
            loose = M.average_map_spots(spot_halves, metric="loose")
            tight = M.average_map_spots(spot_halves, metric="tight")
            out["val_average_map"] = float(loose.average_map)
            out["val_average_map_tight"] = float(tight.average_map)
            for c in CLASS_NAMES:
                out[f"val_average_map_{c}"] = float(loose.per_class[c])
        return out, {"confusion": cm["confusion"], "labels": cm["labels"]}

    # -- internals ------------------------------------------------------------------------------

    def _set_pos_weight(self, pos_freq: Sequence[float] | np.ndarray | None) -> None:
        if pos_freq is not None:
            p = np.asarray(pos_freq, dtype=np.float64)
            if p.shape != (4,):
                raise DataError(
                    f"pos_freq must have 4 entries (card, subs, soccer, background): {p}"
                )
            self.pos_freq = p
        if self.cfg.class_weight == "none" or self.pos_freq is None:
            self.pos_weight = None
            return
        p = np.clip(self.pos_freq, 1e-6, 1 - 1e-6)
        self.pos_weight = torch.tensor((1 - p) / p, dtype=torch.float32)

    def _criterion(self) -> nn.Module:
        return nn.BCEWithLogitsLoss(pos_weight=self.pos_weight)

    def _loss(
        self, criterion: nn.Module, video: torch.Tensor, audio: torch.Tensor, y: torch.Tensor
    ):
        if isinstance(self.model, PairModel):
            lv, la = self.model.forward_parts(video, audio)
            return criterion(lv, y) + criterion(la, y)
        return criterion(self.model(video, audio), y)

    def train_epoch(
        self, epoch: int, train_batches: Callable[[int], Iterable[Mapping[str, np.ndarray]]]
    ) -> tuple[float, int, float] | None:
        """One pass over ``train_batches(epoch)``: (mean loss, samples, seconds); None when
        ``should_stop`` was set during the pass (the epoch is abandoned)."""
        cfg = self.cfg
        t0 = time.perf_counter()
        torch.manual_seed(_epoch_seed(cfg.seed, epoch))  # dropout: a function of (seed, epoch)
        criterion = self._criterion()
        estimate = cfg.class_weight == "balanced" and self.pos_freq is None
        pos_count = np.zeros(4)
        self.model.train()
        loss_sum, n = 0.0, 0
        for batch in train_batches(epoch):
            if self.should_stop:
                return None
            video, audio, y = _t(batch["video"]), _t(batch["audio"]), _t(batch["targets"])
            if estimate:  # balanced weights from the targets seen so far (first epoch only)
                pos_count += np.asarray(batch["targets"]).sum(axis=0)
                p = np.clip(pos_count / (n + len(y)), 1e-6, 1 - 1e-6)
                criterion = nn.BCEWithLogitsLoss(
                    pos_weight=torch.tensor((1 - p) / p, dtype=torch.float32)
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._loss(criterion, video, audio, y)  # video (B, W, Dv), audio (B, W, Da)
            loss.backward()
            self.optimizer.step()
            loss_sum += float(loss.detach()) * len(y)
            n += len(y)
        if n == 0:
            raise DataError(f"epoch {epoch}: the training stream yielded no batches")
        if estimate:
            self._set_pos_weight(pos_count / n)
        return loss_sum / n, n, time.perf_counter() - t0

    def _run_epoch(
        self,
        epoch: int,
        train_batches: Callable[[int], Iterable[Mapping[str, np.ndarray]]],
        valid_halves: Callable[[], Iterable[Half]],
    ) -> dict[str, float] | None:
        t0 = time.perf_counter()
        lr = self.lr
        trained = self.train_epoch(epoch, train_batches)
        if trained is None:
            return None
        train_loss, n, train_s = trained
        val, chunk_info = self.evaluate(valid_halves())
        metrics: dict[str, float] = {
            "epoch": float(epoch),
            "train_loss": train_loss,
            **val,
            "lr": lr,
            "train_samples": float(n),
            "train_samples_per_s": n / train_s if train_s > 0 else float("nan"),
            "train_time_s": train_s,
            "epoch_time_s": 0.0,
        }
        self.state.epoch = epoch
        self._schedule(epoch, metrics[self.cfg.monitor], chunk_info)
        metrics["epoch_time_s"] = time.perf_counter() - t0
        self.history.append(metrics)
        return metrics

    def _schedule(self, epoch: int, value: float, chunk_info: dict[str, Any]) -> None:
        """Track the best epoch; step decay / cosine / plateau; early stopping."""
        cfg, st = self.cfg, self.state
        if value > st.best:
            st.best, st.best_epoch = value, epoch
            st.since_best = st.since_change = 0
            self.best_model_state = _clone_state(self.model.state_dict())
            self.best_optim_state = copy.deepcopy(self.optimizer.state_dict())
            self.best_chunk = chunk_info
        else:
            st.since_best += 1
            st.since_change += 1
        if cfg.schedule == "step":
            if st.since_change >= cfg.patience:
                if st.decays >= cfg.max_decays:
                    st.finished = "early_stop"
                else:
                    new_lr = self.lr / cfg.lr_decay
                    self.model.load_state_dict(self.best_model_state)
                    self.optimizer.load_state_dict(copy.deepcopy(self.best_optim_state))
                    for g in self.optimizer.param_groups:
                        g["lr"] = new_lr
                    st.decays += 1
                    st.since_change = 0
        elif cfg.schedule == "cosine":
            self.scheduler.step()
        else:
            self.scheduler.step(value)
        if st.since_best >= cfg.stop_patience:
            st.finished = "early_stop"

    def _result(self, stop_reason: str, wall_s: float) -> TrainResult:
        best_epoch = self.state.best_epoch
        best = next((h for h in self.history if int(h["epoch"]) == best_epoch), {})
        model: nn.Module | None = None
        if self.history:
            best_model = copy.deepcopy(self.model)
            best_model.load_state_dict(self.best_model_state)
            best_model.eval()
            model = best_model.combined() if isinstance(best_model, PairModel) else best_model
        return TrainResult(
            config=self.cfg,
            best_epoch=best_epoch,
            best_metrics=dict(best),
            history=list(self.history),
            model=model,
            stop_reason=stop_reason,
            wall_s=wall_s,
            best_chunk=self.best_chunk,
        )


def _t(a: np.ndarray) -> torch.Tensor:
    """numpy -> float32 tensor; copies read-only arrays (Ray's object store hands those out)."""
    a = np.asarray(a, dtype=np.float32)
    if not a.flags.writeable or not a.flags.c_contiguous:
        a = np.array(a, dtype=np.float32, order="C")
    return torch.from_numpy(a)


def _clone_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _call_epoch_end(cb: Any, epoch: int, metrics: dict[str, float], trainer: Trainer) -> Any:
    fn = getattr(cb, "on_epoch_end", None)
    if fn is None:
        return None
    try:
        n_params = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        n_params = 3
    return fn(epoch, dict(metrics), trainer) if n_params >= 3 else fn(epoch, dict(metrics))


def _half_spots(half: Half, spots: Sequence[Any]) -> Any:
    """A validation half as metrics.HalfSpots (official clipping, sparse)."""
    from avspot.avmodels.metrics import HalfSpots, official_half_frames

    n = max(int(half.video.shape[0]), official_half_frames())
    ev = [(int(e.frame), CLASS_NAMES.index(e.label)) for e in half.events]
    ev_f = np.array([f for f, _ in ev], dtype=np.int64)
    ev_c = np.array([c for _, c in ev], dtype=np.int64)
    return HalfSpots.from_lists(
        ev_f,
        ev_c,
        np.array([s.frame for s in spots], dtype=np.int64),
        np.array([CLASS_NAMES.index(s.label) for s in spots], dtype=np.int64),
        np.array([s.confidence for s in spots], dtype=np.float64),
        n,
    )


def _torch_save(payload: Any, tmp: str) -> None:
    with open(tmp, "wb") as f:  # a file object: torch rejects some temporary file names
        torch.save(payload, f)


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- entry points --------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    train_halves: Iterable[Half],
    valid_halves: Sequence[Half],
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train on in-memory halves (notebooks, tests): ChunkBatches + Trainer.fit."""
    stream = ChunkBatches(train_halves, cfg.model.window_frames, cfg.batch_size, seed=cfg.seed)
    valid = list(valid_halves)
    return Trainer(cfg).fit(stream, lambda: valid, callbacks, pos_freq=stream.pos_freq)


class _LogEpochs:
    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def on_epoch_end(self, epoch: int, m: dict[str, float], trainer: Trainer) -> None:
        am = m.get("val_average_map", float("nan"))
        self.log(
            f"epoch {epoch:3d}  train_loss {m['train_loss']:.4f}  val_loss {m['val_loss']:.4f}  "
            f"val_map {m['val_map']:.4f}  val_average_map {am:.4f}  lr {m['lr']:.2e}  "
            f"{m['train_samples_per_s']:.0f} samples/s  {m['epoch_time_s']:.1f}s"
        )


def _read_split(uri: str, split: str, endpoint: str | None) -> list[Half]:
    from avspot.avmodels.spotting import _iter_halves

    halves = list(_iter_halves(uri, split, endpoint))
    if not halves:
        raise DataError(f"{uri}: split {split!r} is empty")
    return halves


def train_from_table(
    data_uri: str,
    overrides: Mapping[str, str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """``avspot train``: one configuration on a feature table's train split, validated on its
    valid split, in process (all train halves in memory). Writes ``model.pt`` (save_model),
    ``model_config.json``, ``train_config.json`` and ``results.json`` to ``out_dir`` if given.
    """
    overrides = dict(overrides or {})
    cfg = TrainConfig.from_overrides(overrides)
    t0 = time.perf_counter()
    from avspot.datasets.table import read_manifest

    fingerprint = read_manifest(data_uri, endpoint).fingerprint
    train_halves = _read_split(data_uri, "train", endpoint)
    valid_halves = _read_split(data_uri, "valid", endpoint)
    cfg = _fit_dims(cfg, train_halves[0], overrides)
    stream = ChunkBatches(train_halves, cfg.model.window_frames, cfg.batch_size, seed=cfg.seed)
    d = stream.describe()
    log(
        f"data {data_uri} (fingerprint {fingerprint[:12] or '?'}): {d['halves']} train halves, "
        f"{d['samples']} chunks of {cfg.model.window_frames} frames, {len(valid_halves)} valid "
        f"halves; read in {time.perf_counter() - t0:.1f}s"
    )
    log("config " + json.dumps(cfg.flat(), sort_keys=True))
    result = Trainer(cfg).fit(
        stream, lambda: valid_halves, [_LogEpochs(log)], pos_freq=stream.pos_freq
    )
    if out_dir is not None and result.model is not None:
        out = Path(out_dir)
        save_model(result.model, cfg.model, out / "model.pt")
        _write_json(out / "model_config.json", cfg.model.to_dict())
        _write_json(out / "train_config.json", cfg.to_dict())
        _write_json(
            out / "results.json", {"data": data_uri, "fingerprint": fingerprint, **result.to_dict()}
        )
        log(f"wrote model.pt, model_config.json, train_config.json, results.json to {out}")
    return result


def _fit_dims(cfg: TrainConfig, half: Half, overrides: Mapping[str, str]) -> TrainConfig:
    """Take the feature widths from the table unless set explicitly (then they must match)."""
    widths = {"video_dim": int(half.video.shape[1]), "audio_dim": int(half.audio.shape[1])}
    model = cfg.model.to_dict()
    for key, width in widths.items():
        if key not in model:
            continue
        if key in overrides and int(model[key]) != width:
            raise DataError(f"--set {key}={model[key]}: the table's features are {width} wide")
        model[key] = width
    return dataclasses.replace(cfg, model=type(cfg.model).from_dict(model))


def _write_json(path: Path, content: Any) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(content, f, indent=1, default=_json_default)

    _atomic(path, write)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-able: {type(o).__name__}")

"""Plain-PyTorch training of one configuration: Adam, sigmoid BCE, step decay, early stopping.

Seed section 3.2: chunks of W = 2T frames, multi-label sigmoid + binary cross-entropy, Adam, a
step-decayed learning rate with early stopping on the validation metric. The SoccerNet v1 code
divides the rate by 10 after 10 epochs without improvement (restoring the best weights) and stops
after 30; our defaults are shorter (``patience=5``, ``stop_patience=10``, ``max_decays=2``).

The trainer knows nothing of Ray or MLflow: it takes ``train_batches(epoch) -> Iterable[dict]``
of numpy arrays (the search layer feeds Ray Data, :class:`avspot.avmodels.data.ChunkBatches`
feeds in-memory halves) and reports through callbacks.

Each epoch: train (``train_loss`` and ``train_map``, the chunk mAP of the training batches as
they were predicted during the epoch, for the seed's Figure 3), then validate on every
validation half: chunk metrics over consecutive chunks (``val_map``, ``val_ap_<class>``,
``val_loss``) and spotting Average-mAP (``val_average_map`` loose, ``val_average_map_tight``,
``val_average_map_<class>``) by sliding the model with a ``val_stride_s`` stride (1 s by default;
a search may validate coarser, its trials' final scoring is at 1 s) (``forward_sequence``) and
post-processing with ``spot_method``. ``lr_decayed`` is 1 on an epoch after which the step or
plateau schedule divided the rate.

Fusion methods whose ``requires_pretrained`` is set (seed methods 1 and 2) combine two
separately trained single-modality models: the trainer trains a ``PairModel`` (both models side
by side, same budget, each on its own BCE loss), validates the combination every epoch, and
drives the schedule and early stopping from it. ``TrainResult.model`` is the combined model.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from avspot.avmodels import metrics as M
from avspot.avmodels.data import ChunkBatches, iter_chunk_batches
from avspot.avmodels.device import autocast_dtype, resolve_device, to_tensor
from avspot.avmodels.fusion import PairModel, build_trainable
from avspot.avmodels.model_io import torch_save_atomic
from avspot.avmodels.postprocess import postprocess
from avspot.avmodels.spotting import predict_half
from avspot.avmodels.train_config import TrainConfig
from avspot.avmodels.validation import half_spots
from avspot.datasets.errors import DataError
from avspot.datasets.halves import Half
from avspot.datasets.labels import CLASSES

__all__ = ["Callback", "TrainResult", "Trainer", "train"]

CHECKPOINT_FORMAT = "avspot-trainer-checkpoint"


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
    def per_class(self) -> dict[str, dict[str, float]]:
        """Best epoch's per-class chunk AP and spotting Average-mAP (loose)."""
        m = self.best_metrics
        return {
            c: {
                "chunk_ap": m.get(f"val_ap_{c}", float("nan")),
                "average_map": m.get(f"val_average_map_{c}", float("nan")),
            }
            for c in CLASSES
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
        self.device = resolve_device(cfg.device)
        self.amp_dtype = autocast_dtype(self.device, cfg.precision)  # None: float32
        torch.manual_seed(cfg.seed)  # initial weights drawn on the CPU: the same on every device
        self.model = model if model is not None else build_trainable(cfg.model)
        self.model.to(self.device)
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
            "model": _cpu_state(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "loop": dataclasses.asdict(self.state),
            "best_model": _cpu_state(self.best_model_state),
            "best_optimizer": self.best_optim_state,
            "best_chunk": self.best_chunk,
            "history": self.history,
            "pos_freq": None if self.pos_freq is None else self.pos_freq.tolist(),
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
        }
        return torch_save_atomic(payload, path)

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
        self.best_model_state = {k: v.to(self.device) for k, v in payload["best_model"].items()}
        self.best_optim_state = payload["best_optimizer"]
        self.best_chunk = payload["best_chunk"]
        self.history = list(payload["history"])
        self.pos_freq = None if payload["pos_freq"] is None else np.asarray(payload["pos_freq"])
        self._set_pos_weight(None)
        torch.set_rng_state(payload["rng_torch"])
        if payload.get("rng_cuda") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(payload["rng_cuda"])

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
                for i, half in enumerate(halves):
                    for batch in iter_chunk_batches(half, w, cfg.batch_size):
                        video = to_tensor(batch["video"], self.device)  # (B, W, Dv)
                        audio = to_tensor(batch["audio"], self.device)  # (B, W, Da)
                        targets = to_tensor(batch["targets"], self.device)  # (B, 4)
                        logits = model(video, audio)  # (B, 4), float32
                        loss_sum += float(criterion(logits, targets)) * len(targets)
                        n_chunks += len(targets)
                        chunk_t.append(np.asarray(batch["targets"]))
                        chunk_p.append(torch.sigmoid(logits).cpu().numpy())
                    if cfg.val_spotting and i % cfg.val_spot_every == 0:
                        stride = cfg.val_stride_s
                        probs = predict_half(model, half, stride, window_frames=w)  # (n_s, 3)
                        spots = postprocess(probs, cfg.spot_method, stride_s=stride)
                        spot_halves.append(half_spots(half, spots))
        finally:
            self.model.train(was_training)
        if not n_chunks:
            raise DataError("validation: no validation halves (or all shorter than a window)")
        cm = M.chunk_metrics(np.concatenate(chunk_t), np.concatenate(chunk_p))
        out: dict[str, float] = {"val_loss": loss_sum / n_chunks, "val_map": float(cm["map"])}
        for c in CLASSES:
            out[f"val_ap_{c}"] = float(cm["per_class"][c])
        if spot_halves:
            loose = M.average_map_spots(spot_halves, metric="loose")
            tight = M.average_map_spots(spot_halves, metric="tight")
            out["val_average_map"] = float(loose.average_map)
            out["val_average_map_tight"] = float(tight.average_map)
            for c in CLASSES:
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
        self.pos_weight = torch.tensor((1 - p) / p, dtype=torch.float32, device=self.device)

    def _criterion(self) -> nn.Module:
        return nn.BCEWithLogitsLoss(pos_weight=self.pos_weight)

    def _loss(
        self, criterion: nn.Module, video: torch.Tensor, audio: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits of the model as validated (B, 4), detached)."""
        if isinstance(self.model, PairModel):
            lv, la = self.model.forward_parts(video, audio)
            return criterion(lv, y) + criterion(la, y), self.model.fuse_logits(
                lv.detach(), la.detach()
            )
        logits = self.model(video, audio)
        return criterion(logits, y), logits.detach()

    def train_epoch(
        self, epoch: int, train_batches: Callable[[int], Iterable[Mapping[str, Any]]]
    ) -> tuple[float, float, int, float] | None:
        """One pass over ``train_batches(epoch)``: (mean loss, chunk mAP of the batches as
        predicted while training, samples, seconds); None when ``should_stop`` was set during
        the pass (the epoch is abandoned).

        Batches may hold numpy arrays or tensors (already on the device, for a device-resident
        feed). The loop never waits for the device: losses, targets and predictions stay on it
        until the epoch ends. With ``amp_dtype`` the forward pass runs under bf16 autocast.
        """
        cfg, dev = self.cfg, self.device
        t0 = time.perf_counter()
        torch.manual_seed(_epoch_seed(cfg.seed, epoch))  # dropout: a function of (seed, epoch)
        criterion = self._criterion()
        estimate = cfg.class_weight == "balanced" and self.pos_freq is None
        pos_count = torch.zeros(4, dtype=torch.float64, device=dev)
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        n = 0
        seen_t: list[torch.Tensor] = []
        seen_p: list[torch.Tensor] = []
        for batch in train_batches(epoch):
            if self.should_stop:
                return None
            video = to_tensor(batch["video"], dev)  # (B, W, Dv)
            audio = to_tensor(batch["audio"], dev)  # (B, W, Da)
            y = to_tensor(batch["targets"], dev)  # (B, 4)
            if estimate:  # balanced weights from the targets seen so far (first epoch only)
                pos_count += y.sum(dim=0, dtype=torch.float64)
                p = (pos_count / (n + len(y))).clamp(1e-6, 1 - 1e-6)
                criterion = nn.BCEWithLogitsLoss(pos_weight=((1 - p) / p).float())
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                loss, logits = self._loss(criterion, video, audio, y)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach().double() * len(y)
            n += len(y)
            seen_t.append(y)
            seen_p.append(torch.sigmoid(logits.float()))
        if n == 0:
            raise DataError(f"epoch {epoch}: the training stream yielded no batches")
        if estimate:
            self._set_pos_weight((pos_count / n).cpu().numpy())
        targets = torch.cat(seen_t).cpu().numpy()  # the epoch's one wait for the device
        probs = torch.cat(seen_p).cpu().numpy()
        train_map = M.chunk_metrics(targets, probs)["map"]
        return float(loss_sum) / n, float(train_map), n, time.perf_counter() - t0

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
        train_loss, train_map, n, train_s = trained
        val, chunk_info = self.evaluate(valid_halves())
        metrics: dict[str, float] = {
            "epoch": float(epoch),
            "train_loss": train_loss,
            "train_map": train_map,
            **val,
            "lr": lr,
            "train_samples": float(n),
            "train_samples_per_s": n / train_s if train_s > 0 else float("nan"),
            "train_time_s": train_s,
            "epoch_time_s": 0.0,
        }
        self.state.epoch = epoch
        self._schedule(epoch, metrics[self.cfg.monitor], chunk_info)
        metrics["lr_decayed"] = float(self.cfg.schedule != "cosine" and self.lr < lr)
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


def _clone_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


def _cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy on the CPU: checkpoints load on any device."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


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

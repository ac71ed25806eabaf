"""Plain-PyTorch training of one configuration: Adam, sigmoid BCE, step decay, early stopping.

Seed section 3.2: chunks of W = 2T frames, multi-label sigmoid + binary cross-entropy, Adam, a
step-decayed learning rate with early stopping on the validation metric. The SoccerNet v1 code
divides the rate by 10 after 10 epochs without improvement (restoring the best weights) and stops
after 30; our defaults are shorter (``patience=5``, ``stop_patience=10``, ``max_decays=2``).

The trainer knows nothing of Ray or MLflow: it takes ``train_batches(epoch) -> Iterable[Batch]``
(``avmodels.data``: in-memory halves, or a search's feed) and ``valid_halves() ->
Iterable[Half]``. :meth:`Trainer.epochs` yields an :class:`EpochEnd` after every epoch, so the
caller reads top to bottom: log, checkpoint, report, or leave the loop to stop. :meth:`Trainer.fit`
runs the loop to the end with an optional per-epoch hook and returns the :class:`TrainResult`.

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
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avspot.avmodels import metrics as M
from avspot.avmodels import names as N
from avspot.avmodels.data import Batch, ChunkBatches
from avspot.avmodels.device import autocast_dtype, resolve_device, to_tensor
from avspot.avmodels.fusion import PairModel, build_trainable
from avspot.avmodels.model_io import torch_save_atomic
from avspot.avmodels.train_config import TrainConfig
from avspot.avmodels.train_result import EpochEnd, TrainResult
from avspot.avmodels.validation import SpotScorer
from avspot.datasets.errors import DataError
from avspot.datasets.halves import Half

__all__ = ["EpochEnd", "TrainResult", "Trainer", "train"]  # results: train_result

CHECKPOINT_FORMAT = "avspot-trainer-checkpoint"
TrainBatches = Callable[[int], Iterable[Batch]]  # epoch (from 1) -> its batches
ValidHalves = Callable[[], Iterable[Half]]  # the validation halves, anew each epoch


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
        # The best epoch's weights and optimizer state live on the host: a GPU holds only the
        # model being trained (and its optimizer), whatever the model's size.
        self.best_model_state = _cpu_state(self.model.state_dict())
        self.best_optim_state = _to_cpu(self.optimizer.state_dict())
        self.best_chunk: dict[str, Any] = {}
        self.pos_weight: torch.Tensor | None = None
        self.pos_freq: np.ndarray | None = None  # (C + 1,) train positives per output
        self.wall_s = 0.0  # seconds spent in epochs(), over every call

    # -- public ---------------------------------------------------------------------------------

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def done(self) -> bool:
        """True once training has ended (the schedule stopped it, or max_epochs)."""
        return bool(self.state.finished) or self.state.epoch >= self.cfg.max_epochs

    def epochs(
        self,
        train_batches: TrainBatches,
        valid_halves: ValidHalves,
        *,
        pos_freq: Sequence[float] | np.ndarray | None = None,
    ) -> Iterator[EpochEnd]:
        """Train epoch by epoch until the schedule or ``max_epochs`` ends the run, yielding an
        :class:`EpochEnd` after each (resumes after a :meth:`load_checkpoint`). Leave the loop
        to stop early. ``train_batches(epoch)`` (epoch counted from 1) yields batches video
        (B, W, Dv), audio (B, W, Da), targets (B, C + 1); ``valid_halves()`` yields the validation
        halves anew each epoch. ``pos_freq`` (C + 1,) is each output's positive fraction in the
        train set for ``class_weight="balanced"``; without it the first epoch estimates it from
        the targets seen so far (then it is fixed and saved).
        """
        if self.cfg.num_threads:
            torch.set_num_threads(self.cfg.num_threads)
        self._set_pos_weight(pos_freq)
        while not self.done:
            t0 = time.perf_counter()
            epoch = self.state.epoch + 1
            metrics = self._run_epoch(epoch, train_batches, valid_halves)
            self.wall_s += time.perf_counter() - t0
            st = self.state
            yield EpochEnd(epoch, dict(metrics), st.best, st.best_epoch, last=self.done)

    def fit(
        self,
        train_batches: TrainBatches,
        valid_halves: ValidHalves,
        on_epoch: Callable[[EpochEnd], Any] | None = None,
        *,
        pos_freq: Sequence[float] | np.ndarray | None = None,
    ) -> TrainResult:
        """:meth:`epochs` to the end; ``on_epoch(end)`` after each epoch may return ``"stop"``.

        KeyboardInterrupt ends the run cleanly: the result holds the best epoch so far.
        """
        stop_reason = ""
        try:
            for end in self.epochs(train_batches, valid_halves, pos_freq=pos_freq):
                if on_epoch is not None and on_epoch(end) == "stop" and not end.last:
                    stop_reason = "stopped"
                    break
        except KeyboardInterrupt:
            stop_reason = "interrupted"
        return self.result(stop_reason)

    def result(self, stop_reason: str = "") -> TrainResult:
        """The run so far: the best epoch's weights (a copy, in eval mode), metrics and history.
        ``stop_reason`` defaults to why the trainer itself ended (early_stop | max_epochs)."""
        best_epoch = self.state.best_epoch
        best = next((h for h in self.history if int(h[N.EPOCH]) == best_epoch), {})
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
            stop_reason=stop_reason or self.state.finished or "max_epochs",
            wall_s=self.wall_s,
            best_chunk=self.best_chunk,
        )

    def checkpoint(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly, and no more: the best epoch's
        weights only when they are not the current ones, its optimizer state only for the
        step schedule (the only one that restores it) and only when it is not the current one.
        For a 270 M-parameter model that is 3.2 GB (weights and Adam) on an epoch that improved,
        where every copy would be 6.5 GB (``benchmarks/bench_checkpoint.py``)."""
        current = self.state.best_epoch == self.state.epoch
        keep_optim = self.cfg.schedule == "step" and not current
        return {
            "format": CHECKPOINT_FORMAT,
            "version": 2,
            "config": self.cfg.to_dict(),
            "model": _cpu_state(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "loop": dataclasses.asdict(self.state),
            "best_model": None if current else self.best_model_state,  # None: the model's
            "best_optimizer": self.best_optim_state if keep_optim else None,
            "best_chunk": self.best_chunk,
            "history": self.history,
            "pos_freq": None if self.pos_freq is None else self.pos_freq.tolist(),
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
        }

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """:meth:`checkpoint` written atomically (torch.save, weights_only-safe)."""
        return torch_save_atomic(self.checkpoint(), path)

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
        best = payload["best_model"]  # None: the best epoch is the checkpoint's own
        self.best_model_state = _cpu_state(self.model.state_dict()) if best is None else best
        best_optim = payload["best_optimizer"]  # None: the current state (or never used)
        self.best_optim_state = (
            _to_cpu(self.optimizer.state_dict()) if best_optim is None else best_optim
        )
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
        """Validation metrics of the current weights: (flat metrics, chunk confusion info).

        Each half is read once: its consecutive chunks (chunk metrics, loss) and, on every
        ``val_spot_every``-th half, spotting at ``val_stride_s`` (``validation.SpotScorer``).
        Losses and predictions stay on the device until the pass ends (no per-batch sync);
        the forward passes run in the trainer's precision.
        """
        cfg, dev = self.cfg, self.device
        model = self.eval_model()
        w = cfg.model.window_frames
        criterion = self._criterion()
        was_training = self.model.training
        self.model.eval()
        model.eval()
        scorer = None
        if cfg.val_spotting:
            scorer = SpotScorer(
                model, w, stride_s=cfg.val_stride_s, methods=[cfg.spot_method],
                precision=cfg.precision,
            )  # fmt: skip
        seen_t: list[torch.Tensor] = []
        seen_p: list[torch.Tensor] = []
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        n_chunks = 0
        try:
            with torch.no_grad(), self._autocast():
                for i, half in enumerate(halves):
                    for batch in ChunkBatches([half], w, cfg.batch_size, shuffle=False)():
                        video = to_tensor(batch["video"], dev)  # (B, W, Dv)
                        audio = to_tensor(batch["audio"], dev)  # (B, W, Da)
                        targets = to_tensor(batch["targets"], dev)  # (B, C + 1)
                        logits = model(video, audio).float()  # (B, C + 1)
                        loss_sum += criterion(logits, targets).double() * len(targets)
                        n_chunks += len(targets)
                        seen_t.append(targets)
                        seen_p.append(torch.sigmoid(logits))
                    if scorer is not None and i % cfg.val_spot_every == 0:
                        scorer.add(half)
        finally:
            self.model.train(was_training)
        if not n_chunks:
            raise DataError("validation: no validation halves (or all shorter than a window)")
        targets_np = torch.cat(seen_t).cpu().numpy()  # the pass's one wait for the device
        vocabulary = cfg.model.vocabulary
        cm = M.chunk_metrics(targets_np, torch.cat(seen_p).cpu().numpy(), vocabulary)
        out: dict[str, float] = {
            N.VAL_LOSS: float(loss_sum) / n_chunks,
            N.VAL_MAP: float(cm["map"]),
        }
        for c in vocabulary.classes:
            out[N.val_ap(c)] = float(cm["per_class"][c])
        if scorer is not None and scorer.halves:
            loose = scorer.results("loose")[cfg.spot_method]
            tight = scorer.results("tight")[cfg.spot_method]
            out[N.VAL_AVERAGE_MAP] = float(loose.average_map)
            out[N.VAL_AVERAGE_MAP_TIGHT] = float(tight.average_map)
            for c in vocabulary.classes:
                out[N.val_average_map_of(c)] = float(loose.per_class[c])
        return out, {"confusion": cm["confusion"], "labels": cm["labels"]}

    # -- internals ------------------------------------------------------------------------------

    def _set_pos_weight(self, pos_freq: Sequence[float] | np.ndarray | None) -> None:
        if pos_freq is not None:
            p = np.asarray(pos_freq, dtype=np.float64)
            outputs = self.cfg.model.vocabulary.outputs
            if p.shape != (len(outputs),):
                raise DataError(
                    f"pos_freq must have {len(outputs)} entries ({', '.join(outputs)}): {p}"
                )
            self.pos_freq = p
        if self.cfg.class_weight == "none" or self.pos_freq is None:
            self.pos_weight = None
            return
        p = np.clip(self.pos_freq, 1e-6, 1 - 1e-6)
        self.pos_weight = torch.tensor((1 - p) / p, dtype=torch.float32, device=self.device)

    def _criterion(self) -> nn.Module:
        return nn.BCEWithLogitsLoss(pos_weight=self.pos_weight)

    def _autocast(self) -> Any:
        """The trainer's precision for forward passes (bf16 autocast, or a no-op)."""
        dev = self.device
        return torch.autocast(dev.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _loss(
        self, criterion: nn.Module, video: torch.Tensor, audio: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits of the model as validated (B, C + 1), detached)."""
        if isinstance(self.model, PairModel):
            lv, la = self.model.forward_parts(video, audio)
            return criterion(lv, y) + criterion(la, y), self.model.fuse_logits(
                lv.detach(), la.detach()
            )
        logits = self.model(video, audio)
        return criterion(logits, y), logits.detach()

    def train_epoch(
        self, epoch: int, train_batches: TrainBatches
    ) -> tuple[float, float, int, float]:
        """One pass over ``train_batches(epoch)``: (mean loss, chunk mAP of the batches as
        predicted while training, samples, seconds).

        Batches may hold numpy arrays or tensors (already on the device, for a device-resident
        feed). The loop never waits for the device: losses, targets and predictions stay on it
        until the epoch ends. With ``amp_dtype`` the forward pass runs under bf16 autocast.
        """
        cfg, dev = self.cfg, self.device
        t0 = time.perf_counter()
        torch.manual_seed(_epoch_seed(cfg.seed, epoch))  # dropout: a function of (seed, epoch)
        criterion = self._criterion()
        estimate = cfg.class_weight == "balanced" and self.pos_freq is None
        pos_count = torch.zeros(cfg.model.vocabulary.num_outputs, dtype=torch.float64, device=dev)
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        n = 0
        seen_t: list[torch.Tensor] = []
        seen_p: list[torch.Tensor] = []
        for batch in train_batches(epoch):
            video = to_tensor(batch["video"], dev)  # (B, W, Dv)
            audio = to_tensor(batch["audio"], dev)  # (B, W, Da)
            y = to_tensor(batch["targets"], dev)  # (B, C + 1)
            if estimate:  # balanced weights from the targets seen so far (first epoch only)
                pos_count += y.sum(dim=0, dtype=torch.float64)
                p = (pos_count / (n + len(y))).clamp(1e-6, 1 - 1e-6)
                criterion = nn.BCEWithLogitsLoss(pos_weight=((1 - p) / p).float())
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
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
        self, epoch: int, train_batches: TrainBatches, valid_halves: ValidHalves
    ) -> dict[str, float]:
        t0 = time.perf_counter()
        lr = self.lr
        train_loss, train_map, n, train_s = self.train_epoch(epoch, train_batches)
        val, chunk_info = self.evaluate(valid_halves())
        metrics: dict[str, float] = {
            N.EPOCH: float(epoch),
            N.TRAIN_LOSS: train_loss,
            N.TRAIN_MAP: train_map,
            **val,
            N.LR: lr,
            N.TRAIN_SAMPLES: float(n),
            N.TRAIN_SAMPLES_PER_S: n / train_s if train_s > 0 else float("nan"),
            N.TRAIN_TIME_S: train_s,
            N.EPOCH_TIME_S: 0.0,
        }
        self.state.epoch = epoch
        self._schedule(epoch, metrics[self.cfg.monitor], chunk_info)
        metrics[N.LR_DECAYED] = float(self.cfg.schedule != "cosine" and self.lr < lr)
        metrics[N.EPOCH_TIME_S] = time.perf_counter() - t0
        self.history.append(metrics)
        return metrics

    def _schedule(self, epoch: int, value: float, chunk_info: dict[str, Any]) -> None:
        """Track the best epoch; step decay / cosine / plateau; early stopping."""
        cfg, st = self.cfg, self.state
        if value > st.best:
            st.best, st.best_epoch = value, epoch
            st.since_best = st.since_change = 0
            self.best_model_state = _cpu_state(self.model.state_dict())
            self.best_optim_state = _to_cpu(self.optimizer.state_dict())
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
                    self.optimizer.load_state_dict(self.best_optim_state)  # copied to the device
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


def _cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy on the CPU: checkpoints load on any device, and best copies take no GPU memory."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def _to_cpu(obj: Any) -> Any:
    """A deep copy of an optimizer state dict with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return copy.deepcopy(obj)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


# ---- entry points --------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    train_halves: Iterable[Half],
    valid_halves: Sequence[Half],
    on_epoch: Callable[[EpochEnd], Any] | None = None,
) -> TrainResult:
    """Train on in-memory halves (notebooks, tests): ChunkBatches + Trainer.fit."""
    stream = ChunkBatches(train_halves, cfg.model.window_frames, cfg.batch_size, seed=cfg.seed)
    valid = list(valid_halves)
    return Trainer(cfg).fit(stream, lambda: valid, on_epoch, pos_freq=stream.pos_freq)

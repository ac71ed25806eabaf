"""Test helpers (as in optuna.testing): fake trials for the MLflow tests.

Feeds `MLflowTrialCallback` exactly what the trainer would (per-epoch metric dicts, then a result
with best epoch, best metrics, history, best_chunk, model and config) in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DIM = 16  # feature width of the tiny models (the signature follows the config)


def tiny_train_config(fusion: str = "before_fc", window_s: float = 4.0, **model: Any) -> Any:
    """A real TrainConfig with a tiny ModelConfig (max pooling, 16-d features)."""
    from avspot.avmodels.config import ModelConfig
    from avspot.avmodels.trainer import TrainConfig

    m = {
        "fusion": fusion,
        "pooling": "max",
        "clusters": 4,
        "window_s": window_s,
        "video_dim": DIM,
        "audio_dim": DIM,
        "pool_out": 16,
        "dropout": 0.2,
    }
    m.update(model)
    return TrainConfig(model=ModelConfig(**m), lr=1e-3, batch_size=16, max_epochs=3)


def tiny_model(cfg: Any, seed: int = 0) -> Any:
    """build_model of the config's ModelConfig, deterministic weights, eval mode."""
    import torch

    from avspot.avmodels.trainer import _build

    torch.manual_seed(seed)
    model = _build(getattr(cfg, "model", cfg))
    if hasattr(model, "combined"):
        model = model.combined()
    model.eval()
    if getattr(model, "cfg", None) is None:
        model.cfg = getattr(cfg, "model", cfg)
    return model


@dataclass
class FakeResult:
    """The fields of avmodels.trainer.TrainResult that the callback reads."""

    config: Any
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    model: Any
    stop_reason: str = "max_epochs"
    wall_s: float = 0.1
    best_chunk: dict[str, Any] = field(default_factory=dict)


def fake_history(epochs: int = 4, quality: float = 0.5, seed: int = 0) -> list[dict[str, float]]:
    """Per-epoch metric dicts with the trainer's keys; lr decays 10x at epoch 3."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(1, epochs + 1):
        q = quality * (1 - 0.5**e)
        ap = {c: float(np.clip(q + rng.normal(0, 0.03), 0, 1)) for c in ("card", "subs", "soccer")}
        out.append(
            {
                "epoch": float(e),
                "train_loss": 1.0 / e,
                "val_loss": 1.2 / e,
                "val_map": float(np.mean(list(ap.values()))),
                **{f"val_ap_{c}": v for c, v in ap.items()},
                "val_average_map": 0.8 * q,
                "val_average_map_tight": 0.3 * q,
                **{f"val_average_map_{c}": 0.8 * v for c, v in ap.items()},
                "lr": 1e-3 if e < 3 else 1e-4,
            }
        )
    return out


def run_fake_trial(
    callback: Any,
    cfg: Any,
    *,
    epochs: int = 4,
    quality: float = 0.5,
    seed: int = 0,
    stop_after: int | None = None,
) -> FakeResult | None:
    """Drive `callback` as the trainer does; `stop_after` epochs: return early (an ASHA stop,
    without on_train_end)."""
    history = fake_history(epochs, quality, seed)
    for i, row in enumerate(history, 1):
        callback.on_epoch_end(int(row["epoch"]), dict(row), None)
        if stop_after is not None and i >= stop_after:
            return None
    best = max(history, key=lambda r: r["val_average_map"])
    confusion = [[50, 2, 1, 3], [1, 40, 2, 4], [0, 3, 30, 2], [9, 8, 7, 900]]
    result = FakeResult(
        config=cfg,
        best_epoch=int(best["epoch"]),
        best_metrics=dict(best),
        history=history,
        model=tiny_model(cfg, seed),
        best_chunk={"confusion": confusion, "labels": ["card", "subs", "soccer", "background"]},
    )
    callback.on_train_end(result)
    return result


def tiny_halves(n_halves: int = 2, n_frames: int = 240, split: str = "valid", seed: int = 0):
    """Random halves (DIM-d features) with a few events, for evaluation and serving tests."""
    from avspot.datasets.table import Event, Half

    rng = np.random.default_rng(seed)
    raw = {"card": "y-card", "subs": "substitution-in", "soccer": "soccer-ball"}
    out = []
    for h in range(n_halves):
        events = []
        for i, f in enumerate(sorted(rng.choice(np.arange(10, n_frames - 10), 3, replace=False))):
            label = ("card", "subs", "soccer")[i]
            events.append(Event(int(f), label, raw[label], int(f) * 500))
        out.append(
            Half(
                f"league/2020/game {seed}-{h // 2}",
                h % 2 + 1,
                split,
                2.0,
                rng.normal(size=(n_frames, DIM)).astype(np.float32),
                rng.normal(size=(n_frames, DIM)).astype(np.float32),
                events,
            )
        )
    return out


_TEMPLATE_DB: list[str] = []


def sqlite_store(directory: str | Any) -> str:
    """A fresh sqlite tracking URI in `directory`, copied from a migrated template database
    (creating MLflow's schema takes seconds; a copy takes milliseconds)."""
    import shutil
    import tempfile
    from pathlib import Path

    if not _TEMPLATE_DB:
        from mlflow import MlflowClient

        tmpl = Path(tempfile.mkdtemp(prefix="avspot-mlflow-template-")) / "mlflow.db"
        client = MlflowClient(tracking_uri=f"sqlite:///{tmpl}", registry_uri=f"sqlite:///{tmpl}")
        client.search_experiments()
        client.search_registered_models()
        _TEMPLATE_DB.append(str(tmpl))
    target = Path(directory) / "mlflow.db"
    shutil.copyfile(_TEMPLATE_DB[0], target)
    return f"sqlite:///{target}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a server a test or script starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: Any, timeout: float = 120.0) -> None:
    """Wait until ``url`` answers 200 while the server process ``proc`` (a Popen) runs.

    Raises RuntimeError when the process exits first and TimeoutError after ``timeout`` s.
    """
    import time
    import urllib.request

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f}s")

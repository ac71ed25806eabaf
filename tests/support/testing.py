"""Test helpers (as in optuna.testing): tiny configs, models and halves, scripted trials for the
MLflow tests, a fast sqlite store, and HTTP helpers for servers a test starts.

``run_fake_trial`` feeds ``TrialRun`` exactly what the trainer would (per-epoch
metric dicts, then a real ``TrainResult``) in well under a second.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DIM = 16  # feature width of the tiny models (the signature follows the config)


def tiny_train_config(fusion: str = "before_fc", window_s: float = 4.0, **model: Any) -> Any:
    """A real TrainConfig with a tiny ModelConfig (max pooling, 16-d features)."""
    from avspot.avmodels.config import ModelConfig
    from avspot.avmodels.train_config import TrainConfig

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

    from avspot.avmodels.fusion import PairModel, build_trainable

    torch.manual_seed(seed)
    model = build_trainable(getattr(cfg, "model", cfg))
    if isinstance(model, PairModel):
        model = model.combined()
    return model.eval()


def fake_history(epochs: int = 4, quality: float = 0.5, seed: int = 0) -> list[dict[str, float]]:
    """Per-epoch metric dicts with the trainer's keys; lr decays 10x after epoch 2."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(1, epochs + 1):
        q = quality * (1 - 0.5**e)
        ap = {c: float(np.clip(q + rng.normal(0, 0.03), 0, 1)) for c in ("card", "subs", "soccer")}
        out.append(
            {
                "epoch": float(e),
                "train_loss": 1.0 / e,
                "train_map": float(min(1.0, 1.2 * q)),
                "val_loss": 1.2 / e,
                "val_map": float(np.mean(list(ap.values()))),
                **{f"val_ap_{c}": v for c, v in ap.items()},
                "val_average_map": 0.8 * q,
                "val_average_map_tight": 0.3 * q,
                **{f"val_average_map_{c}": 0.8 * v for c, v in ap.items()},
                "lr": 1e-3 if e < 3 else 1e-4,
                "lr_decayed": float(e == 2),
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
    valid_halves: Any = None,
    timelines: int = 2,
) -> Any:
    """Drive the ``TrialRun`` ``callback`` as a trial does (an epoch at a time, then the result
    and FINISHED) and return the TrainResult; ``stop_after`` epochs: return None early (an ASHA
    stop: no result logged, the run left RUNNING). With ``valid_halves`` the kept model is scored
    on them in full (``validation.score_spots``) as a trial's final scoring does."""
    from avspot.avmodels.train_result import TrainResult

    history = fake_history(epochs, quality, seed)
    for i, row in enumerate(history, 1):
        callback.log_epoch(int(row["epoch"]), dict(row))
        if stop_after is not None and i >= stop_after:
            return None
    best = max(history, key=lambda r: r["val_average_map"])
    confusion = [[50, 2, 1, 3], [1, 40, 2, 4], [0, 3, 30, 2], [9, 8, 7, 900]]
    result = TrainResult(
        config=cfg,
        best_epoch=int(best["epoch"]),
        best_metrics=dict(best),
        history=history,
        model=tiny_model(cfg, seed),
        stop_reason="max_epochs",
        wall_s=0.1,
        best_chunk={"confusion": confusion, "labels": ["card", "subs", "soccer", "background"]},
    )
    scores = None
    if valid_halves is not None:
        from avspot.avmodels.validation import score_spots

        scores = score_spots(result.model, valid_halves, cfg.model.window_frames, keep=timelines)
    callback.log_result(result, scores)
    callback.close("FINISHED")
    return result


def tiny_halves(n_halves: int = 2, n_frames: int = 240, split: str = "valid", seed: int = 0):
    """Random halves (DIM-d features) with a few events, for evaluation and serving tests."""
    from avspot.datasets.halves import Event, Half

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


def tiny_manifest(fingerprint: str = "f" * 64, source: str = "synthetic") -> Any:
    """A table manifest as a search's parent run records it (no table behind it)."""
    from avspot.datasets.manifest import Manifest

    counts = {"games": 2, "halves": 4, "events": 12, "frames": 960, "per_split": {}}
    return Manifest(
        schema_version=1,
        source=source,
        seed=0,
        counts=counts,
        frames=960,
        bytes=0,
        fingerprint=fingerprint,
        files=[],
        fps=2.0,
        feature_dims={"video": DIM, "audio": DIM},
    )


def stop_group(proc: Any, timeout: float = 15.0) -> None:
    """Stop the process group of a server we started with ``start_new_session=True`` (by its
    pid): SIGTERM, then SIGKILL after ``timeout`` seconds."""
    import os
    import signal
    import subprocess

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)


def mlflow_server_cmd(port: int, store: str, artifacts: str | None = None) -> list[str]:
    """The ``mlflow server`` command the project starts: loopback only, one worker (run it with
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false: no job runner), artifacts proxied when given."""
    import sys
    from pathlib import Path

    cmd = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1", "--backend-store-uri", store]
    return cmd + (["--artifacts-destination", artifacts] if artifacts else [])

"""``avspot train``: one configuration, in process, on a feature table (no Ray, no MLflow)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from avspot.avmodels import names as N
from avspot.avmodels.data import ChunkBatches
from avspot.avmodels.model_io import save_model
from avspot.avmodels.train_config import TrainConfig
from avspot.avmodels.train_result import EpochEnd, TrainResult
from avspot.avmodels.trainer import Trainer
from avspot.datasets.atomic import write_files_atomic, write_json_atomic
from avspot.datasets.errors import DataError
from avspot.datasets.halves import Half
from avspot.datasets.storage import check_writable_dir
from avspot.datasets.table import read_halves
from avspot.datasets.verify import check_table


def epoch_line(end: EpochEnd) -> str:
    """One readable line per epoch."""
    m = end.metrics
    return (
        f"epoch {end.epoch:3d}  train_loss {m[N.TRAIN_LOSS]:.4f}  "
        f"train_map {m[N.TRAIN_MAP]:.4f}  val_loss {m[N.VAL_LOSS]:.4f}  "
        f"val_map {m[N.VAL_MAP]:.4f}  val_average_map {m.get(N.VAL_AVERAGE_MAP, float('nan')):.4f}  "
        f"lr {m[N.LR]:.2e}  {m[N.TRAIN_SAMPLES_PER_S]:.0f} samples/s  {m[N.EPOCH_TIME_S]:.1f}s"
    )


def _split(uri: str, split: str, endpoint: str | None) -> list[Half]:
    halves = read_halves(uri, split, endpoint=endpoint)
    if not halves:
        raise DataError(f"{uri}: split {split!r} is empty")
    return halves


def train_from_table(
    data_uri: str,
    overrides: Mapping[str, Any] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """One configuration (typed ``overrides`` of the default ``TrainConfig``) on a table's
    train split, validated on its valid split, in process (all train halves in memory). Writes ``model.pt`` (``model_io.save_model``),
    ``model_config.json``, ``train_config.json`` and ``results.json`` to ``out_dir`` if given.
    """
    overrides = dict(overrides or {})
    cfg = TrainConfig().merge(overrides)
    t0 = time.perf_counter()
    # Before any work: a table with a bad part, an output directory that cannot be written.
    fingerprint = check_table(data_uri, endpoint).fingerprint
    if out_dir is not None:
        check_writable_dir(out_dir, "out")
    train_halves = _split(data_uri, "train", endpoint)
    valid_halves = _split(data_uri, "valid", endpoint)
    first = train_halves[0]
    cfg = cfg.for_table(
        video_dim=first.video.shape[1],
        audio_dim=first.audio.shape[1],
        label_set=first.label_set,
        fps=first.fps,
        given=overrides,
    )
    stream = ChunkBatches(train_halves, cfg.model.window_frames, cfg.batch_size, seed=cfg.seed)
    d = stream.describe()
    log(
        f"data {data_uri} (fingerprint {fingerprint[:12] or '?'}): {d['halves']} train halves, "
        f"{d['samples']} chunks of {cfg.model.window_frames} frames, {len(valid_halves)} valid "
        f"halves; read in {time.perf_counter() - t0:.1f}s"
    )
    log("config " + json.dumps(cfg.flat(), sort_keys=True))
    result = Trainer(cfg).fit(
        stream, lambda: valid_halves, lambda end: log(epoch_line(end)), pos_freq=stream.pos_freq
    )
    if out_dir is not None and result.model is not None:
        out = Path(out_dir)
        results = {"data": data_uri, "fingerprint": fingerprint, **result.to_dict()}
        model = result.model
        write_files_atomic(  # the four appear together or not at all (a full disk: none)
            out,
            {
                "model.pt": lambda p: save_model(model, cfg.model, p),
                "model_config.json": lambda p: write_json_atomic(p, cfg.model.to_dict(), indent=1),
                "train_config.json": lambda p: write_json_atomic(p, cfg.to_dict(), indent=1),
                "results.json": lambda p: write_json_atomic(p, results, indent=1),
            },
        )
        log(f"wrote model.pt, model_config.json, train_config.json, results.json to {out}")
    return result

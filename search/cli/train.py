"""``avspot train``: one configuration, in process, on a feature table (no Ray, no MLflow)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from avspot.avmodels.data import ChunkBatches
from avspot.avmodels.model_io import save_model
from avspot.avmodels.train_config import TrainConfig
from avspot.avmodels.trainer import Trainer, TrainResult
from avspot.datasets.atomic import write_files_atomic, write_json_atomic
from avspot.datasets.errors import DataError
from avspot.datasets.halves import Half
from avspot.datasets.storage import check_writable_dir
from avspot.datasets.table import iter_halves
from avspot.datasets.verify import check_table


class LogEpochs:
    """Trainer callback: one line per epoch through ``log``."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def on_epoch_end(self, epoch: int, m: dict[str, float], trainer: Trainer) -> None:
        am = m.get("val_average_map", float("nan"))
        self.log(
            f"epoch {epoch:3d}  train_loss {m['train_loss']:.4f}  train_map {m['train_map']:.4f}  "
            f"val_loss {m['val_loss']:.4f}  val_map {m['val_map']:.4f}  val_average_map {am:.4f}  "
            f"lr {m['lr']:.2e}  {m['train_samples_per_s']:.0f} samples/s  "
            f"{m['epoch_time_s']:.1f}s"
        )


def read_split(uri: str, split: str, endpoint: str | None) -> list[Half]:
    """Every half of one split in memory; DataError when the split is empty."""
    halves = list(iter_halves(uri, split, endpoint=endpoint))
    if not halves:
        raise DataError(f"{uri}: split {split!r} is empty")
    return halves


def fit_dims(cfg: TrainConfig, half: Half, overrides: Mapping[str, str]) -> TrainConfig:
    """Take the feature widths from the table unless set explicitly (then they must match)."""
    widths = {"video_dim": int(half.video.shape[1]), "audio_dim": int(half.audio.shape[1])}
    model = cfg.model
    for key, width in widths.items():
        if key in overrides and getattr(model, key) != width:
            raise DataError(
                f"--set {key}={getattr(model, key)}: the table's features are {width} wide"
            )
    return dataclasses.replace(cfg, model=model.replace(**widths))


def train_from_table(
    data_uri: str,
    overrides: Mapping[str, str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """One configuration on a table's train split, validated on its valid split, in process
    (all train halves in memory). Writes ``model.pt`` (``model_io.save_model``),
    ``model_config.json``, ``train_config.json`` and ``results.json`` to ``out_dir`` if given.
    """
    overrides = dict(overrides or {})
    cfg = TrainConfig.from_overrides(overrides)
    t0 = time.perf_counter()
    # Before any work: a table with a bad part, an output directory that cannot be written.
    fingerprint = check_table(data_uri, endpoint).fingerprint
    if out_dir is not None:
        check_writable_dir(out_dir, "--out")
    train_halves = read_split(data_uri, "train", endpoint)
    valid_halves = read_split(data_uri, "valid", endpoint)
    cfg = fit_dims(cfg, train_halves[0], overrides)
    stream = ChunkBatches(train_halves, cfg.model.window_frames, cfg.batch_size, seed=cfg.seed)
    d = stream.describe()
    log(
        f"data {data_uri} (fingerprint {fingerprint[:12] or '?'}): {d['halves']} train halves, "
        f"{d['samples']} chunks of {cfg.model.window_frames} frames, {len(valid_halves)} valid "
        f"halves; read in {time.perf_counter() - t0:.1f}s"
    )
    log("config " + json.dumps(cfg.flat(), sort_keys=True))
    result = Trainer(cfg).fit(
        stream, lambda: valid_halves, [LogEpochs(log)], pos_freq=stream.pos_freq
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

"""The Ray Tune trial: one configuration trained by the plain-PyTorch trainer.

Training windows stream from the feature table through Ray Data (read row groups, cut each half
into chunk windows, local shuffle, batches); the trial never holds the table in memory.
Validation halves stream one at a time straight from Parquet. The trainer knows nothing of
Tune or MLflow: this module adapts its callbacks to `tune.report` (metrics plus a checkpoint every
epoch) and to the MLflow child run of the trial.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Fraction of a CPU that each Ray Data task asks for: on a 2-CPU machine whole-CPU read tasks
# starve behind the trials that hold the CPUs (DESIGN section 2), so data tasks take a slice.
DATA_TASK_CPUS = 0.25
CHECKPOINT_FILE = "trainer.pt"


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs besides its config; travels to workers via tune.with_parameters."""

    data_uri: str
    endpoint: str | None
    metric: str
    max_epochs: int | None
    tracking_uri: str | None
    experiment_id: str | None
    parent_run_id: str | None
    seed: int = 0
    fixed: dict[str, str] = field(default_factory=dict)  # `avspot search --set` overrides


def _windows_from_halves(batch: Any, window_frames: int) -> dict[str, np.ndarray]:
    """Ray Data map_batches fn: a pyarrow batch of halves -> their chunk windows and targets."""
    from avspot.datasets.table import halves_from_arrow
    from avspot.datasets.windows import chunk_labels, gather_chunks

    videos, audios, targets = [], [], []
    for half in halves_from_arrow(batch, copy=False):
        starts, tg = chunk_labels(half, window_frames)  # (C,), (C, 4)
        videos.append(gather_chunks(half.video, starts, window_frames))  # (C, W, Dv)
        audios.append(gather_chunks(half.audio, starts, window_frames))  # (C, W, Da)
        targets.append(tg)
    if not videos:
        return {"video": np.zeros((0, window_frames, 512), np.float32)}
    return {
        "video": np.concatenate(videos),
        "audio": np.concatenate(audios),
        "targets": np.concatenate(targets).astype(np.float32),
    }


def ray_train_batches(
    data_uri: str,
    *,
    window_frames: int,
    batch_size: int,
    seed: int,
    endpoint: str | None = None,
    shuffle_halves: int = 4,
) -> Callable[[int], Iterator[dict[str, np.ndarray]]]:
    """Epoch -> iterator of training batches streamed by Ray Data from the table's train split."""
    from avspot.datasets.table import ray_read

    def batches(epoch: int) -> Iterator[dict[str, np.ndarray]]:
        ds = ray_read(
            data_uri,
            split="train",
            endpoint=endpoint,
            ray_remote_args={"num_cpus": DATA_TASK_CPUS},
        )
        ds = ds.randomize_block_order(seed=seed * 1000 + epoch)
        ds = ds.map_batches(
            _windows_from_halves,
            fn_kwargs={"window_frames": window_frames},
            batch_size=1,
            batch_format="pyarrow",
            num_cpus=DATA_TASK_CPUS,
        )
        # ~135 windows per 45-min half at T=20 s: shuffle across a few halves.
        buffer = max(batch_size, shuffle_halves * 5400 // max(window_frames, 1))
        for batch in ds.iter_batches(
            batch_size=batch_size,
            batch_format="numpy",
            local_shuffle_buffer_size=buffer,
            local_shuffle_seed=seed * 1000 + epoch,
        ):
            # Arrays from the object store are read-only: copy before torch.from_numpy.
            yield {k: np.array(v, copy=True) for k, v in batch.items()}

    return batches


def train_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """Tune function trainable: train `config`, report every epoch, resume from a checkpoint."""
    import ray
    from ray import tune

    from avspot.avmodels.trainer import TrainConfig, Trainer
    from avspot.datasets.table import iter_halves
    from avspot.search.spaces import trainer_overrides

    overrides = {**trainer_overrides(config), **ctx.fixed}
    if ctx.max_epochs is not None and "max_epochs" not in config:
        overrides["max_epochs"] = str(ctx.max_epochs)
    overrides.setdefault("monitor", ctx.metric)
    overrides.setdefault("seed", str(ctx.seed))
    cfg = TrainConfig.from_overrides(overrides)
    # Ray sets OMP_NUM_THREADS to the floor of the trial's CPUs (1 for 1.5); use them all.
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    threads = int(os.environ.get("AVSPOT_TRIAL_THREADS", "0")) or max(1, math.ceil(cpus))
    torch.set_num_threads(threads)

    trainer = Trainer(cfg)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            trainer.load_checkpoint(os.path.join(d, CHECKPOINT_FILE))

    tracker = None
    if ctx.parent_run_id is not None:
        from avspot.search.tracking import MLflowTrialCallback

        context = tune.get_context()
        tracker = MLflowTrialCallback(
            parent_run_id=ctx.parent_run_id,
            experiment_id=ctx.experiment_id,
            trial_config=cfg.to_dict(),
            run_name=context.get_trial_name(),
            tracking_uri=ctx.tracking_uri,
            trial_id=context.get_trial_id(),
            data_uri=ctx.data_uri,
            endpoint=ctx.endpoint,
        )

    class _TuneReport:
        """Reports every epoch to Tune. The last epoch's report is held back until `fit` has
        returned (and the MLflow callback has logged the model): a scheduler may stop the trial
        as soon as it sees a report, and nothing after that report would run."""

        def __init__(self) -> None:
            self.held: tuple[dict[str, float], str] | None = None
            self._dir = tempfile.TemporaryDirectory(prefix="avspot-final-")

        def on_epoch_end(self, epoch: int, metrics: dict[str, float], trainer: Trainer) -> None:
            report = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
            report["epoch"] = epoch
            report["finished"] = float(trainer.will_stop())
            if report["finished"]:
                trainer.save_checkpoint(os.path.join(self._dir.name, CHECKPOINT_FILE))
                self.held = (report, self._dir.name)
                return
            with tempfile.TemporaryDirectory() as d:
                trainer.save_checkpoint(os.path.join(d, CHECKPOINT_FILE))
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(d))

        def flush(self) -> None:
            if self.held is not None:
                report, d = self.held
                self.held = None
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(d))
            self._dir.cleanup()

    window_frames = cfg.model.window_frames
    train_batches = ray_train_batches(
        ctx.data_uri,
        window_frames=window_frames,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        endpoint=ctx.endpoint,
    )

    def valid_halves():
        return iter_halves(ctx.data_uri, split="valid", endpoint=ctx.endpoint)

    reporter = _TuneReport()
    callbacks: list[Any] = [reporter] if tracker is None else [tracker, reporter]
    try:
        trainer.fit(train_batches, valid_halves, callbacks=callbacks)
    except BaseException as exc:
        if tracker is not None:
            tracker.close("FAILED", error=exc)
        raise
    if tracker is not None:
        tracker.close("FINISHED")
    reporter.flush()

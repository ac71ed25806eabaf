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
import queue
import tempfile
import threading
from collections.abc import Iterable, Iterator
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
    threads: int = 0  # torch threads per trial; 0: the trial's CPUs rounded up


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


class _End:
    """Marks the end of a prefetched epoch (or carries the error that ended it)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Prefetch:
    """One epoch's batches produced by a background thread into a small bounded queue.

    Ray Data takes seconds to start an epoch (planning, Parquet sampling tasks, worker start-up)
    before its first batch; started while the trainer validates, that latency is hidden.
    """

    def __init__(self, epoch: int, source: Iterator[dict[str, np.ndarray]], depth: int) -> None:
        self.epoch = epoch
        self._source = source
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"avspot-prefetch-epoch-{epoch}", daemon=True
        )
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for batch in self._source:
                if not self._put(batch):
                    return
            self._put(_End())
        except BaseException as exc:  # handed to the consumer, raised in its thread
            self._put(_End(exc))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=10)


class RayTrainStream:
    """Epoch -> iterator of training batches streamed by Ray Data from the table's train split.

    Each epoch reads the split's row groups anew (block order shuffled per epoch), cuts every
    half into chunk windows in Ray Data tasks, shuffles windows locally across a few halves and
    batches them; no more than a few halves' windows are in the trial at a time. When an epoch's
    last batch has been handed out, the next epoch's stream starts in a background thread
    (``prefetch`` batches deep) so that its start-up overlaps the trainer's validation.
    """

    def __init__(
        self,
        data_uri: str,
        *,
        window_frames: int,
        batch_size: int,
        seed: int,
        endpoint: str | None = None,
        shuffle_halves: int = 4,
        max_epochs: int | None = None,
        prefetch: int = 2,
    ) -> None:
        self.data_uri, self.endpoint = data_uri, endpoint
        self.window_frames, self.batch_size, self.seed = window_frames, batch_size, seed
        self.shuffle_halves, self.max_epochs, self.prefetch = shuffle_halves, max_epochs, prefetch
        self._next: _Prefetch | None = None

    def stream(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """The epoch's batches, read in the calling thread (no prefetching)."""
        from avspot.datasets.table import ray_read

        ds = ray_read(
            self.data_uri,
            split="train",
            endpoint=self.endpoint,
            ray_remote_args={"num_cpus": DATA_TASK_CPUS},
        )
        ds = ds.randomize_block_order(seed=self.seed * 1000 + epoch)
        ds = ds.map_batches(
            _windows_from_halves,
            fn_kwargs={"window_frames": self.window_frames},
            batch_size=1,
            batch_format="pyarrow",
            num_cpus=DATA_TASK_CPUS,
        )
        # ~135 windows per 45-min half at T=20 s: shuffle across a few halves.
        buffer = max(self.batch_size, self.shuffle_halves * 5400 // max(self.window_frames, 1))
        for batch in ds.iter_batches(
            batch_size=self.batch_size,
            batch_format="numpy",
            local_shuffle_buffer_size=buffer,
            local_shuffle_seed=self.seed * 1000 + epoch,
        ):
            # Arrays from the object store are read-only: copy before torch.from_numpy.
            yield {k: np.array(v, copy=True) for k, v in batch.items()}

    def __call__(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        pending, self._next = self._next, None
        if pending is not None and pending.epoch != epoch:
            pending.close()  # resumed elsewhere: not the epoch that was prefetched
            pending = None
        source: Iterable[dict[str, np.ndarray]] = pending if pending else self.stream(epoch)
        try:
            yield from source
        finally:
            if pending is not None:
                pending.close()
        self.start(epoch + 1)

    def start(self, epoch: int) -> None:
        """Begin streaming ``epoch`` in the background (nothing past ``max_epochs``)."""
        if self.prefetch <= 0 or (self.max_epochs is not None and epoch > self.max_epochs):
            return
        self.close()
        self._next = _Prefetch(epoch, self.stream(epoch), self.prefetch)

    def close(self) -> None:
        """Stop a prefetch in flight (the trainer stopped before the next epoch)."""
        if self._next is not None:
            self._next.close()
            self._next = None


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
    # Ray sets OMP_NUM_THREADS to the floor of the trial's CPUs (1 for 1.5); use them all, or
    # the search's share of the machine (ctx.threads: on local Ray the CPU kept for Ray Data is
    # idle while a trial validates, so its trials may use it).
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    threads = (
        int(os.environ.get("AVSPOT_TRIAL_THREADS", "0")) or ctx.threads or max(1, math.ceil(cpus))
    )
    torch.set_num_threads(threads)

    trainer = Trainer(cfg)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            trainer.load_checkpoint(os.path.join(d, CHECKPOINT_FILE))
    train_batches = RayTrainStream(
        ctx.data_uri,
        window_frames=cfg.model.window_frames,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        endpoint=ctx.endpoint,
        max_epochs=cfg.max_epochs,
    )
    train_batches.start(trainer.state.epoch + 1)  # Ray Data starts up while MLflow does

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

    def valid_halves():
        return iter_halves(ctx.data_uri, split="valid", endpoint=ctx.endpoint)

    reporter = _TuneReport()
    callbacks: list[Any] = [reporter] if tracker is None else [tracker, reporter]
    try:
        try:
            trainer.fit(train_batches, valid_halves, callbacks=callbacks)
        except BaseException as exc:
            if tracker is not None:
                tracker.close("FAILED", error=exc)
            raise
        if tracker is not None:
            tracker.close("FINISHED")
    finally:
        train_batches.close()
    reporter.flush()

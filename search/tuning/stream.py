"""A trial's training batches: Ray Data streams the table's train split, epoch after epoch.

Each epoch reads the split's row groups (block order shuffled per epoch), cuts every half into
chunk windows in Ray Data tasks, shuffles windows locally across a few halves and batches them;
no more than a few halves' windows are in the trial at a time. The next epoch's stream starts in
a background thread when an epoch's last batch has been handed out, so that Ray Data's start-up
(8-13 s on a 40-game table) overlaps the trainer's validation.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from avspot.datasets.table import halves_from_arrow, ray_read
from avspot.datasets.windows import chunk_labels, gather_chunks

# Fraction of a CPU that each Ray Data task asks for: on a 2-CPU machine whole-CPU read tasks
# starve behind the trials that hold the CPUs, so data tasks take a slice.
DATA_TASK_CPUS = 0.25


def windows_from_halves(batch: Any, window_frames: int) -> dict[str, np.ndarray]:
    """Ray Data map_batches fn: a pyarrow batch of halves -> their chunk windows and targets."""
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
        ds = ray_read(
            self.data_uri,
            split="train",
            endpoint=self.endpoint,
            ray_remote_args={"num_cpus": DATA_TASK_CPUS},
        )
        ds = ds.randomize_block_order(seed=self.seed * 1000 + epoch)
        ds = ds.map_batches(
            windows_from_halves,
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

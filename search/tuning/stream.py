"""A trial's training batches, from the table's train split: two feeds, chosen by size.

``MemoryFeed`` (the default when the split fits the trial's memory budget): the trial reads the
split once, its files in parallel threads, at the start of the trial (overlapping its MLflow set-up);
every epoch then gathers chunk windows from memory (``avmodels.data.ChunkBatches``), on the
trial's GPU when it has one. It delivers what the in-process loader delivers; re-reading and
re-cutting the split every epoch through the object store delivered about a ninth of that on a
40-game table (380 against 3,266 windows/s).

``RayTrainStream`` (splits larger than the budget): every epoch Ray Data reads the split's row
groups (block order shuffled per epoch), cuts every half into chunk windows in Ray Data tasks,
shuffles windows locally across a few halves and batches them; no more than a few halves'
windows are in the trial at a time, so trial memory stays flat as the table grows. The next
epoch's stream starts in a background thread during the previous epoch's validation.

``train_feed`` picks one: the split's feature bytes (from the manifest) against
``$AVSPOT_FEED_MEMORY_BYTES`` (default: a quarter of the machine's memory, at most 16 GiB).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from avspot.avmodels.data import ChunkBatches
from avspot.datasets.manifest import Manifest
from avspot.datasets.table import halves_from_arrow, ray_read, read_halves
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


@dataclass
class FeedSpec:
    """What a feed reads and how it batches: the table, window length, batch size, seed."""

    data_uri: str
    window_frames: int
    batch_size: int
    seed: int
    endpoint: str | None = None


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
        spec: FeedSpec,
        *,
        shuffle_halves: int = 4,
        max_epochs: int | None = None,
        prefetch: int = 2,
    ) -> None:
        self.data_uri, self.endpoint = spec.data_uri, spec.endpoint
        self.window_frames, self.batch_size, self.seed = (
            spec.window_frames,
            spec.batch_size,
            spec.seed,
        )
        self.shuffle_halves, self.max_epochs, self.prefetch = shuffle_halves, max_epochs, prefetch
        self._next: _Prefetch | None = None

    def stream(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """The epoch's batches, read in the calling thread (no prefetching)."""
        ds = ray_read(
            self.data_uri,
            split="train",
            endpoint=self.endpoint,
            patient=True,  # mid-search: an S3 outage is waited for (bounded)
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


def split_bytes(manifest: Manifest, split: str = "train") -> int:
    """Bytes of a split's features in memory (float32, both modalities), from the manifest."""
    frames = manifest.counts.get("per_split", {}).get(split, {}).get("frames", manifest.frames)
    return int(frames) * 4 * sum(manifest.feature_dims.values())


def memory_budget() -> int:
    """Bytes a trial may hold of its train split: $AVSPOT_FEED_MEMORY_BYTES, else a quarter of
    the machine's memory, at most 16 GiB."""
    env = os.environ.get("AVSPOT_FEED_MEMORY_BYTES")
    if env:
        return int(env)
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return min(total // 4, 16 << 30)


class MemoryFeed:
    """Epoch -> batches gathered from the train split held in memory (on ``device`` if given).

    ``start`` begins the read in a background thread; the first epoch waits for it.
    """

    def __init__(self, spec: FeedSpec, device: Any = None) -> None:
        self.spec, self.device = spec, device
        self._batches: ChunkBatches | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _load(self) -> None:
        try:
            sp = self.spec
            # patient: an S3 outage mid-search is waited for (bounded)
            halves = read_halves(sp.data_uri, "train", endpoint=sp.endpoint, patient=True)
            self._batches = ChunkBatches(
                halves, sp.window_frames, sp.batch_size, seed=sp.seed, device=self.device
            )
        except BaseException as exc:  # handed to the trainer's thread in __call__
            self._error = exc

    def start(self, epoch: int = 1) -> None:
        """Begin reading the split in the background (the epoch does not matter here)."""
        if self._batches is None and self._thread is None:
            self._thread = threading.Thread(target=self._load, name="avspot-feed-read", daemon=True)
            self._thread.start()

    def batches(self) -> ChunkBatches:
        """The split in memory, read now if ``start`` was not called."""
        if self._batches is None:
            if self._thread is None:
                self._load()
            else:
                self._thread.join()
                self._thread = None
            if self._error is not None:
                error, self._error = self._error, None
                raise error
        assert self._batches is not None
        return self._batches

    def __call__(self, epoch: int) -> Iterator[dict[str, Any]]:
        yield from self.batches()(epoch)

    def close(self) -> None:
        """Nothing runs between epochs; a read in flight finishes on its own."""


def train_feed(
    data_uri: str,
    manifest: Manifest | None,
    *,
    window_frames: int,
    batch_size: int,
    seed: int,
    endpoint: str | None = None,
    max_epochs: int | None = None,
    device: Any = None,
) -> MemoryFeed | RayTrainStream:
    """The feed for a trial: in memory when the train split fits the budget, else streamed."""
    spec = FeedSpec(data_uri, window_frames, batch_size, seed, endpoint)
    if manifest is not None and split_bytes(manifest) <= memory_budget():
        on_device = device
        if device is not None and getattr(device, "type", str(device)) == "cuda":
            import torch

            free, _ = torch.cuda.mem_get_info(device)
            on_device = device if split_bytes(manifest) <= free // 2 else None  # else host memory
        elif device is not None and getattr(device, "type", str(device)) == "cpu":
            on_device = None
        return MemoryFeed(spec, on_device)
    return RayTrainStream(spec, max_epochs=max_epochs)

"""A trial's training batches: the train split read from the table once per machine, then
either held whole or streamed in groups of halves. Both are ``ChunkBatches``, the one batcher.

Every trial first makes sure its machine has the split decoded on local disk
(``datasets.node_cache``: read from the table, S3 or local, by the first trial of the machine;
the others wait for it and read nothing from the table). Then, by size:

- ``MemoryFeed`` when the split fits the machine's feed budget (``$AVSPOT_FEED_MEMORY_BYTES``,
  default a quarter of its memory, at most 16 GiB): the cached files mapped read-only, so the
  trials of one machine share one copy in memory; epochs shuffle every chunk of the split. On a
  GPU, the split goes on the card when it fits the trial's share of it (``gpu_budget``).
- ``StreamFeed`` otherwise: each epoch visits the halves in a seeded random order, a group of
  them (about ``GROUP_BYTES``) at a time: a background thread reads the next group from the
  cached files while batches are cut from the current one (shuffled inside the group); memory
  stays at about three groups whatever the split's size.

Before this design every epoch went through Ray Data: 2% of the in-process loader's windows/s.

``train_feed`` decides, and says why in a ``FeedChoice`` (logged as the trial's params).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from avspot.avmodels.data import Batch, ChunkBatches
from avspot.datasets.errors import DataError
from avspot.datasets.manifest import Manifest
from avspot.datasets.node_cache import CachedSplit, ensure_split, split_nbytes
from avspot.search.tuning.prefetch import Prefetch

GROUP_BYTES = 128 << 20  # a streamed group of halves (~6 45-min halves in float32)
MEMORY_ENV = "AVSPOT_FEED_MEMORY_BYTES"
# On the GPU, model, gradients and Adam's two moments take 4 copies of the parameters; what is
# left of the trial's share, less this margin for activations, may hold the split.
ACTIVATION_MARGIN = 0.25


@dataclass(frozen=True)
class FeedSpec:
    """What a feed batches: the table, window length, batch size, seed."""

    data_uri: str
    window_frames: int
    batch_size: int
    seed: int
    endpoint: str | None = None


@dataclass(frozen=True)
class FeedChoice:
    """Which feed a trial took and why (its MLflow params: ``feed``, ``feed_*``)."""

    kind: str  # memory | stream
    reason: str
    split_bytes: int
    budget_bytes: int
    on_device: bool = False
    filled: bool = False  # this trial read the table (else another process on its machine did)
    table_bytes_read: int = 0  # bytes this trial read from the table's storage

    def params(self) -> dict[str, Any]:
        """``feed`` (the kind) and ``feed_<field>`` for the rest."""
        out = {f"feed_{k}": v for k, v in dataclasses.asdict(self).items()}
        out["feed"] = out.pop("feed_kind")
        return out


def memory_budget() -> int:
    """Bytes of a split a machine may hold in memory for its trials (one shared copy):
    $AVSPOT_FEED_MEMORY_BYTES, else a quarter of the machine's memory, at most 16 GiB."""
    env = os.environ.get(MEMORY_ENV)
    if env:
        return int(env)
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return min(total // 4, 16 << 30)


def gpu_budget(device: Any, share: float, n_params: int) -> int:
    """Bytes of the card a trial holding ``share`` of it may give its split: its share of the
    card's memory, less the model's weights, gradients and Adam moments (4 x float32 per
    parameter) and a margin for activations. Two trials on one card each count half of it."""
    import torch

    total = torch.cuda.get_device_properties(device).total_memory
    share = min(max(share, 0.0), 1.0) or 1.0  # a CUDA device without a Ray share: the card
    mine = total * share
    return max(0, int(mine * (1 - ACTIVATION_MARGIN) - 16 * n_params))


class MemoryFeed:
    """Epoch -> batches over the whole split (the node cache's shared map, or on the device)."""

    def __init__(self, cached: CachedSplit, spec: FeedSpec, device: Any = None) -> None:
        arrays = cached.arrays()
        self.batches = ChunkBatches(
            cached.as_halves(arrays),
            spec.window_frames,
            spec.batch_size,
            seed=spec.seed,
            device=device,
            features=(arrays["video"], arrays["audio"]),
        )

    def __call__(self, epoch: int) -> Iterator[Batch]:
        yield from self.batches(epoch)

    def close(self) -> None:
        """Nothing runs in the background."""


class StreamFeed:
    """Epoch -> batches cut from blocks of consecutive halves of the node cache, mapped (not
    copied) one block at a time.

    Each epoch cuts the split into blocks of ``group_halves`` halves at a random offset and
    visits them in a random order, both functions of (seed, epoch); a block is batched by a
    ``ChunkBatches`` shuffled by (seed, epoch, block), on ``device`` when given; a block's last
    windows that do not fill a batch open the next block's first batch. The next block is
    mapped in a background thread, which runs on into the next epoch: its first block is mapped
    while the last one of this epoch is cut and the trainer validates. Memory: about three
    blocks, whatever the split's size.
    """

    def __init__(
        self,
        cached: CachedSplit,
        spec: FeedSpec,
        device: Any = None,
        *,
        group_bytes: int = GROUP_BYTES,
        max_epochs: int | None = None,
    ) -> None:
        self.cached, self.spec, self.device, self.max_epochs = cached, spec, device, max_epochs
        per_half = cached.nbytes / max(1, len(cached.halves))
        self.group_halves = max(2, int(group_bytes // max(per_half, 1)))
        self._next: Prefetch | None = None  # groups read ahead, from epoch ``_next_epoch`` on
        self._next_epoch = 0

    def blocks(self, epoch: int) -> list[tuple[int, int]]:
        """(first half, count) of the epoch's blocks, in the order they are visited."""
        n, k = len(self.cached.halves), self.group_halves
        rng = np.random.default_rng((self.spec.seed, int(epoch)))
        shift = int(rng.integers(1, k)) if n > k else 0
        cuts = sorted({0, n, *range(shift or k, n, k)})
        spans = [(a, b - a) for a, b in zip(cuts, cuts[1:], strict=False)]
        return [spans[i] for i in rng.permutation(len(spans))]

    def groups(self, epoch: int) -> Iterator[_Group]:
        """The epoch's blocks, mapped and batched one after the other (in the calling thread)."""
        sp = self.spec
        for g, (first, count) in enumerate(self.blocks(epoch)):
            block = self.cached.map_block(first, count)
            seed = int(np.random.SeedSequence([sp.seed, int(epoch), g]).generate_state(1)[0])
            batches = ChunkBatches(
                block.halves,
                sp.window_frames,
                sp.batch_size,
                seed=seed,
                device=self.device,
                features=(block.arrays["video"], block.arrays["audio"]),
            )
            if self.device is not None:  # the block was copied to the device: unmap it now
                block.close()
            yield _Group(batches, block)
            del batches, block  # this frame holds no view while the consumer unmaps it

    def _groups_from(self, epoch: int) -> Iterator[Any]:
        """The groups of ``epoch``, an ``_EpochEnd``, then those of the next epochs (none past
        ``max_epochs``): one background thread maps the next epoch's first block while the
        consumer cuts the last block of this one, so back-to-back epochs do not wait for it."""
        while True:
            yield from self.groups(epoch)
            yield _EpochEnd(epoch)
            epoch += 1
            if self.max_epochs is not None and epoch > self.max_epochs:
                return

    def __call__(self, epoch: int) -> Iterator[Batch]:
        if self._next is None or self._next_epoch != epoch:
            self.close()  # nothing read ahead, or ahead for another epoch (a resumed trial)
            self._next, self._next_epoch = self._read_ahead(epoch), epoch
        source, finished = self._next, False

        def this_epoch() -> Iterator[_Group]:
            nonlocal finished
            for item in source:
                if isinstance(item, _EpochEnd):
                    finished = True
                    return
                yield item

        try:
            yield from _full_batches(this_epoch(), self.spec.batch_size, epoch)
        finally:
            ahead = self.max_epochs is None or epoch < self.max_epochs
            if finished and ahead:
                self._next_epoch = epoch + 1  # the source runs on into the next epoch
            else:
                self.close()  # the last epoch, or left mid-epoch (what is queued is this one's)

    def _read_ahead(self, epoch: int) -> Prefetch:
        """The background thread mapping the groups of ``epoch`` and the epochs after it."""
        return Prefetch(self._groups_from(epoch), 1, name=f"avspot-feed-epoch-{epoch}")

    def start(self, epoch: int) -> None:
        """Begin mapping ``epoch``'s first blocks in the background (none past max_epochs)."""
        if self.max_epochs is not None and epoch > self.max_epochs:
            return
        self.close()
        self._next, self._next_epoch = self._read_ahead(epoch), epoch

    def close(self) -> None:
        if self._next is not None:
            self._next.close()
            self._next = None


@dataclass(frozen=True)
class _EpochEnd:
    """Marks the end of one epoch's groups in a stream that runs on into the next epoch."""

    epoch: int


class _Group:
    """One block's batcher, and the mapping it reads (closed once its batches are cut)."""

    def __init__(self, batches: ChunkBatches, block: Any) -> None:
        self.batches: ChunkBatches | None = batches
        self.block = block

    def order(self, epoch: int) -> np.ndarray:
        assert self.batches is not None
        return self.batches.order(epoch)

    def batch(self, idx: np.ndarray) -> Batch:
        assert self.batches is not None
        return self.batches.batch(idx)

    def empty(self, n: int) -> Batch:
        assert self.batches is not None
        return self.batches.empty(n)

    def batch_into(self, idx: np.ndarray, out: Batch, at: int) -> None:
        assert self.batches is not None
        self.batches.batch_into(idx, out, at)

    def close(self) -> None:
        self.batches = None  # its views of the mapping go first
        # Unmapping a block's populated pages takes ~a tenth of its batching: off this thread.
        threading.Thread(target=self.block.close, name="avspot-unmap", daemon=True).start()


def _full_batches(groups: Any, batch_size: int, epoch: int) -> Iterator[Batch]:
    """Batches of every group in turn; a group's remainder is gathered into a full-size batch
    that the next group's first windows complete (no copy beyond the gathers); the epoch's last
    remainder is yielded unless it is a single sample."""
    carry: Batch | None = None
    filled = 0
    for group in groups:
        try:
            order = group.order(epoch)
            lo = 0
            if carry is not None:
                lo = min(batch_size - filled, len(order))
                group.batch_into(order[:lo], carry, filled)
                filled += lo
                if filled < batch_size:
                    continue
                yield carry
                carry = None
            for start in range(lo, len(order), batch_size):
                idx = order[start : start + batch_size]
                if len(idx) == batch_size:
                    yield group.batch(idx)
                else:
                    carry, filled = group.empty(batch_size), len(idx)
                    group.batch_into(idx, carry, 0)
        finally:
            close = getattr(group, "close", None)
            if close is not None:
                close()
    if carry is not None and filled > 1:
        yield Batch(**{k: v[:filled] for k, v in carry.items()})  # type: ignore[misc]


class TrainFeed:
    """The trial's feed: ``start`` makes sure the split is on this machine and picks the feed
    in a background thread (while the trial opens its MLflow run); ``wait`` returns the
    ``FeedChoice``; calling it with an epoch yields that epoch's batches."""

    def __init__(
        self,
        spec: FeedSpec,
        manifest: Manifest,
        *,
        device: Any = None,
        gpu_share: float = 0.0,
        n_params: int = 0,
        max_epochs: int | None = None,
    ) -> None:
        self.spec, self.manifest, self.device = spec, manifest, device
        self.gpu_share, self.n_params, self.max_epochs = gpu_share, n_params, max_epochs
        self.choice: FeedChoice | None = None
        self._feed: MemoryFeed | StreamFeed | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._first_epoch = 1

    def _prepare(self) -> None:
        try:
            sp = self.spec
            cached, filled = ensure_split(sp.data_uri, self.manifest, "train", endpoint=sp.endpoint)
            budget, room = memory_budget(), None
            cuda = self.device is not None and getattr(self.device, "type", "cpu") == "cuda"
            if cuda:
                room = gpu_budget(self.device, self.gpu_share, self.n_params)
            kind, reason, whole_on_card = decide(cached.nbytes, budget, room)
            on_device = self.device if whole_on_card or (cuda and kind == "stream") else None
            if kind == "memory":
                self._feed = MemoryFeed(cached, sp, on_device)
            else:  # on a GPU each group goes to the card as it is cut
                self._feed = StreamFeed(cached, sp, on_device, max_epochs=self.max_epochs)
                self._feed.start(self._first_epoch)
            read = int(cached.fill.get("table_bytes_read", 0)) if filled else 0
            self.choice = FeedChoice(
                kind, reason, cached.nbytes, budget, on_device is not None, filled, read
            )
        except BaseException as exc:  # handed to the trainer's thread by wait()
            self._error = exc

    def start(self, epoch: int = 1) -> None:
        """Begin preparing the feed in the background; ``epoch`` is the first one trained."""
        self._first_epoch = epoch
        if self._thread is None and self._feed is None:
            self._thread = threading.Thread(target=self._prepare, name="avspot-feed", daemon=True)
            self._thread.start()

    def wait(self) -> FeedChoice:
        """The choice, once the split is on this machine (prepared now if not started)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        elif self.choice is None and self._error is None:
            self._prepare()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        assert self.choice is not None
        return self.choice

    def __call__(self, epoch: int) -> Iterator[Batch]:
        self.wait()
        assert self._feed is not None
        yield from self._feed(epoch)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._feed is not None:
            self._feed.close()


def decide(split_bytes: int, budget: int, gpu_room: int | None = None) -> tuple[str, str, bool]:
    """(memory | stream, why, whether the whole split goes on the GPU). A split that fits what
    the trial's share of its card leaves for data (``gpu_room``; None without a GPU) goes on the
    card whole, whatever the host's feed budget: the host then holds no copy of its own (only
    reclaimable page cache while it is copied). Otherwise a split within the machine's feed
    budget is held in memory (one copy per machine), a larger one streamed in groups of halves."""
    size = _gb(split_bytes)
    if gpu_room is not None and split_bytes <= gpu_room:
        return "memory", f"split {size} <= the card's share left for data {_gb(gpu_room)}", True
    on_card = "" if gpu_room is None else f"; the card's share left for data is {_gb(gpu_room)}"
    if split_bytes <= budget:
        return "memory", f"split {size} <= feed budget {_gb(budget)}{on_card}", False
    return "stream", f"split {size} > feed budget {_gb(budget)}{on_card}", False


def check_plan(manifest: Manifest, cache_free_bytes: int, *, cached: bool = False) -> str:
    """The line a search prints once at its start: which feed its trials will take on a
    machine like this one; DataError when the split fits neither memory nor the node cache
    (``cached``: the split is on this machine's disk already)."""
    need = split_nbytes(manifest, "train")
    if need > cache_free_bytes and not cached:
        raise DataError(
            f"the train split needs {_gb(need)} on each machine's disk (decoded, once per "
            f"machine) and {_gb(cache_free_bytes)} are free: set AVSPOT_CACHE_DIR to a larger "
            "disk (or use a float16 table: half the bytes)"
        )
    kind, reason, _ = decide(need, memory_budget())  # the GPU share is the trial's to know
    how = "held in memory, one copy per machine" if kind == "memory" else "streamed from disk"
    where = "already on this machine's disk" if cached else "read once per machine"
    return f"feed: {kind} ({reason}; {how}; {where})"


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e7 else f"{n / 1e6:.1f} MB" if n >= 1e4 else f"{n} B"


def train_feed(
    data_uri: str,
    manifest: Manifest,
    *,
    window_frames: int,
    batch_size: int,
    seed: int,
    endpoint: str | None = None,
    max_epochs: int | None = None,
    device: Any = None,
    gpu_share: float = 0.0,
    n_params: int = 0,
) -> TrainFeed:
    """The feed of a trial (prepared in the background once ``start`` is called)."""
    spec = FeedSpec(data_uri, window_frames, batch_size, seed, endpoint)
    return TrainFeed(
        spec,
        manifest,
        device=device,
        gpu_share=gpu_share,
        n_params=n_params,
        max_epochs=max_epochs,
    )


__all__ = [
    "GROUP_BYTES",
    "FeedChoice",
    "FeedSpec",
    "MemoryFeed",
    "StreamFeed",
    "TrainFeed",
    "check_plan",
    "decide",
    "gpu_budget",
    "memory_budget",
    "train_feed",
]

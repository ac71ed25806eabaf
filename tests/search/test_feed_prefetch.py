"""The streamed feed's background reads: groups produced ahead, the next epoch started early."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from avspot.search.tuning.feed import FeedSpec, StreamFeed
from avspot.search.tuning.prefetch import Prefetch


def _batches(n: int, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise RuntimeError(f"read failed at batch {i}")
        yield {"targets": np.full((2, 4), i, np.float32)}


def test_prefetch_hands_over_every_batch_in_order():
    got = [int(b["targets"][0, 0]) for b in Prefetch(_batches(7), depth=2)]
    assert got == list(range(7))


def test_prefetch_raises_the_producers_error_in_the_consumer():
    with pytest.raises(RuntimeError, match="batch 3"):
        list(Prefetch(_batches(7, fail_at=3), depth=2))


def test_prefetch_close_stops_a_blocked_producer():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield {"targets": np.zeros((1, 4), np.float32)}
            i += 1

    pf = Prefetch(endless(), depth=2)
    deadline = time.monotonic() + 60  # a safety net only: the producer blocks within moments
    while not (pf._queue.full() and len(produced) == 3) and time.monotonic() < deadline:
        time.sleep(0.01)
    # bounded by the queue, not the source: two items queued, the third waiting to be put
    assert pf._queue.full() and produced == [0, 1, 2]
    pf.close()
    assert not pf._thread.is_alive()
    assert len(produced) <= 4  # closing frees the queue: at most one more item


class _Group:
    """Stands in for a group's ChunkBatches: 3 samples whose targets say (epoch, sample)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self, epoch: int) -> np.ndarray:
        return np.arange(3)

    def batch(self, idx: np.ndarray) -> dict:
        return {"targets": (10 * self.epoch + np.asarray(idx, np.float32))[:, None]}


class _Fake(StreamFeed):
    """The feed's epoch bookkeeping with counted in-process groups instead of the node cache."""

    def __init__(self, **kw):
        self.spec = FeedSpec("unused", window_frames=4, batch_size=3, seed=0)
        self.max_epochs = kw.get("max_epochs")
        self._next = None
        self.started: list[tuple[int, str]] = []

    def groups(self, epoch):
        self.started.append((epoch, threading.current_thread().name))
        yield _Group(epoch)


def _firsts(batches) -> list[int]:
    return [int(t) for b in batches for t in b["targets"][:, 0]]


def test_stream_reads_the_next_epoch_ahead_but_not_past_the_last():
    s = _Fake(max_epochs=2)
    for epoch in (1, 2):
        assert _firsts(s(epoch)) == [10 * epoch + i for i in range(3)]
    s.close()
    # epoch 2's groups were started when epoch 1 ended (in the background); no epoch 3
    assert [e for e, _ in s.started] == [1, 2]
    assert all(name.startswith("avspot-feed-epoch") for _, name in s.started)


def test_a_resumed_trial_discards_a_read_ahead_of_another_epoch():
    s = _Fake(max_epochs=9)
    s.start(1)
    assert _firsts(s(5)) == [50, 51, 52]  # restored from a checkpoint at epoch 4
    s.close()


def test_one_background_thread_runs_on_from_epoch_to_epoch():
    s = _Fake(max_epochs=3)
    for epoch in (1, 2, 3):
        assert _firsts(s(epoch)) == [10 * epoch + i for i in range(3)]
    s.close()
    # epoch 2's and 3's groups came from the thread that epoch 1 started: no wait between epochs
    assert [e for e, _ in s.started] == [1, 2, 3]
    assert {name for _, name in s.started} == {"avspot-feed-epoch-1"}


def test_an_epoch_left_midway_leaves_nothing_stale_for_the_next():
    s = _Fake(max_epochs=5)
    s.spec = FeedSpec("unused", window_frames=4, batch_size=1, seed=0)  # 3 batches per group
    it = s(1)
    next(it)
    it.close()  # the trainer stopped in the middle of epoch 1
    assert _firsts(s(2)) == [20, 21, 22]
    # past max_epochs there is no read-ahead, but an epoch asked for is still served
    assert _firsts(s(7)) == [70, 71, 72]
    s.close()

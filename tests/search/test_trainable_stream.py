"""The trial's training stream: Ray Data epochs, the next one started in the background."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from avspot.search.tuning.stream import FeedSpec, RayTrainStream, _Prefetch


def _batches(n: int, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise RuntimeError(f"read failed at batch {i}")
        yield {"targets": np.full((2, 4), i, np.float32)}


def test_prefetch_hands_over_every_batch_in_order():
    got = [int(b["targets"][0, 0]) for b in _Prefetch(1, _batches(7), depth=2)]
    assert got == list(range(7))


def test_prefetch_raises_the_producers_error_in_the_consumer():
    with pytest.raises(RuntimeError, match="batch 3"):
        list(_Prefetch(1, _batches(7, fail_at=3), depth=2))


def test_prefetch_close_stops_a_blocked_producer():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield {"targets": np.zeros((1, 4), np.float32)}
            i += 1

    pf = _Prefetch(2, endless(), depth=2)
    time.sleep(0.3)
    pf.close()
    assert not pf._thread.is_alive()
    assert len(produced) <= 4  # bounded by the queue, not the source


class _Fake(RayTrainStream):
    """The stream's epoch bookkeeping with a counting in-process source instead of Ray Data."""

    def __init__(self, **kw):
        super().__init__(FeedSpec("unused", window_frames=4, batch_size=2, seed=0), **kw)
        self.started: list[tuple[int, str]] = []

    def stream(self, epoch):
        self.started.append((epoch, threading.current_thread().name))
        for i in range(3):
            yield {"targets": np.full((2, 4), 10 * epoch + i, np.float32)}


def test_stream_prefetches_the_next_epoch_but_not_past_the_last():
    s = _Fake(max_epochs=2)
    for epoch in (1, 2):
        assert [int(b["targets"][0, 0]) for b in s(epoch)] == [10 * epoch + i for i in range(3)]
    s.close()
    # epoch 1 read in the caller; epoch 2 created when epoch 1 ended; no epoch 3
    assert [e for e, _ in s.started] == [1, 2]


def test_a_resumed_trial_discards_a_prefetch_of_another_epoch():
    s = _Fake(max_epochs=9)
    s.start(1)
    got = [int(b["targets"][0, 0]) for b in s(5)]  # restored from a checkpoint at epoch 4
    assert got == [50, 51, 52]
    s.close()


def test_no_prefetch_when_disabled():
    s = _Fake(max_epochs=3, prefetch=0)
    list(s(1))
    assert s._next is None

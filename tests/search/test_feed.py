"""A trial's feed: the train split read once into memory (the default) or streamed every epoch,
chosen by the split's size against a memory budget; device-resident batches equal host ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avspot.avmodels.data import ChunkBatches
from avspot.datasets.manifest import read_manifest
from avspot.datasets.table import read_halves, write_table
from avspot.search.tuning.stream import (
    FeedSpec,
    MemoryFeed,
    RayTrainStream,
    memory_budget,
    split_bytes,
    train_feed,
)
from tests.support import testing as F


@pytest.fixture()
def table(tmp_path) -> str:
    uri = str(tmp_path / "table")
    halves = F.tiny_halves(6, split="train") + F.tiny_halves(2, split="valid", seed=1)
    write_table(halves, uri, source="synthetic", halves_per_file=2)  # 3 train files
    return uri


def test_read_halves_in_threads_keeps_storage_order(table) -> None:
    from avspot.datasets.table import iter_halves

    got = read_halves(table, "train", threads=3)
    ref = list(iter_halves(table, "train"))  # one half at a time, in storage order
    assert [(h.game, h.half) for h in got] == [(h.game, h.half) for h in ref]
    assert len(got) == 6
    for h, r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(h.video, r.video)
        assert h.video.flags.writeable


def test_memory_feed_equals_the_in_process_loader(table) -> None:
    feed = MemoryFeed(FeedSpec(table, window_frames=8, batch_size=16, seed=3))
    feed.start(1)  # read in the background
    ref = ChunkBatches(read_halves(table, "train"), 8, 16, seed=3)
    for epoch in (1, 2):
        for got, want in zip(feed(epoch), ref(epoch), strict=True):
            for key in ("video", "audio", "targets"):
                np.testing.assert_array_equal(got[key], want[key])
    assert sum(len(b["targets"]) for b in feed(3)) == ref.num_samples


def test_memory_feed_hands_a_read_error_to_the_trainer(tmp_path) -> None:
    feed = MemoryFeed(FeedSpec(str(tmp_path / "nothing"), window_frames=8, batch_size=16, seed=0))
    feed.start(1)
    with pytest.raises(ValueError, match="not a feature table"):
        next(iter(feed(1)))


def test_device_resident_batches_equal_host_batches(table) -> None:
    halves = read_halves(table, "train")
    host = ChunkBatches(halves, 8, 16, seed=1)
    dev = ChunkBatches(halves, 8, 16, seed=1, device=torch.device("cpu"))  # the tensor path
    for a, b in zip(host(1), dev(1), strict=True):
        assert isinstance(b["video"], torch.Tensor)
        for key in ("video", "audio", "targets"):
            np.testing.assert_array_equal(a[key], b[key].numpy())
    assert host.nbytes == dev.nbytes == 2 * 6 * 240 * F.DIM * 4


def test_train_feed_streams_what_does_not_fit(table, monkeypatch) -> None:
    m = read_manifest(table)
    assert split_bytes(m) == 2 * 6 * 240 * F.DIM * 4
    kw = {"window_frames": 8, "batch_size": 16, "seed": 0}
    assert isinstance(train_feed(table, m, **kw), MemoryFeed)
    monkeypatch.setenv("AVSPOT_FEED_MEMORY_BYTES", str(split_bytes(m) - 1))
    assert memory_budget() == split_bytes(m) - 1
    assert isinstance(train_feed(table, m, **kw), RayTrainStream)
    assert isinstance(train_feed(table, None, **kw), RayTrainStream)  # size unknown

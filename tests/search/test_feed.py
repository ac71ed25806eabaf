"""A trial's feed: the split decoded on the machine once (node cache), then held whole or
streamed in groups of halves; both equal the in-process loader's windows; the choice logged."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from avspot.avmodels.data import ChunkBatches
from avspot.datasets.errors import DataError
from avspot.datasets.manifest import read_manifest
from avspot.datasets.node_cache import ensure_split, split_nbytes
from avspot.datasets.table import read_halves, write_table
from avspot.datasets.windows import chunk_labels
from avspot.search.tuning.feed import (
    FeedSpec,
    MemoryFeed,
    StreamFeed,
    check_plan,
    decide,
    memory_budget,
    train_feed,
)
from tests.support import testing as F


@pytest.fixture()
def table(tmp_path) -> str:
    uri = str(tmp_path / "table")
    halves = F.tiny_halves(6, split="train") + F.tiny_halves(2, split="valid", seed=1)
    write_table(halves, uri, source="synthetic", halves_per_file=2)  # 3 train files
    return uri


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("AVSPOT_CACHE_DIR", str(root))
    return root


def test_read_halves_in_threads_keeps_storage_order(table) -> None:
    from avspot.datasets.table import iter_halves

    got = read_halves(table, "train", threads=3)
    ref = list(iter_halves(table, "train"))  # one half at a time, in storage order
    assert [(h.game, h.half) for h in got] == [(h.game, h.half) for h in ref]
    assert len(got) == 6
    for h, r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(h.video, r.video)
        assert h.video.flags.writeable


def test_node_cache_holds_the_split_once_and_reads_it_back(table, cache) -> None:
    m = read_manifest(table)
    cached, filled = ensure_split(table, m, "train")
    again, filled_again = ensure_split(table, m, "train")
    assert filled and not filled_again and again.path == cached.path
    assert cached.fill["table_bytes_read"] == sum(
        f["bytes"] for f in m.files if f["split"] == "train"
    )
    assert cached.nbytes == split_nbytes(m, "train") == 2 * 6 * 240 * F.DIM * 4
    ref = read_halves(table, "train")
    halves = cached.as_halves(cached.arrays())
    assert [(h.game, h.half, len(h.events)) for h in halves] == [
        (h.game, h.half, len(h.events)) for h in ref
    ]
    for h, r in zip(halves, ref, strict=True):
        np.testing.assert_array_equal(h.video, r.video)
        np.testing.assert_array_equal(h.audio, r.audio)
        assert h.events == r.events
    block = cached.map_block(3, 2)  # halves 3 and 4, mapped for as long as the block is open
    np.testing.assert_array_equal(block.halves[0].video, ref[3].video)
    np.testing.assert_array_equal(block.halves[1].audio, ref[4].audio)
    assert (
        block.arrays["video"].shape == (2 * 240, F.DIM)
        and not block.arrays["video"].flags.writeable
    )
    block.close()
    assert block.maps == [] and block.halves == []
    assert sorted(p.name for p in cache.glob("*/*")) == ["train", "train.lock"]  # no staging


def _resident_kib(path: Path) -> tuple[int, int]:
    """(Size, Rss) in KiB of this process's mappings of ``path`` (/proc/self/smaps)."""
    size = rss = 0
    mine = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1] in "0123456789abcdef" and "-" in line.split()[0]:
            mine = line.rstrip().endswith(str(path))
        elif mine and line.startswith(("Size:", "Rss:")):
            kib = int(line.split()[1])
            size, rss = (size + kib, rss) if line.startswith("Size:") else (size, rss + kib)
    return size, rss


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="Linux /proc only")
@pytest.mark.parametrize("populate", [True, False])
def test_a_mapped_block_is_resident_before_it_is_read(table, cache, monkeypatch, populate) -> None:
    from avspot.datasets import node_cache

    cached, _ = ensure_split(table, read_manifest(table), "train")
    if not populate:  # no madvise to call (before Linux 5.14, or no libc): pages fault on read
        monkeypatch.setattr(node_cache, "_libc_madvise", lambda: None)
    block = cached.map_block(1, 4)
    size, rss = _resident_kib(cached.path / "video.bin")
    assert size > 0 and (rss == size) == populate
    ref = read_halves(table, "train")
    np.testing.assert_array_equal(block.halves[3].video, ref[4].video)  # the same data either way
    block.close()
    assert _resident_kib(cached.path / "video.bin") == (0, 0)  # unmapped


def _ensure_in_process(table: str, root: str, out: str) -> None:
    os.environ["AVSPOT_CACHE_DIR"] = root
    cached, filled = ensure_split(table, read_manifest(table), "train")
    Path(out).write_text(json.dumps({"filled": filled, "bytes": cached.fill["table_bytes_read"]}))


def test_two_processes_read_the_table_once_per_machine(table, cache, tmp_path) -> None:
    ctx = mp.get_context("spawn")
    outs = [tmp_path / f"p{i}.json" for i in range(2)]
    procs = [ctx.Process(target=_ensure_in_process, args=(table, str(cache), str(o))) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    got = [json.loads(o.read_text()) for o in outs]
    assert sorted(g["filled"] for g in got) == [False, True]  # one filled, the other waited
    split = sum(f["bytes"] for f in read_manifest(table).files if f["split"] == "train")
    assert sum(g["bytes"] for g in got if g["filled"]) == split


def test_memory_feed_equals_the_in_process_loader(table, cache) -> None:
    cached, _ = ensure_split(table, read_manifest(table), "train")
    feed = MemoryFeed(cached, FeedSpec(table, window_frames=8, batch_size=16, seed=3))
    ref = ChunkBatches(read_halves(table, "train"), 8, 16, seed=3)
    for epoch in (1, 2):
        for got, want in zip(feed(epoch), ref(epoch), strict=True):
            for key in ("video", "audio", "targets"):
                np.testing.assert_array_equal(got[key], want[key])
    assert isinstance(feed.batches.video, np.memmap)  # the machine's one copy, not the trial's


@pytest.mark.parametrize("device", [None, torch.device("cpu")])
def test_stream_feed_holds_every_window_once_per_epoch(table, cache, device) -> None:
    cached, _ = ensure_split(table, read_manifest(table), "train")
    half_bytes = cached.nbytes // 6
    feed = StreamFeed(
        cached, FeedSpec(table, 8, 16, seed=1), device, group_bytes=2 * half_bytes, max_epochs=2
    )
    assert feed.group_halves == 2
    ref = ChunkBatches(read_halves(table, "train"), 8, 16, seed=1)
    want = sorted(
        np.round(ref.batch(np.arange(ref.num_samples))["video"].astype(np.float64).sum((1, 2)), 4)
    )
    orders = []
    for epoch in (1, 2):
        batches = list(feed(epoch))
        sizes = [len(b["targets"]) for b in batches]
        assert all(s == 16 for s in sizes[:-1]) and sizes[-1] > 1  # groups top each other up
        video = [np.asarray(b["video"]) for b in batches]
        got = sorted(np.round(np.concatenate(video).astype(np.float64).sum((1, 2)), 4))
        assert got == pytest.approx(want) and sum(sizes) == ref.num_samples
        orders.append(np.concatenate(video)[:, 0, 0])
        targets = np.concatenate([np.asarray(b["targets"]) for b in batches])
        assert targets.sum(axis=0).tolist() == ref.targets.sum(axis=0).tolist()
    assert not np.array_equal(orders[0], orders[1])  # another order each epoch
    feed.close()
    again = StreamFeed(cached, FeedSpec(table, 8, 16, seed=1), device, group_bytes=2 * half_bytes)
    first = np.concatenate([np.asarray(b["video"]) for b in again(2)])[:, 0, 0]
    np.testing.assert_array_equal(first, orders[1])  # an epoch depends on (seed, epoch) only
    again.close()


def test_train_feed_picks_by_size_and_says_why(table, cache, monkeypatch) -> None:
    m = read_manifest(table)
    need = split_nbytes(m, "train")
    kw = {"window_frames": 8, "batch_size": 16, "seed": 0}
    feed = train_feed(table, m, **kw)
    feed.start()
    choice = feed.wait()
    assert choice.kind == "memory" and choice.filled and choice.split_bytes == need
    assert choice.table_bytes_read > 0 and "<= feed budget" in choice.reason
    assert set(choice.params()) >= {"feed", "feed_reason", "feed_split_bytes", "feed_filled"}
    assert sum(len(b["targets"]) for b in feed(1)) > 0
    feed.close()
    monkeypatch.setenv("AVSPOT_FEED_MEMORY_BYTES", str(need // 10))  # forced streaming
    assert memory_budget() == need // 10
    feed = train_feed(table, m, **kw)
    choice = feed.wait()  # prepared in the caller when not started
    assert choice.kind == "stream" and not choice.filled and choice.table_bytes_read == 0
    assert choice.params()["feed_filled"] is False  # another trial of the machine read it
    assert sum(len(b["targets"]) for b in feed(1)) == sum(
        len(chunk_labels(h, 8)[0]) for h in read_halves(table, "train")
    )
    feed.close()


def test_a_split_that_fits_no_disk_fails_at_once_naming_what_to_set(table) -> None:
    m = read_manifest(table)
    line = check_plan(m, 1 << 40)
    assert line.startswith("feed: memory (split") and "read once per machine" in line
    with pytest.raises(DataError, match="AVSPOT_CACHE_DIR"):
        check_plan(m, 10)
    assert "already on this machine" in check_plan(m, 10, cached=True)


def test_memory_feed_hands_a_read_error_to_the_trainer(tmp_path, cache) -> None:
    table = str(tmp_path / "table2")
    write_table(F.tiny_halves(2, split="train"), table, source="synthetic")
    manifest = read_manifest(table)
    (Path(table) / manifest.files[0]["path"]).unlink()  # a part lost after the search started
    feed = train_feed(table, manifest, window_frames=8, batch_size=16, seed=0)
    feed.start(1)
    with pytest.raises((DataError, OSError)):
        next(iter(feed(1)))
    assert not list(cache.glob("*/.train.fill-*"))  # the failed fill left nothing behind


def test_device_resident_batches_equal_host_batches(table) -> None:
    halves = read_halves(table, "train")
    host = ChunkBatches(halves, 8, 16, seed=1)
    dev = ChunkBatches(halves, 8, 16, seed=1, device=torch.device("cpu"))  # the tensor path
    for a, b in zip(host(1), dev(1), strict=True):
        assert isinstance(b["video"], torch.Tensor)
        for key in ("video", "audio", "targets"):
            np.testing.assert_array_equal(a[key], b[key].numpy())
    assert host.nbytes == dev.nbytes == 2 * 6 * 240 * F.DIM * 4


GB = 10**9


@pytest.mark.parametrize(
    ("split", "budget", "room", "kind", "on_card"),
    [
        (2 * GB, 4 * GB, None, "memory", False),  # no GPU: the host budget decides
        (13 * GB, 4 * GB, None, "stream", False),
        (6 * GB, 4 * GB, 17 * GB, "memory", True),  # fits the card: whole on it, host budget or not
        (6 * GB, 4 * GB, 4 * GB, "stream", False),  # a half share of the card is too small
        (2 * GB, 4 * GB, 1 * GB, "memory", False),  # too big for the card, fits the host
    ],
)
def test_a_split_goes_on_the_card_when_it_fits_the_trials_share(split, budget, room, kind, on_card):
    got_kind, reason, got_on_card = decide(split, budget, room)
    assert (got_kind, got_on_card) == (kind, on_card)
    assert f"{split / GB:.2f} GB" in reason
    assert ("card" in reason) == (room is not None)

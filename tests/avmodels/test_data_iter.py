"""In-process batching for the trainer (avmodels/data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from avspot.avmodels.data import ChunkBatches
from avspot.avmodels.metrics import events_to_dense
from avspot.datasets.errors import DataError
from avspot.datasets.halves import Event, Half
from avspot.datasets.windows import gather_chunks

RAW = {"card": "y-card", "subs": "substitution-in", "soccer": "soccer-ball"}


def _half(i: int, n: int = 100, d: int = 3, events: tuple = ()) -> Half:
    video = np.arange(n * d, dtype=np.float32).reshape(n, d) + 1000 * i  # (N, D), traceable
    audio = -video[:, :2].copy()  # (N, 2): another width
    ev = [Event(f, lab, RAW[lab], f * 500) for f, lab in events]
    return Half(f"g{i}", 1, "train", 2.0, video, audio, ev)


def test_gather_chunks_edge_pads_both_ends() -> None:
    x = np.arange(10, dtype=np.float32)[:, None]  # (10, 1)
    out = gather_chunks(x, np.array([-2, 0, 7]), 4)  # (3, 4, 1)
    assert out.shape == (3, 4, 1) and out.dtype == np.float32
    assert out[:, :, 0].tolist() == [[0, 0, 0, 1], [0, 1, 2, 3], [7, 8, 9, 9]]


def test_chunk_batches_shapes_cover_every_chunk_once() -> None:
    halves = [_half(i, events=((5, "card"), (50, "soccer"))) for i in range(3)]
    stream = ChunkBatches(halves, window_frames=10, batch_size=8, seed=1)
    assert stream.num_samples == 30 and len(stream) == 4
    seen = []
    for b in stream(1):
        assert b["video"].shape[1:] == (10, 3) and b["audio"].shape[1:] == (10, 2)
        assert b["targets"].shape[1] == 4 and b["video"].dtype == np.float32
        assert len(b["video"]) == len(b["audio"]) == len(b["targets"])
        # each window is 10 consecutive frames of one half: recover (half, start) from values
        first = b["video"][:, 0, 0]
        assert np.all(np.diff(b["video"][:, :, 0], axis=1) == 3)
        seen += [(int(v // 1000), int(v % 1000) // 3) for v in first]
    assert sorted(seen) == [(h, s) for h in range(3) for s in range(0, 100, 10)]
    assert stream.pos_freq.tolist() == pytest.approx([0.1, 0, 0.1, 0.8])
    assert stream.describe()["positives"] == [3, 0, 3, 24]


def test_float16_features_stay_float16_until_the_device() -> None:
    from avspot.avmodels.device import to_tensor

    h = _half(0)
    h.video, h.audio = h.video.astype(np.float16), h.audio.astype(np.float16)
    b = next(iter(ChunkBatches([h], 10, 4)(1)))
    assert b["video"].dtype == np.float16 and b["targets"].dtype == np.float32
    t = to_tensor(b["video"], "cpu")
    assert t.dtype.is_floating_point and t.dtype.itemsize == 4


def test_chunk_batches_targets_follow_their_windows() -> None:
    halves = [_half(0, events=((25, "subs"),)), _half(1, events=((71, "card"),))]
    stream = ChunkBatches(halves, window_frames=10, batch_size=64, seed=0)
    (b,) = list(stream(3))
    for v, t in zip(b["video"], b["targets"], strict=True):
        h, start = int(v[0, 0] // 1000), int(v[0, 0] % 1000) // 3
        want = [0, 0, 0, 1]
        if (h, start) == (0, 20):
            want = [0, 1, 0, 0]
        if (h, start) == (1, 70):
            want = [1, 0, 0, 0]
        assert t.tolist() == want


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    halves = [_half(i) for i in range(4)]
    a = ChunkBatches(halves, 10, 16, seed=7)
    b = ChunkBatches(halves, 10, 16, seed=7)
    first = [x["video"] for x in a(2)]
    assert all(np.array_equal(x, y["video"]) for x, y in zip(first, b(2), strict=True))
    assert not np.array_equal(a.order(1), a.order(2))
    assert not np.array_equal(a.order(1), ChunkBatches(halves, 10, 16, seed=8).order(1))
    assert np.array_equal(ChunkBatches(halves, 10, 16, shuffle=False).order(5), np.arange(40))


def test_single_sample_tail_batch_is_skipped() -> None:
    stream = ChunkBatches([_half(0, n=90)], 10, 8)  # 9 chunks: 8 + 1
    assert len(stream) == 1 and [len(b["targets"]) for b in stream(1)] == [8]


def test_read_only_inputs_and_no_halves() -> None:
    h = _half(0)
    h.video.setflags(write=False)
    stream = ChunkBatches([h], 10, 4)
    assert next(iter(stream(1)))["video"].flags.writeable
    with pytest.raises(DataError, match="no halves"):
        ChunkBatches([], 10, 4)


def test_validation_chunks_in_order_and_dense_targets() -> None:
    h = _half(0, n=35, events=((3, "card"), (34, "soccer")))
    ordered = ChunkBatches([h], 10, 2, shuffle=False)  # 4 chunks: batches of 2 and 2
    batches = list(ordered())
    starts = [int(v[0, 0]) // 3 for b in batches for v in b["video"]]
    assert starts == [0, 10, 20, 30] and len(ordered) == 2
    assert [len(b["targets"]) for b in ChunkBatches([h], 10, 3, shuffle=False)()] == [3, 1]
    dense = events_to_dense(h.events, h.n_frames)  # (N, 3)
    assert dense.shape == (35, 3) and dense[3, 0] == 1 and dense[34, 2] == 1 and dense.sum() == 2

import numpy as np
import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.halves import Event, Half
from avspot.datasets.windows import chunk_labels, gather_chunks, n_sliding_windows, sliding_starts


def _half(n=100, events=()):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return Half("g", 1, "train", 2.0, x, x.copy(), list(events))


def test_chunk_labels_multi_hot_and_background():
    h = _half(
        100,
        [
            Event(5, "card", "y-card", 2500),
            Event(15, "soccer", "soccer-ball", 7500),
            Event(19, "subs", "substitution-in", 9500),
            Event(99, "soccer", "soccer-ball", 49500),
        ],
    )
    starts, targets = chunk_labels(h, 20)
    assert starts.tolist() == [0, 20, 40, 60, 80]
    assert targets.shape == (5, 4) and targets.dtype == np.float32
    assert targets[0].tolist() == [1, 1, 1, 0]
    assert targets[1].tolist() == [0, 0, 0, 1]
    assert targets[4].tolist() == [0, 0, 1, 0]
    assert (targets[:, 3] == (targets[:, :3].sum(1) == 0)).all()


def test_chunk_labels_partial_last_chunk():
    h = _half(45, [Event(44, "card", "r-card", 22000)])
    starts, targets = chunk_labels(h, 20)
    assert starts.tolist() == [0, 20, 40]
    assert targets[2, 0] == 1


def test_gather_chunks():
    h = _half(45)
    starts, _ = chunk_labels(h, 20)
    batch = gather_chunks(h.video, starts, 20)  # (3, 20, 3)
    assert batch.shape == (3, 20, 3)
    np.testing.assert_array_equal(batch[1], h.video[20:40])
    np.testing.assert_array_equal(batch[2, :5], h.video[40:45])
    np.testing.assert_array_equal(batch[2, 5:], np.repeat(h.video[44:45], 15, 0))  # edge pad


@pytest.mark.parametrize("n,w,stride", [(100, 20, 1), (101, 21, 2), (7, 40, 3), (50, 1, 5)])
def test_sliding_windows_centred_and_count(n, w, stride):
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)  # (n, 4)
    starts = sliding_starts(n, w, stride)
    assert starts.shape == (n_sliding_windows(n, stride),) == (-(-n // stride),)
    v = gather_chunks(x, starts, w)  # (n_windows, W, 4), edges repeated
    for i in range(v.shape[0]):
        c = i * stride
        expect = np.clip(np.arange(c - w // 2, c - w // 2 + w), 0, n - 1)
        np.testing.assert_array_equal(v[i, :, 0], expect)
        assert v[i, w // 2, 0] == c  # centred on frame i * stride


def test_sliding_windows_match_the_tensor_definition():
    """datasets.windows (index arithmetic) and avmodels.sliding (a padded tensor) agree."""
    torch = pytest.importorskip("torch")
    from avspot.avmodels.sliding import windows_reference

    x = np.random.default_rng(0).standard_normal((53, 3)).astype(np.float32)
    for w, s in ((8, 1), (9, 2), (40, 3)):
        ours = gather_chunks(x, sliding_starts(len(x), w, s), w)
        ref = windows_reference(torch.from_numpy(x), w, s).numpy()
        np.testing.assert_array_equal(ours, ref)


def test_windows_bad_args():
    x = np.zeros((10, 2), np.float32)
    with pytest.raises(DataError):
        sliding_starts(len(x), 0, 1)
    with pytest.raises(DataError):
        sliding_starts(len(x), 4, 0)
    with pytest.raises(DataError):
        gather_chunks(np.zeros((0, 2), np.float32), np.array([0]), 4)

"""ray_read over a local table with a real (small) local Ray."""

import numpy as np
import pytest

from avspot.datasets.table import half_from_row, halves_from_arrow, iter_halves, ray_read

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(
            address="local",
            num_cpus=1,
            object_store_memory=150 * 1024**2,
            include_dashboard=False,
            log_to_driver=False,
        )
    yield ray
    if started:
        ray.shutdown()


def test_ray_read(ray_local, tiny_table):
    expect = {(h.game, h.half): h for h in iter_halves(tiny_table)}
    ds = ray_read(tiny_table)
    assert ds.count() == len(expect)
    got = [
        h
        for b in ds.iter_batches(batch_format="pyarrow", batch_size=2)
        for h in halves_from_arrow(b)
    ]
    assert len(got) == len(expect)
    for h in got:
        e = expect[(h.game, h.half)]
        np.testing.assert_array_equal(h.video, e.video)
        assert h.events == e.events
    rows = list(ray_read(tiny_table, "valid").iter_rows())
    assert rows and all(r["split"] == "valid" for r in rows)
    h = half_from_row(rows[0])
    e = expect[(h.game, h.half)]
    np.testing.assert_array_equal(h.audio, e.audio)
    assert h.audio.flags.writeable and h.audio.dtype == np.float32
    batch = next(
        iter(ray_read(tiny_table, "test").iter_batches(batch_format="numpy", batch_size=1))
    )
    row = {k: v[0] for k, v in batch.items()}
    h = half_from_row(row)
    np.testing.assert_array_equal(h.video, expect[(h.game, h.half)].video)


def test_ray_read_float16_v2_without_audio(ray_local, tmp_path):
    """Ray hands float16 features out as float16 (no upcast), and a table without audio as
    zero-width audio; visibility and the label set survive."""
    from avspot.datasets.synth import synth_games
    from avspot.datasets.table import write_table

    halves = []
    for h in synth_games(2, seed=1, half_minutes=0.3, labels="v2"):
        h.audio = np.zeros((h.n_frames, 0), np.float32)
        halves.append(h)
    uri = str(tmp_path / "t")
    write_table(iter(halves), uri, source="unit", dtype="float16")
    expect = {(h.game, h.half): h for h in iter_halves(uri)}
    batches = ray_read(uri).iter_batches(batch_format="pyarrow", batch_size=2)
    got = [h for b in batches for h in halves_from_arrow(b)]
    assert len(got) == len(expect)
    for h in got:
        e = expect[(h.game, h.half)]
        assert h.video.dtype == np.float16 and h.audio.shape == (h.n_frames, 0)
        np.testing.assert_array_equal(h.video, e.video)
        assert h.events == e.events and h.label_set == "v2"
    for row in ray_read(uri).iter_rows():  # Python lists: the manifest's dtype says float16
        h = half_from_row(row, dtype="float16")
        e = expect[(h.game, h.half)]
        assert h.video.dtype == np.float16 and h.audio.shape == (h.n_frames, 0)
        np.testing.assert_array_equal(h.video, e.video)
        assert h.events == e.events and h.label_set == "v2"

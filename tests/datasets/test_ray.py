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

import json
import os
import socket

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.halves import Half
from avspot.datasets.manifest import MANIFEST_NAME, read_manifest
from avspot.datasets.storage import absolute_uri, resolve
from avspot.datasets.table import (
    half_from_row,
    half_to_table,
    halves_from_arrow,
    iter_halves,
    list_halves,
    read_halves,
    write_table,
)


def _halves(make, games=3):
    splits = ["train", "valid", "test"]
    out = []
    for g in range(games):
        for h in (1, 2):
            out.append(
                make(
                    game=f"lg/2015-2016/game {g}",
                    half=h,
                    split=splits[g % 3],
                    n=30 + g,
                    seed=g * 2 + h,
                )
            )
    return out


def _same(a: Half, b: Half):
    assert (a.game, a.half, a.split, a.fps) == (b.game, b.half, b.split, b.fps)
    np.testing.assert_array_equal(a.video, b.video)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.events == b.events
    assert b.video.dtype == np.float32


def test_round_trip_local(tmp_path, half_factory):
    halves = _halves(half_factory)
    uri = str(tmp_path / "t")
    m = write_table(iter(halves), uri, source="unit", seed=7)
    assert m.counts["games"] == 3 and m.counts["halves"] == 6 and m.counts["events"] == 12
    assert m.counts["per_split"]["valid"]["games"] == 1
    assert m.counts["per_class"] == {"card": 6, "subs": 0, "soccer": 6}
    assert m.seed == 7 and m.source == "unit" and len(m.fingerprint) == 64
    assert m.frames == sum(h.n_frames for h in halves)
    got = read_halves(uri)
    assert len(got) == 6
    by_key = {(h.game, h.half): h for h in got}
    for h in halves:
        _same(h, by_key[(h.game, h.half)])
    assert [(h.game, h.half) for h in read_halves(uri, "valid")] == [
        ("lg/2015-2016/game 1", 1),
        ("lg/2015-2016/game 1", 2),
    ]
    assert list_halves(uri, "test") == [("lg/2015-2016/game 2", 1), ("lg/2015-2016/game 2", 2)]
    assert read_manifest(uri).fingerprint == m.fingerprint
    # layout: partitioned by split, one row group per half
    assert sorted(os.listdir(uri)) == [MANIFEST_NAME, "split=test", "split=train", "split=valid"]
    pf = pq.ParquetFile(os.path.join(uri, "split=train", "part-00000.parquet"))
    assert pf.num_row_groups == 2 and pf.metadata.num_rows == 2
    assert pf.schema_arrow.field("video").type == pa.list_(pa.list_(pa.float32(), 512))
    # nothing left besides the table
    assert sorted(os.listdir(tmp_path)) == ["t"]


def test_zero_copy_read(tmp_path, half_factory):
    uri = str(tmp_path / "t")
    write_table([half_factory()], uri, source="unit")
    (h,) = iter_halves(uri, copy=False)
    assert not h.video.flags.writeable  # a view of the Arrow buffer
    (h2,) = iter_halves(uri)
    assert h2.video.flags.writeable and h2.video.flags.c_contiguous


def test_fingerprint_independent_of_order_and_layout(tmp_path, half_factory):
    halves = _halves(half_factory)
    a = write_table(halves, str(tmp_path / "a"), source="x")
    b = write_table(list(reversed(halves)), str(tmp_path / "b"), source="y", halves_per_file=1)
    assert a.fingerprint == b.fingerprint
    assert len(b.files) == 6
    changed = _halves(half_factory)
    changed[0].video[0, 0] += 1.0
    c = write_table(changed, str(tmp_path / "c"), source="x")
    assert c.fingerprint != a.fingerprint


def test_refuses_existing_and_overwrites(tmp_path, half_factory):
    uri = str(tmp_path / "t")
    write_table([half_factory(seed=1)], uri, source="unit")
    with pytest.raises(DataError, match="already exists"):
        write_table([half_factory(seed=2)], uri, source="unit")
    m = write_table([half_factory(seed=2)], uri, source="unit", overwrite=True)
    assert read_manifest(uri).fingerprint == m.fingerprint
    np.testing.assert_array_equal(read_halves(uri)[0].video, half_factory(seed=2).video)
    assert sorted(os.listdir(tmp_path)) == ["t"]


def test_refuses_non_table_directory(tmp_path, half_factory):
    d = tmp_path / "stuff"
    d.mkdir()
    (d / "precious.txt").write_text("x")
    for overwrite in (False, True):
        with pytest.raises(DataError, match="not an avspot table"):
            write_table([half_factory()], str(d), source="unit", overwrite=overwrite)
    assert (d / "precious.txt").read_text() == "x"


def test_failed_write_leaves_nothing(tmp_path, half_factory):
    uri = str(tmp_path / "t")

    def boom():
        yield half_factory(seed=1)
        yield half_factory(seed=2, half=2)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_table(boom(), uri, source="unit")
    assert os.listdir(tmp_path) == []
    with pytest.raises(DataError, match="not a feature table"):
        read_manifest(uri)


def test_failed_overwrite_keeps_old_table(tmp_path, half_factory):
    uri = str(tmp_path / "t")
    old = write_table([half_factory(seed=1)], uri, source="unit")
    bad = half_factory(seed=2)
    bad.audio = bad.audio[:-1]  # video/audio length mismatch -> DataError mid-write
    with pytest.raises(DataError, match="frames"):
        write_table([half_factory(seed=3), bad], uri, source="unit", overwrite=True)
    assert read_manifest(uri).fingerprint == old.fingerprint
    assert len(read_halves(uri)) == 1
    assert sorted(os.listdir(tmp_path)) == ["t"]


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda h: setattr(h, "split", "holdout"), "unknown split"),
        (lambda h: setattr(h, "half", 3), "half must be"),
        (lambda h: h.events.append(type(h.events[0])(10_000, "card", "y-card", 0)), "outside"),
    ],
)
def test_bad_halves(tmp_path, half_factory, mutate, match):
    h = half_factory()
    mutate(h)
    with pytest.raises(DataError, match=match):
        write_table([h], str(tmp_path / "t"), source="unit")
    assert not (tmp_path / "t").exists()


def test_duplicates_and_cross_split(tmp_path, half_factory):
    with pytest.raises(DataError, match="twice"):
        write_table([half_factory(), half_factory()], str(tmp_path / "a"), source="unit")
    with pytest.raises(DataError, match="splits"):
        write_table(
            [half_factory(), half_factory(half=2, split="test")], str(tmp_path / "b"), source="unit"
        )
    with pytest.raises(DataError, match="no halves"):
        write_table([], str(tmp_path / "c"), source="unit")


def test_iter_halves_streams_one_row_group_at_a_time(tmp_path, half_factory, monkeypatch):
    uri = str(tmp_path / "t")
    write_table(_halves(half_factory, games=4), uri, source="unit", halves_per_file=3)
    reads = []
    original = pq.ParquetFile.read_row_group

    def spy(self, i, *a, **k):
        t = original(self, i, *a, **k)
        reads.append(t.num_rows)
        return t

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    it = iter_halves(uri, "train")
    first = next(it)
    assert reads == [1] and first.split == "train"  # lazily: one half read so far
    rest = list(it)
    assert len(rest) == 3 and reads == [1, 1, 1, 1]


def test_half_from_row_forms(half_factory):
    h = half_factory(n=6, dim=4)
    table = half_to_table(h)
    (back,) = halves_from_arrow(table)
    _same(h, back)
    pyrow = table.to_pylist()[0]  # Ray iter_rows() style: python lists
    _same(h, half_from_row(pyrow))
    arrow_row = {name: table.column(name)[0] for name in table.column_names}
    _same(h, half_from_row(arrow_row))
    ro = h.video.copy()
    ro.flags.writeable = False  # object store style: read-only 2-D
    objrows = np.empty(6, object)  # numpy batch style: object array of rows
    for i in range(6):
        objrows[i] = h.audio[i]
    got = half_from_row(
        {**pyrow, "video": ro, "audio": objrows, "events": np.array(pyrow["events"], object)}
    )
    _same(h, got)
    assert got.video.flags.writeable and got.audio.flags.writeable


def test_resolve():
    fs, path = resolve("/tmp/x/../y")
    assert isinstance(fs, pafs.LocalFileSystem) and path == "/tmp/y"
    fs, path = resolve("file:///tmp/z")
    assert path == "/tmp/z"
    fs, path = resolve("s3://bucket/pre/fix/", endpoint="http://127.0.0.1:9")
    assert isinstance(fs, pafs.S3FileSystem) and path == "bucket/pre/fix"
    for bad in ("gs://b/x", "s3://", ""):
        with pytest.raises(DataError):
            resolve(bad)
    with pytest.raises(DataError, match="endpoint"):
        resolve("s3://b/x", endpoint="ftp://host")


def test_absolute_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_uri("data/t") == str(tmp_path / "data" / "t")
    assert absolute_uri("/a/b") == "/a/b"
    for kept in ("s3://bucket/t", "file:///x/y"):
        assert absolute_uri(kept) == kept


def test_endpoint_from_env(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    fs, _ = resolve("s3://b/x")
    opts = fs.__reduce__()[1][0]
    assert opts["endpoint_override"] == "127.0.0.1:1" and opts["scheme"] == "http"
    assert opts["access_key"] is None  # credentials stay in the AWS chain, never in the object


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_fails_fast(tmp_path, half_factory, monkeypatch, fake_clock):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(DataError, match="s3://bucket/t") as e:
        read_manifest("s3://bucket/t", endpoint=endpoint)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError):
        write_table([half_factory()], "s3://bucket/t", source="unit", endpoint=endpoint)
    assert fake_clock.sleeps == []  # not waited for as an outage: no backoff


def test_silent_endpoint_fails_within_timeout(monkeypatch, fake_clock):
    """An endpoint that accepts connections but never answers must not hang."""
    import avspot.datasets.storage as storage

    monkeypatch.setattr(storage, "S3_REQUEST_TIMEOUT_S", 1.0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        with pytest.raises(DataError, match=r"curlCode: 28.* the last 1 seconds"):  # timed out
            read_manifest("s3://bucket/t", endpoint=f"http://127.0.0.1:{srv.getsockname()[1]}")
        assert fake_clock.sleeps == []


def test_malformed_manifest(tmp_path, half_factory):
    uri = str(tmp_path / "t")
    write_table([half_factory()], uri, source="unit")
    (tmp_path / "t" / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(DataError, match="malformed manifest"):
        read_manifest(uri)
    (tmp_path / "t" / MANIFEST_NAME).write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(DataError):
        read_manifest(uri)


def test_unknown_split_argument(tiny_table):
    with pytest.raises(DataError, match="unknown split"):
        list(iter_halves(tiny_table, "training"))

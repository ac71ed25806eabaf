"""Schema 3: label set, dtype, visibility, tables without audio; schema-2 tables still read."""

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.halves import Event, Half
from avspot.datasets.inspect import format_summary, inspect_table
from avspot.datasets.manifest import SCHEMA_VERSION, half_digest, read_manifest
from avspot.datasets.synth import synthesize
from avspot.datasets.table import iter_halves, read_halves, write_table
from avspot.datasets.verify import check_table
from tests.datasets.conftest import make_half


def _v2_half(game="l/s/g", half=1, split="train", n=40, seed=0, audio=64, video=96):
    events = [
        Event(3, "Throw-in", "Throw-in", 1700),
        Event(10, "Goal", "Goal", 5250, "not shown"),
        Event(n - 1, "Yellow->red card", "Yellow->red card", (n - 1) * 500, "visible"),
    ]
    return make_half(
        game, half, split, n, seed, video=video, audio=audio, events=events, label_set="v2"
    )


def test_v1_fingerprint_unchanged_by_schema_3(tmp_path):
    # Pinned with the schema-2 code (git 72e25ca): new manifest fields and the row encoding do
    # not enter a v1 float32 table's fingerprint, so runs recorded before keep matching.
    m = synthesize(str(tmp_path / "t"), games=3, seed=11, half_minutes=0.5)
    assert m.fingerprint == "683b00440f397065e21fc81322351d5e5058c610122e690dd07865483c44607f"
    assert (
        (m.schema_version, m.label_set, m.dtype)
        == (SCHEMA_VERSION, "v1", "float32")
        == (
            3,
            "v1",
            "float32",
        )
    )


@pytest.mark.slow
def test_readme_table_fingerprint(tmp_path):
    """The README's figures come from this table (`data synth --games 8 --seed 0 ...`)."""
    m = synthesize(str(tmp_path / "t"), games=8, seed=0, half_minutes=10)
    assert m.fingerprint.startswith("7691531bf1ed")


def test_visibility_and_label_set_round_trip(tmp_path):
    halves = [_v2_half(half=1), _v2_half(half=2, seed=1), _v2_half("l/s/h", split="test", seed=2)]
    uri = str(tmp_path / "t")
    m = write_table(iter(halves), uri, source="unit")
    assert m.label_set == "v2" and m.vocabulary.num_classes == 17
    assert m.counts["visibility"] == {"visible": 6, "not shown": 3}
    assert m.counts["per_split"]["test"]["visibility"] == {"visible": 2, "not shown": 1}
    assert m.counts["per_class"]["Goal"] == 3 and "card" not in m.counts["per_class"]
    assert m.feature_dims == {"video": 96, "audio": 64}
    got = {(h.game, h.half): h for h in read_halves(uri)}
    for h in halves:
        g = got[(h.game, h.half)]
        assert g.events == h.events and g.label_set == "v2"
        np.testing.assert_array_equal(g.video, h.video)
    assert [e.visibility for e in got[("l/s/g", 1)].events] == ["visible", "not shown", "visible"]
    check_table(uri, deep=True)  # digests recomputed from the decoded rows match
    s = inspect_table(uri)
    assert s["visibility"] == {"visible": 6, "not shown": 3}
    text = format_summary(s)
    assert (
        "label set v2 (17 classes)" in text and "not shown" in text and "Yellow->red card" in text
    )


def test_visibility_enters_the_fingerprint(tmp_path):
    a, b = _v2_half(), _v2_half()
    b.events[0].visibility = "not shown"
    assert half_digest(a) != half_digest(b)


def test_float16_round_trip(tmp_path, half_factory):
    halves = [half_factory(half=h, seed=h) for h in (1, 2)]
    m32 = write_table(iter(halves), str(tmp_path / "f32"), source="unit")
    m16 = write_table(iter(halves), str(tmp_path / "f16"), source="unit", dtype="float16")
    assert (m16.dtype, m32.dtype) == ("float16", "float32")
    assert read_manifest(str(tmp_path / "f16")).dtype == "float16"
    assert m16.itemsize == 2 and m16.bytes_per_frame == 2 * 1024
    assert "float16" in m16.encoding and m16.fingerprint != m32.fingerprint
    assert m16.bytes < 0.7 * m32.bytes  # half the feature bytes (events, footers aside)
    for h, g in zip(halves, read_halves(str(tmp_path / "f16")), strict=True):
        assert g.video.dtype == np.float16 and g.audio.dtype == np.float16  # no upcast
        np.testing.assert_allclose(g.video, h.video, rtol=2**-10, atol=2**-14)
        np.testing.assert_array_equal(g.audio, h.audio.astype(np.float16))
        assert g.events == h.events
    (view,) = list(iter_halves(str(tmp_path / "f16"), "train", copy=False))[:1]
    assert view.video.dtype == np.float16 and not view.video.flags.writeable
    check_table(str(tmp_path / "f16"), deep=True)
    # float32 halves come back float32, unchanged
    assert read_halves(str(tmp_path / "f32"))[0].video.dtype == np.float32
    # the same float16 values written again give the same fingerprint
    again = [Half(**{**h.__dict__}) for h in read_halves(str(tmp_path / "f16"))]
    m16b = write_table(iter(again), str(tmp_path / "f16b"), source="unit", dtype="float16")
    assert m16b.fingerprint == m16.fingerprint


def test_float16_overflow_is_refused(tmp_path, half_factory):
    h = half_factory()
    h.audio[7, 3] = 1e6
    out = tmp_path / "t"
    with pytest.raises(DataError, match=r"audio value 1e\+06 at frame 7 overflows float16"):
        write_table(iter([h]), str(out), source="unit", dtype="float16")
    assert not out.exists()
    with pytest.raises(DataError, match="dtype 'float64'"):
        write_table(iter([h]), str(out), source="unit", dtype="float64")


def test_table_without_audio(tmp_path):
    halves = [_v2_half(half=h, audio=0, seed=h) for h in (1, 2)]
    assert not halves[0].has_audio
    uri = str(tmp_path / "t")
    m = write_table(iter(halves), uri, source="unit", dtype="float16")
    assert m.feature_dims == {"video": 96, "audio": 0} and not m.has_audio
    assert "no audio column" in m.encoding
    parts = [p for p in (tmp_path / "t").rglob("*.parquet")]
    assert "audio" not in pq.read_schema(parts[0]).names
    for h, g in zip(halves, read_halves(uri), strict=True):
        assert g.audio.shape == (h.n_frames, 0) and g.audio.dtype == np.float16
        assert g.video.shape == (h.n_frames, 96)
    check_table(uri, deep=True)
    assert "no audio" in format_summary(inspect_table(uri))


def test_one_label_set_per_table(tmp_path, half_factory):
    out = tmp_path / "t"
    with pytest.raises(
        DataError, match=r"game 'l/s/g' half 2: label set 'v2' differs from the"
    ) as e:
        write_table(iter([half_factory(game="l/s/g"), _v2_half(half=2)]), str(out), source="u")
    assert "\n" not in str(e.value) and not out.exists()


def test_labels_checked_against_the_table_label_set(tmp_path, half_factory):
    v1_in_v2 = _v2_half()
    v1_in_v2.events.append(Event(4, "card", "y-card", 2000))
    with pytest.raises(DataError, match=r"'y-card'/'card' is not a v2 label"):
        write_table(iter([v1_in_v2]), str(tmp_path / "a"), source="u")
    v2_in_v1 = half_factory()
    v2_in_v1.events.append(Event(4, "Goal", "Goal", 2000))
    with pytest.raises(DataError, match=r"'Goal'/'Goal' is not a v1 label"):
        write_table(iter([v2_in_v1]), str(tmp_path / "b"), source="u")
    odd = _v2_half()
    odd.events[0].visibility = "hidden"
    with pytest.raises(DataError, match="event visibility 'hidden'"):
        write_table(iter([odd]), str(tmp_path / "c"), source="u")
    unknown = _v2_half()
    unknown.label_set = "v3"
    with pytest.raises(DataError, match=r"half 1: label set 'v3': expected one of v1, v2"):
        write_table(iter([unknown]), str(tmp_path / "d"), source="u")


@pytest.mark.parametrize("modality", ["video", "audio"])
def test_width_changing_between_halves(tmp_path, modality):
    a, b = _v2_half(half=1), _v2_half(half=2, **{modality: 128})
    out = tmp_path / "t"
    with pytest.raises(DataError) as e:
        write_table(iter([a, b]), str(out), source="u")
    msg = str(e.value)
    assert msg.startswith("game 'l/s/g' half 2: ") and f"{modality} width 128" in msg
    assert "\n" not in msg and not out.exists()


def test_challenge_split(tmp_path):
    ch = _v2_half("l/s/c", split="challenge")
    with pytest.raises(DataError, match=r"split 'challenge' has no labels .* 3 events"):
        write_table(iter([ch]), str(tmp_path / "bad"), source="u")
    ch.events = []
    uri = str(tmp_path / "t")
    m = write_table(iter([_v2_half(), ch]), uri, source="u")
    assert m.counts["per_split"]["challenge"]["halves"] == 1
    assert [h.game for h in read_halves(uri, "challenge")] == ["l/s/c"]
    assert m.files[-1]["split"] == "challenge"
    text = format_summary(inspect_table(uri))
    assert "challenge" in text.split("class")[0]  # a split row; never a per-class column


# ---- a table written by schema 2 (before label sets), crafted as that code wrote it ----------

_OLD_EVENT = pa.struct(
    [("frame", pa.int32()), ("label", pa.string()), ("raw_label", pa.string()),
     ("position_ms", pa.int64())]
)  # fmt: skip


def _old_digest(h: Half) -> str:
    """Schema 2's half digest, verbatim."""
    header = {
        "game": h.game,
        "half": int(h.half),
        "split": h.split,
        "fps": float(h.fps),
        "shape": [list(h.video.shape), list(h.audio.shape)],
        "events": [[e.frame, e.label, e.raw_label, e.position_ms] for e in h.events],
    }
    d = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    d.update(np.ascontiguousarray(h.video, dtype="<f4").data)
    d.update(np.ascontiguousarray(h.audio, dtype="<f4").data)
    return d.hexdigest()


def _old_row(h: Half) -> pa.Table:
    def matrix(x):
        inner = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
        return pa.ListArray.from_arrays(pa.array([0, x.shape[0]], pa.int32()), inner)

    events = [{k: getattr(e, k) for k in ("frame", "label", "raw_label", "position_ms")}
              for e in h.events]  # fmt: skip
    return pa.Table.from_arrays(
        [
            pa.array([h.game]),
            pa.array([h.half], pa.int8()),
            pa.array([h.split]),
            pa.array([h.fps], pa.float64()),
            pa.array([h.n_frames], pa.int32()),
            matrix(h.video),
            matrix(h.audio),
            pa.array([events], pa.list_(_OLD_EVENT)),
        ],
        names=["game", "half", "split", "fps", "n_frames", "video", "audio", "events"],
    )


def test_schema_2_table_still_reads(tmp_path, half_factory):
    from avspot.datasets.manifest import table_fingerprint

    halves = [half_factory(half=1), half_factory(half=2, seed=1)]
    root = tmp_path / "old"
    (root / "split=train").mkdir(parents=True)
    part = root / "split=train" / "part-00000.parquet"
    with pq.ParquetWriter(part, _old_row(halves[0]).schema) as w:
        for h in halves:
            w.write_table(_old_row(h), row_group_size=1)
    digest = hashlib.sha256(part.read_bytes()).hexdigest()
    counts = {"games": 1, "halves": 2, "events": 4, "frames": 100,
              "per_class": {"card": 2, "subs": 0, "soccer": 2}}  # fmt: skip
    manifest = {
        "schema_version": 2,
        "source": "unit",
        "seed": None,
        "fingerprint": table_fingerprint(
            [(h.split, h.game, h.half, _old_digest(h)) for h in halves]
        ),
        "counts": {**counts, "per_split": {"train": {**counts}, "valid": {}, "test": {}}},
        "frames": 100,
        "bytes": part.stat().st_size,
        "fps": 2.0,
        "feature_dims": {"video": 512, "audio": 512},
        "files": [
            {
                "path": "split=train/part-00000.parquet",
                "split": "train",
                "bytes": part.stat().st_size,
                "sha256": digest,
                "halves": [[h.game, h.half, h.n_frames, len(h.events)] for h in halves],
            }
        ],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    m = read_manifest(str(root))
    assert (m.schema_version, m.label_set, m.dtype) == (2, "v1", "float32")
    got = read_halves(str(root))
    assert [g.label_set for g in got] == ["v1", "v1"]
    for h, g in zip(halves, got, strict=True):
        assert g.events == h.events and all(e.visibility == "visible" for e in g.events)
        assert g.video.dtype == np.float32
        np.testing.assert_array_equal(g.audio, h.audio)
    check_table(str(root), deep=True)  # checksums and the schema-2 fingerprint still verify
    s = inspect_table(str(root))
    assert s["visibility"] == {"visible": 4, "not shown": 0}
    assert s["per_split"]["challenge"]["halves"] == 0 and s["label_set"] == "v1"
    assert "schema v2" in format_summary(s)


def test_unknown_dtype_or_label_set_in_a_manifest(tmp_path):
    uri = tmp_path / "t"
    synthesize(str(uri), games=1, seed=0, half_minutes=0.1)
    d = json.loads((uri / "manifest.json").read_text())
    (uri / "manifest.json").write_text(json.dumps({**d, "dtype": "int8"}))
    with pytest.raises(DataError, match="manifest.json: unknown dtype 'int8'"):
        read_manifest(str(uri))
    (uri / "manifest.json").write_text(json.dumps({**d, "label_set": "v9"}))
    with pytest.raises(DataError, match="manifest.json: label set 'v9': expected one of"):
        read_manifest(str(uri))

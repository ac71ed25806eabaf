import json
import os

import numpy as np
import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.layout import official_splits
from avspot.datasets.manifest import read_manifest
from avspot.datasets.soccernet import ingest
from avspot.datasets.table import read_halves

TRAIN = "england_epl/2014-2015/2015-02-21 - 18-00 Chelsea 1 - 1 Burnley"
VALID = "england_epl/2014-2015/2015-04-11 - 19-30 Burnley 0 - 1 Arsenal"
TEST = "england_epl/2014-2015/2015-05-17 - 18-00 Manchester United 1 - 1 Arsenal"


def make_game(
    root,
    key,
    frames=(120, 130),
    audio_frames=None,
    labels=None,
    dim=512,
    seed=0,
    video="ResNET_PCA512",
    audio="VGGish",
):
    d = os.path.join(root, key)
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(seed)
    audio_frames = audio_frames or frames
    for half, (nv, na) in enumerate(zip(frames, audio_frames, strict=True), start=1):
        np.save(
            os.path.join(d, f"{half}_{video}.npy"),
            rng.standard_normal((nv, dim)).astype(np.float32),
        )
        np.save(
            os.path.join(d, f"{half}_{audio}.npy"),
            rng.standard_normal((na, dim)).astype(np.float32),
        )
    if labels is None:
        labels = [{"gameTime": "1 - 00:10", "label": "y-card", "team": "home"}]
    with open(os.path.join(d, "Labels.json"), "w") as f:
        json.dump(
            {"UrlLocal": key, "annotations": labels} if not isinstance(labels, str) else None, f
        )
    if isinstance(labels, str):
        with open(os.path.join(d, "Labels.json"), "w") as f:
            f.write(labels)
    return d


def test_official_lists_shipped():
    s = official_splits()
    assert {k: len(v) for k, v in s.items()} == {
        "train": 300,
        "valid": 100,
        "test": 100,
        "challenge": 50,
    }
    assert len({g for games in s.values() for g in games}) == 550  # no game in two splits
    assert TRAIN in s["train"] and VALID in s["valid"] and TEST in s["test"]


def test_ingest_official(tmp_path):
    root = str(tmp_path / "sn")
    labels = [
        {"gameTime": "1 - 00:10", "label": "y-card", "team": "home"},
        {"gameTime": "1 - 00:59", "label": "soccer-ball", "team": "away"},
        {"gameTime": "2 - 00:03", "label": "substitution-in", "team": "home"},
        {"gameTime": "2 - 00:30", "label": "r-card", "team": "away"},
        {"gameTime": "2 - 00:31", "label": "yr-card", "team": "away"},
        {"gameTime": "2 - 01:03", "label": "soccer-ball-own", "team": "home"},
    ]
    make_game(
        root, TRAIN, frames=(120, 130), audio_frames=(123, 128), labels=labels
    )  # lengths differ
    make_game(root, VALID, seed=1)
    # half 2 of the test game runs into stoppage time: an event at 46:10 (frame 5540)
    make_game(
        root,
        TEST,
        frames=(40, 5545),
        labels=[{"gameTime": "2 - 46:10", "label": "soccer-ball", "team": "home"}],
        seed=2,
    )
    out = str(tmp_path / "table")
    m = ingest(root, out)
    assert m.counts["games"] == 3 and m.counts["halves"] == 6 and m.counts["events"] == 8
    assert m.counts["per_split"]["train"]["per_class"] == {"card": 3, "subs": 1, "soccer": 2}
    assert (
        m.counts["per_raw_label"]["yr-card"] == 1
        and m.counts["per_raw_label"]["soccer-ball-own"] == 1
    )
    assert m.source.startswith("soccernet:") and m.seed is None
    halves = {(h.game, h.half): h for h in read_halves(out)}
    h1, h2 = halves[(TRAIN, 1)], halves[(TRAIN, 2)]
    assert (
        h1.split == h2.split == "train"
        and halves[(VALID, 1)].split == "valid"
        and halves[(TEST, 2)].split == "test"
    )
    assert h1.n_frames == 120 and h1.audio.shape == (120, 512)  # truncated to the shorter stream
    assert h2.n_frames == 128 and h2.video.shape == (128, 512)
    assert [(e.frame, e.label, e.raw_label, e.position_ms) for e in h1.events] == [
        (20, "card", "y-card", 10_000),
        (118, "soccer", "soccer-ball", 59_000),
    ]
    assert [(e.frame, e.label, e.raw_label, e.position_ms) for e in h2.events] == [
        (6, "subs", "substitution-in", 3_000),
        (60, "card", "r-card", 30_000),
        (62, "card", "yr-card", 31_000),
        (126, "soccer", "soccer-ball-own", 63_000),
    ]
    (stoppage,) = halves[(TEST, 2)].events
    assert (stoppage.frame, stoppage.position_ms) == (5540, 2770_000)
    src = np.load(os.path.join(root, TRAIN, "1_ResNET_PCA512.npy"))
    np.testing.assert_array_equal(h1.video, src[:120])


def test_ingest_split_file_and_dirs(tmp_path):
    root = str(tmp_path / "sn")
    make_game(root, "my_league/2020-2021/a", seed=1)
    make_game(root, "my_league/2020-2021/b", seed=2)
    make_game(root, "my_league/2020-2021/c", seed=3)
    with pytest.raises(DataError, match=r"not in the official SoccerNet splits.*JSON file.*dirs"):
        ingest(root, str(tmp_path / "t0"))
    spec = tmp_path / "splits.json"
    spec.write_text(
        json.dumps(
            {
                "train": ["my_league/2020-2021/a", "my_league/2020-2021/b"],
                "test": ["my_league/2020-2021/c"],
            }
        )
    )
    m = ingest(root, str(tmp_path / "t1"), splits=str(spec))
    assert (
        m.counts["per_split"]["train"]["games"] == 2 and m.counts["per_split"]["test"]["games"] == 1
    )
    dirs = str(tmp_path / "bydir")
    make_game(dirs, "train/l/s/a", seed=1)
    make_game(dirs, "valid/l/s/b", seed=2)
    m = ingest(dirs, str(tmp_path / "t2"), splits="dirs")
    assert {(g, h.split) for h in read_halves(str(tmp_path / "t2")) for g in [h.game]} == {
        ("l/s/a", "train"),
        ("l/s/b", "valid"),
    }
    assert m.counts["games"] == 2


def test_custom_feature_names(tmp_path):
    root = str(tmp_path / "sn")
    make_game(root, TRAIN, video="C3D_PCA512", audio="MyAudio")
    m = ingest(root, str(tmp_path / "t"), video_features="C3D_PCA512", audio_features="MyAudio")
    assert m.params["video_features"] == "C3D_PCA512"


def _bad(tmp_path, match, **game_kw):
    root = str(tmp_path / "sn")
    make_game(root, VALID, seed=9)  # a good game next to the bad one
    d = make_game(root, TRAIN, **game_kw)
    return root, d


@pytest.mark.parametrize(
    "game_kw,match",
    [
        ({"labels": "{not json"}, r"Labels\.json: malformed"),
        ({"labels": [{"gameTime": "1 - 00:10"}]}, "annotation 0 needs"),
        (
            {"labels": [{"gameTime": "1 - 00:10", "label": "Goal"}]},
            r"Labels\.json: annotation 0: unknown label 'Goal'",
        ),
        ({"labels": [{"gameTime": "3 - 00:10", "label": "y-card"}]}, "malformed gameTime"),
        ({"labels": [{"gameTime": "2 - 01:10", "label": "y-card"}]}, r"beyond half 2's 130 frames"),
        ({"dim": 0}, r"1_ResNET_PCA512\.npy: features of shape \(120, 0\)"),
        ({"audio_frames": (120, 150)}, "differ by more than"),
    ],
)
def test_bad_input(tmp_path, game_kw, match):
    root, _ = _bad(tmp_path, match, **game_kw)
    out = tmp_path / "t"
    with pytest.raises(DataError, match=match) as e:
        ingest(root, str(out))
    assert "\n" not in str(e.value)
    assert TRAIN in str(e.value) or "Chelsea" in str(e.value)
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["sn"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_features(tmp_path, bad):
    root, d = _bad(tmp_path, None)
    x = np.load(os.path.join(d, "2_VGGish.npy"))
    x[77, 3] = bad
    np.save(os.path.join(d, "2_VGGish.npy"), x)
    out = tmp_path / "t"
    with pytest.raises(
        DataError, match=r"2_VGGish\.npy: NaN or Inf features \(first at frame 77\)"
    ) as e:
        ingest(root, str(out))
    assert "Chelsea" in str(e.value)
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["sn"]  # nothing half-written


def test_missing_files(tmp_path):
    root, d = _bad(tmp_path, None)
    os.remove(os.path.join(d, "2_VGGish.npy"))
    with pytest.raises(DataError, match=r"game '.*Chelsea.*': missing feature file 2_VGGish\.npy"):
        ingest(root, str(tmp_path / "t"))
    os.remove(os.path.join(d, "Labels.json"))
    with pytest.raises(DataError, match=r"missing Labels\.json"):
        ingest(root, str(tmp_path / "t"))


def test_output_exists(tmp_path):
    root = str(tmp_path / "sn")
    make_game(root, TRAIN)
    out = str(tmp_path / "t")
    first = ingest(root, out)
    with pytest.raises(DataError, match="already exists"):
        ingest(root, out)
    assert (
        ingest(root, out, overwrite=True).fingerprint
        == first.fingerprint
        == read_manifest(out).fingerprint
    )


def test_bad_split_sources(tmp_path):
    root = str(tmp_path / "sn")
    make_game(root, "l/s/a")
    with pytest.raises(DataError, match="expected 'official', 'dirs'"):
        ingest(root, str(tmp_path / "t"), splits="nonexistent.json")
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"training": ["l/s/a"]}))
    with pytest.raises(DataError, match="unknown split 'training'"):
        ingest(root, str(tmp_path / "t"), splits=str(spec))
    spec.write_text(json.dumps({"train": ["l/s/a", "l/s/missing"]}))
    with pytest.raises(DataError, match="'l/s/missing' not found"):
        ingest(root, str(tmp_path / "t"), splits=str(spec))
    spec.write_text(json.dumps({"train": ["l/s/a"], "test": ["l/s/a"]}))
    with pytest.raises(DataError, match="both"):
        ingest(root, str(tmp_path / "t"), splits=str(spec))
    with pytest.raises(DataError, match="not a directory"):
        ingest(str(tmp_path / "nope"), str(tmp_path / "t"))

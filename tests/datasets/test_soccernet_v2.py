"""Ingest of a tiny SoccerNet-v2 tree written by the test (Labels-v2.json, any widths, no audio,
the challenge split), through the library and the CLI."""

import json
import os

import numpy as np
import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.manifest import read_manifest
from avspot.datasets.soccernet import ingest
from avspot.datasets.table import read_halves
from avspot.search.cli.main import main

TRAIN = "england_epl/2014-2015/2015-02-21 - 18-00 Chelsea 1 - 1 Burnley"
VALID = "england_epl/2014-2015/2015-04-11 - 19-30 Burnley 0 - 1 Arsenal"
CHALLENGE = "england_epl/2016-2017/2017-05-13 - 18-00 Stoke City 1 - 4 Arsenal"

V2_LABELS = [  # as the official files hold them: position in ms as a string
    {"gameTime": "1 - 00:10", "label": "Kick-off", "position": "10400", "team": "home",
     "visibility": "visible"},
    {"gameTime": "1 - 00:29", "label": "Ball out of play", "position": "29999", "team": "not applicable",
     "visibility": "not shown"},
    {"gameTime": "2 - 00:31", "label": "Yellow->red card", "position": "31250", "team": "away",
     "visibility": "visible"},
    {"gameTime": "2 - 00:45", "label": "Throw-in", "team": "away", "visibility": "visible"},
]  # fmt: skip


def make_v2_game(root, key, *, labels=V2_LABELS, frames=(120, 130), video=("ResNET", 48),
                 audio=("VGGish", 16), seed=0, labels_file="Labels-v2.json"):  # fmt: skip
    d = os.path.join(root, key)
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(seed)
    for half, n in enumerate(frames, start=1):
        for spec in (video, audio):
            if spec is None:
                continue
            stem, width = spec
            x = rng.standard_normal((n, width)).astype(np.float32)
            np.save(os.path.join(d, f"{half}_{stem}.npy"), x)
    if labels is not None:
        with open(os.path.join(d, labels_file), "w") as f:
            json.dump({"UrlLocal": key, "annotations": labels}, f)
    return d


def test_ingest_v2_official(tmp_path):
    root = str(tmp_path / "sn")
    make_v2_game(root, TRAIN)
    make_v2_game(root, VALID, labels=V2_LABELS[:1], seed=1)
    make_v2_game(root, CHALLENGE, labels=None, seed=2)  # challenge: no labels file at all
    out = str(tmp_path / "t")
    m = ingest(root, out, labels="v2", video_features="ResNET", dtype="float16")
    assert (m.label_set, m.dtype, m.fps) == ("v2", "float16", 2.0)
    assert m.feature_dims == {"video": 48, "audio": 16}  # taken from the files
    assert m.source.startswith("soccernet-v2:")
    assert m.params["labels"] == "v2" and m.params["dtype"] == "float16"
    assert m.counts["per_split"]["challenge"]["games"] == 1
    assert m.counts["per_split"]["challenge"]["events"] == 0
    assert m.counts["per_split"]["train"]["visibility"] == {"visible": 3, "not shown": 1}
    halves = {(h.game, h.half): h for h in read_halves(out)}
    h1, h2 = halves[(TRAIN, 1)], halves[(TRAIN, 2)]
    assert h1.video.dtype == np.float16 and h1.label_set == "v2"
    got = [(e.frame, e.label, e.position_ms, e.visibility) for e in h1.events + h2.events]
    assert got == [
        (20, "Kick-off", 10_400, "visible"),  # int(2 * 10.4)
        (59, "Ball out of play", 29_999, "not shown"),  # int(2 * 29.999): not rounded up
        (62, "Yellow->red card", 31_250, "visible"),
        (90, "Throw-in", 45_000, "visible"),  # no position: the gameTime's seconds
    ]
    assert halves[(CHALLENGE, 1)].split == "challenge" and not halves[(CHALLENGE, 2)].events
    src = np.load(os.path.join(root, TRAIN, "1_ResNET.npy"))
    np.testing.assert_allclose(h1.video, src, rtol=2**-10, atol=2**-14)


def test_frames_follow_the_official_evaluator(tmp_path):
    """Event frames equal those of SoccerNet.Evaluation.ActionSpotting.label2vector."""
    label2vector = pytest.importorskip("SoccerNet.Evaluation.ActionSpotting").label2vector
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V2

    root = str(tmp_path / "sn")
    rng = np.random.default_rng(5)
    labels = [
        {"gameTime": f"{h} - {ms // 60000:02d}:{ms // 1000 % 60:02d}", "label": c,
         "position": str(ms), "visibility": v}
        for h, ms, c, v in zip(
            rng.integers(1, 3, 40), rng.integers(0, 59_000, 40),
            rng.choice(list(EVENT_DICTIONARY_V2), 40), rng.choice(["visible", "not shown"], 40),
            strict=True,
        )
    ]  # fmt: skip
    seen: dict[tuple, dict] = {}  # one annotation per (half, frame, class): no overwrites
    for a in labels:
        seen.setdefault((a["gameTime"][0], int(a["position"]) // 500, a["label"]), a)
    labels = list(seen.values())
    make_v2_game(root, TRAIN, labels=labels, frames=(120, 120))
    ingest(root, str(tmp_path / "t"), labels="v2", video_features="ResNET")
    want = label2vector({"annotations": labels}, num_classes=17, framerate=2, version=2,
                        EVENT_DICTIONARY=EVENT_DICTIONARY_V2)  # fmt: skip
    for h in read_halves(str(tmp_path / "t")):
        got = np.zeros_like(want[h.half - 1])
        for e in h.events:
            got[e.frame, EVENT_DICTIONARY_V2[e.label]] = -1 if e.visibility == "not shown" else 1
        np.testing.assert_array_equal(got, want[h.half - 1])
        assert h.events


def test_no_audio_and_1_fps(tmp_path):
    root = str(tmp_path / "sn")
    labels = [{"gameTime": "1 - 00:31", "label": "Goal", "position": "31900"}]
    make_v2_game(root, TRAIN, labels=labels, video=("baidu_soccer_embeddings", 40), audio=None)
    out = str(tmp_path / "t")
    m = ingest(root, out, labels="v2", video_features="baidu_soccer_embeddings",
               audio_features="none", fps=1.0)  # fmt: skip
    assert m.feature_dims == {"video": 40, "audio": 0} and m.fps == 1.0
    assert m.params["audio_features"] == "none" and m.params["fps"] == 1.0
    h1 = read_halves(out)[0]
    assert h1.audio.shape == (120, 0) and h1.fps == 1.0
    assert [(e.frame, e.visibility) for e in h1.events] == [(31, "visible")]  # int(1 * 31.9)
    # without "none", missing audio files stay an error
    with pytest.raises(DataError, match=r"missing feature file 1_VGGish\.npy"):
        ingest(root, str(tmp_path / "t2"), labels="v2", video_features="baidu_soccer_embeddings")


@pytest.mark.parametrize(
    "labels,match",
    [
        ([{"gameTime": "1 - 00:10", "label": "Goal!"}], r"Labels-v2\.json: annotation 0: unknown label 'Goal!'"),
        ([{"gameTime": "1 - 00:10", "label": "y-card"}], r"unknown label 'y-card' \(label set v2"),
        ([{"gameTime": "1 - 00:10", "label": "Goal", "position": "ten"}], "malformed position 'ten'"),
        ([{"gameTime": "1 - 00:10", "label": "Goal", "visibility": "hidden"}], "visibility 'hidden'"),
        ([{"gameTime": "1 - 00:10", "label": "Goal", "position": "90000"}], "beyond half 1's 120 frames"),
    ],
)  # fmt: skip
def test_bad_v2_labels(tmp_path, labels, match):
    root = str(tmp_path / "sn")
    make_v2_game(root, VALID, seed=3)
    make_v2_game(root, TRAIN, labels=labels)
    out = tmp_path / "t"
    with pytest.raises(DataError, match=match) as e:
        ingest(root, str(out), labels="v2", video_features="ResNET")
    assert "\n" not in str(e.value) and "Chelsea" in str(e.value)
    assert not out.exists()


def test_v2_needs_labels_v2_json(tmp_path):
    root = str(tmp_path / "sn")
    make_v2_game(root, TRAIN, labels_file="Labels.json", labels=[])
    with pytest.raises(DataError, match=r"missing Labels-v2\.json"):
        ingest(root, str(tmp_path / "t"), labels="v2", video_features="ResNET")
    with pytest.raises(DataError, match=r"labels 'v3': expected one of v1, v2"):
        ingest(root, str(tmp_path / "t"), labels="v3")
    with pytest.raises(DataError, match=r"dtype 'float8'"):
        ingest(root, str(tmp_path / "t"), dtype="float8")
    with pytest.raises(DataError, match=r"fps 0"):
        ingest(root, str(tmp_path / "t"), fps=0)


def test_width_changing_between_games(tmp_path):
    root = str(tmp_path / "sn")
    make_v2_game(root, TRAIN)
    make_v2_game(root, VALID, video=("ResNET", 2048), seed=4)
    out = tmp_path / "t"
    with pytest.raises(DataError) as e:
        ingest(root, str(out), labels="v2", video_features="ResNET")
    msg = str(e.value)
    assert msg.startswith(f"game '{VALID}' half 1: 1_ResNET.npy has width 2048")
    assert "the table's video width is 48" in msg and not out.exists()


# ---- the CLI --------------------------------------------------------------------------------


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("avspot: error: "), err
    return err


def test_cli_ingest_v2_and_inspect(tmp_path, capsys):
    root = str(tmp_path / "sn")
    make_v2_game(root, TRAIN, audio=None)
    out = str(tmp_path / "t")
    argv = ["data", "ingest", "--soccernet", root, "--out", out, "--labels", "v2",
            "--video-features", "ResNET", "--audio-features", "none", "--dtype", "float16",
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "ingested 1 games" in capsys.readouterr().out
    assert read_manifest(out).feature_dims == {"video": 48, "audio": 0}
    assert main(["data", "inspect", out, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["label_set"], s["dtype"], s["audio"]) == ("v2", "float16", False)
    assert s["per_split"]["train"]["visibility"] == {"visible": 3, "not shown": 1}
    assert main(["data", "inspect", out]) == 0
    text = capsys.readouterr().out
    assert "label set v2 (17 classes), float16, 2 fps, widths video 48 no audio" in text


@pytest.mark.parametrize(
    "extra,names",
    [
        (["--labels", "v3"], "--labels"),
        (["--dtype", "float64"], "--dtype"),
        (["--fps", "-1"], "--fps"),
    ],
)
def test_cli_bad_options(tmp_path, capsys, extra, names):
    root = str(tmp_path / "sn")
    make_v2_game(root, TRAIN)
    argv = ["data", "ingest", "--soccernet", root, "--out", str(tmp_path / "t"), *extra]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses a value outside the choices
        code = exc.code
    assert code == 2 and names in _err(capsys)
    assert not (tmp_path / "t").exists()


def test_cli_unknown_v2_label(tmp_path, capsys):
    root = str(tmp_path / "sn")
    make_v2_game(root, TRAIN, labels=[{"gameTime": "1 - 00:05", "label": "Dive"}])
    argv = ["data", "ingest", "--soccernet", root, "--out", str(tmp_path / "t"),
            "--labels", "v2", "--video-features", "ResNET"]  # fmt: skip
    assert main(argv) == 2
    err = _err(capsys)
    assert "Labels-v2.json" in err and "'Dive'" in err

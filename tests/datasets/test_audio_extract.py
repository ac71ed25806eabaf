"""Audio feature extraction: decoding and offsets, alignment, resuming, SoccerNet end to end, Ray."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from avspot.datasets.audio import media
from avspot.datasets.audio.extract import align, extract_audio, format_summary, plan_games
from avspot.datasets.audio.vggish import random_state_dict
from avspot.datasets.errors import DataError

SR = 16000


def _audio(seconds: float, sr: int = SR, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A tone, noise bursts and silence: (n,) or (n, channels) float32."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    x = 0.2 * np.sin(2 * np.pi * (300 + 100 * seed) * t)
    for start in np.arange(0.25, seconds, 2.0):
        k = slice(int(start * sr), int((start + 0.3) * sr))
        x[k] += 0.15 * rng.standard_normal(len(x[k]))  # stays within [-1, 1]
    x[int(0.6 * n) : int(0.7 * n)] = 0.0
    x = x.astype(np.float32)
    return x if channels == 1 else np.stack([x, 0.5 * x], axis=1)


def _click(seconds: float, at: float, sr: int) -> np.ndarray:
    x = np.zeros(int(round(seconds * sr)), np.float32)
    x[int(at * sr) : int(at * sr) + int(0.01 * sr)] = 0.8
    return x


def _onset(x: np.ndarray) -> float:
    return float(np.argmax(np.abs(x) > 0.3)) / SR


@pytest.fixture
def weights(tmp_path) -> str:
    path = str(tmp_path / "vggish_random.pt")
    torch.save(random_state_dict(seed=0), path)
    return path


def _game(folder, seconds=(10.3, 10.3), video=(20, 20), ext="wav", sr=SR, seed=0) -> str:
    """A game folder with ``{1,2}.<ext>`` and optional ``{h}_ResNET_PCA512.npy`` of N frames."""
    os.makedirs(folder, exist_ok=True)
    for half, (secs, frames) in enumerate(zip(seconds, video, strict=True), start=1):
        path = os.path.join(folder, f"{half}.{ext}")
        channels = 1 if ext == "wav" else 2
        media.write_audio(path, _audio(secs, sr, seed + half, channels), sr, video=ext == "mkv")
        if frames is not None:
            feats = np.random.default_rng(half).standard_normal((frames, 512)).astype(np.float32)
            np.save(os.path.join(folder, f"{half}_ResNET_PCA512.npy"), feats)
    return str(folder)


def _run(inputs, weights, out, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("batch_size", 8)
    return extract_audio(inputs, weights, str(out), **kw)


# ---- decoding --------------------------------------------------------------------------------


def test_wav_stdlib_and_pyav_agree(tmp_path):
    x = _audio(2.0)
    media.write_audio(str(tmp_path / "a.wav"), x, SR)
    media.write_audio(str(tmp_path / "a.mkv"), x, SR, codec="flac")
    wav = media.decode_audio(str(tmp_path / "a.wav"))
    flac = media.decode_audio(str(tmp_path / "a.mkv"))
    assert wav.dtype == np.float32 and wav.shape == (2 * SR,)
    np.testing.assert_allclose(wav, x, atol=1 / 32768)
    np.testing.assert_allclose(flac, wav, atol=1e-4)


def test_resamples_and_mixes_stereo(tmp_path):
    left = _click(3.0, 1.0, 44100)
    path = str(tmp_path / "s.mp4")
    media.write_audio(path, np.stack([left, np.zeros_like(left)], axis=1), 44100)
    y = media.decode_audio(path)
    assert abs(len(y) / SR - 3.0) < 0.05
    assert abs(_onset(y * 2) - 1.0) < 0.002  # the mean of the channels halves the click
    assert 0.3 < np.abs(y).max() < 0.5


@pytest.mark.parametrize("start", [0.5, 2.0])  # without and with a seek
def test_video_ini_start_offset(tmp_path, start):
    game = tmp_path / "g"
    game.mkdir()
    media.write_audio(str(game / "1_HQ.mkv"), _click(8.0, 3.0, 48000), 48000, video=True)
    (game / "video.ini").write_text(
        f"[1_HQ.mkv]\nstart_time_second = {start}\nduration_second = 4\n"
        "[2_HQ.mkv]\nstart_time_second = 0\nduration_second = 4\n"
    )
    seg = media.media_segment(str(game / "1_HQ.mkv"))
    assert (seg.start, seg.duration) == (start, 4.0)
    y = media.decode_segment(seg)
    assert len(y) == 4 * SR
    assert abs(_onset(y) - (3.0 - start)) < 0.002


def test_video_ini_problems(tmp_path):
    game = tmp_path / "g"
    game.mkdir()
    media.write_audio(str(game / "1_HQ.wav"), _click(1.0, 0.5, SR), SR)
    with pytest.raises(DataError, match=r"1_HQ\.wav: a raw SoccerNet broadcast .* no .*video\.ini"):
        media.media_segment(str(game / "1_HQ.wav"))
    (game / "video.ini").write_text("[1_HQ.wav]\nstart_time_second = soon\n")
    with pytest.raises(DataError, match=r"video\.ini: \[1_HQ\.wav\]"):
        media.media_segment(str(game / "1_HQ.wav"))
    (game / "video.ini").write_text("start_time_second = 3\n")
    with pytest.raises(DataError, match=r"video\.ini: cannot read video\.ini"):
        media.media_segment(str(game / "1_HQ.wav"))
    (game / "video.ini").write_text("[2_HQ.wav]\nstart_time_second = 3\n")
    with pytest.raises(DataError, match=r"has no \[1_HQ\.wav\] section"):
        media.media_segment(str(game / "1_HQ.wav"))


def test_unreadable_media(tmp_path):
    with pytest.raises(DataError, match=r"nope\.mkv: media file not found"):
        media.decode_audio(str(tmp_path / "nope.mkv"))
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(DataError, match=r"junk\.mkv: cannot open media"):
        media.decode_audio(str(junk))
    import av

    silent = str(tmp_path / "video_only.mkv")
    with av.open(silent, "w") as out:
        v = out.add_stream("mpeg4", rate=2)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
    with pytest.raises(DataError, match=r"video_only\.mkv: no audio stream"):
        media.decode_audio(silent)


# ---- alignment -------------------------------------------------------------------------------


def test_align_truncates_and_edge_pads_within_tolerance():
    x = np.arange(20 * 3, dtype=np.float32).reshape(20, 3)
    np.testing.assert_array_equal(align(x, 17, 5, "w"), x[:17])
    padded = align(x, 23, 5, "w")
    np.testing.assert_array_equal(padded[:20], x)
    np.testing.assert_array_equal(padded[20:], np.repeat(x[-1:], 3, axis=0))
    with pytest.raises(DataError, match="w: audio gives 20 frames, video 26; .* 5"):
        align(x, 26, 5, "w")
    with pytest.raises(DataError, match="video 14"):
        align(x, 14, 5, "w")


def test_extract_aligns_to_the_video_frame_count(tmp_path, weights):
    free = _game(tmp_path / "a" / "lg" / "s" / "free", seconds=(4.3, 4.3), video=(None, None))
    aligned = _game(tmp_path / "b" / "lg" / "s" / "aligned", seconds=(4.3, 4.3), video=(10, 6))
    s1 = _run([free], weights, tmp_path / "out1")
    s2 = _run([aligned], weights, tmp_path / "out2")
    assert (s1["done"], s1["halves"], s2["done"], s2["halves"]) == (1, 2, 1, 2)
    base1 = np.load(tmp_path / "out1/lg/s/free/1_VGGish.npy")
    base2 = np.load(tmp_path / "out1/lg/s/free/2_VGGish.npy")
    assert base1.shape == (8, 512) and base1.dtype == np.float32  # 4.3 s -> 8 chunks
    a1 = np.load(tmp_path / "out2/lg/s/aligned/1_VGGish.npy")
    a2 = np.load(tmp_path / "out2/lg/s/aligned/2_VGGish.npy")
    assert a1.shape == (10, 512) and a2.shape == (6, 512)
    np.testing.assert_allclose(a1[:8], base1, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a1[8:], np.repeat(a1[7:8], 2, axis=0))
    np.testing.assert_allclose(a2, base2[:6], rtol=1e-5, atol=1e-6)
    recs = {h["half"]: h for h in s2["details"][0]["halves"]}
    one = recs["1"]
    assert (one["audio_frames"], one["video_frames"], one["frames"]) == (8, 10, 10)


def test_extract_beyond_tolerance_names_files_and_lengths(tmp_path, weights):
    game = _game(tmp_path / "lg" / "s" / "g", seconds=(4.3, 4.3), video=(14, 8))
    with pytest.raises(DataError) as e:
        _run([game], weights, tmp_path / "out")
    msg = str(e.value)
    assert "1.wav" in msg and "1_ResNET_PCA512.npy" in msg and "8 frames" in msg and "14" in msg
    assert not (tmp_path / "out/lg/s/g/1_VGGish.npy").exists()
    s = _run([game], weights, tmp_path / "out", max_length_diff=6)
    assert s["done"] == 1 and np.load(tmp_path / "out/lg/s/g/1_VGGish.npy").shape == (14, 512)


def test_video_features_from_another_root_and_stem(tmp_path, weights):
    game = _game(tmp_path / "videos" / "lg" / "s" / "g", seconds=(3.0, 3.0), video=(None, None))
    feats = tmp_path / "features" / "lg" / "s" / "g"
    feats.mkdir(parents=True)
    for half, n in ((1, 7), (2, 4)):
        np.save(feats / f"{half}_ResNET_TF2_PCA512.npy", np.zeros((n, 512), np.float32))
    s = _run(
        [game],
        weights,
        tmp_path / "out",
        video_features_root=str(tmp_path / "features"),
        video_features="ResNET_TF2_PCA512",
    )
    frames = [(h["audio_frames"], h["frames"]) for h in s["details"][0]["halves"]]
    assert frames == [(6, 7), (6, 4)]
    with pytest.raises(DataError, match="video_features_root .*: not a directory"):
        plan_games([game], "o", video_features_root=str(tmp_path / "nowhere"))


def test_extract_is_deterministic(tmp_path, weights):
    game = _game(tmp_path / "lg" / "s" / "g", seconds=(3.2, 2.0), video=(None, None))
    _run([game], weights, tmp_path / "o1")
    _run([game], weights, tmp_path / "o2")
    for half in (1, 2):
        a = np.load(tmp_path / f"o1/lg/s/g/{half}_VGGish.npy")
        b = np.load(tmp_path / f"o2/lg/s/g/{half}_VGGish.npy")
        np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 512) and np.isfinite(a).all()


def test_resume_skips_complete_and_redoes_partial(tmp_path, weights):
    game = _game(tmp_path / "lg" / "s" / "g", seconds=(4.0, 4.0), video=(8, 8))
    out = tmp_path / "out"
    first = _run([game], weights, out)
    assert (first["done"], first["skipped"], first["halves"]) == (1, 0, 2)
    h1, h2 = out / "lg/s/g/1_VGGish.npy", out / "lg/s/g/2_VGGish.npy"
    mtime = os.stat(h1).st_mtime_ns
    again = _run([game], weights, out)
    assert (again["done"], again["skipped"], again["halves"]) == (0, 1, 0)
    assert os.stat(h1).st_mtime_ns == mtime and "skipped 1" in format_summary(again)
    expected2 = np.load(h2)
    os.remove(h2)
    (out / "lg/s/g/.2_VGGish.npy.tmp-123-abcd").write_bytes(b"half-written")
    partial = _run([game], weights, out)
    assert (partial["done"], partial["halves"]) == (1, 1)
    assert partial["details"][0]["halves"][0]["half"] == "2"
    assert os.stat(h1).st_mtime_ns == mtime
    np.testing.assert_array_equal(np.load(h2), expected2)
    assert not list((out / "lg/s/g").glob(".*tmp*"))
    np.save(h1, np.zeros((5, 512), np.float32))  # wrong length: not complete
    redo = _run([game], weights, out)
    assert redo["halves"] == 1 and np.load(h1).shape == (8, 512)


def test_bad_weights_fail_before_decoding(tmp_path):
    game = _game(tmp_path / "lg" / "s" / "g", seconds=(1.0, 1.0), video=(None, None))
    with pytest.raises(DataError, match=r"missing\.pt: VGGish weights file not found"):
        _run([game], str(tmp_path / "missing.pt"), tmp_path / "out")
    bad = {k: v for k, v in random_state_dict().items() if k != "conv2.weight"}
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(DataError, match=r"bad\.pt: missing key 'conv2\.weight'"):
        _run([game], str(tmp_path / "bad.pt"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_arguments(tmp_path, weights):
    game = _game(tmp_path / "lg" / "s" / "g", seconds=(1.0, 1.0), video=(None, None))
    with pytest.raises(DataError, match="batch_size 0"):
        _run([game], weights, tmp_path / "out", batch_size=0)
    with pytest.raises(DataError, match="max_length_diff -1"):
        _run([game], weights, tmp_path / "out", max_length_diff=-1)
    with pytest.raises(DataError, match="not a torch device"):
        _run([game], weights, tmp_path / "out", device="tpu7")
    if not torch.cuda.is_available():
        with pytest.raises(DataError, match="CUDA is not available"):
            _run([game], weights, tmp_path / "out", device="cuda")
    s = _run([game], weights, tmp_path / "out", device="cpu")
    assert s["device"] == "cpu" and s["media_minutes_per_cpu_second"] > 0


def test_inputs_files_folders_and_roots(tmp_path, weights):
    root = tmp_path / "sn"
    g1 = _game(root / "lg" / "2015" / "g1", seconds=(1.5, 1.5), video=(None, None))
    _game(root / "lg" / "2016" / "g2", seconds=(1.0, 1.0), video=(None, None))
    jobs = plan_games([str(root)], str(tmp_path / "out"))
    assert [j.key for j in jobs] == ["lg/2015/g1", "lg/2016/g2"]
    # single media files: a half of their folder's game, or a loose clip
    media.write_audio(str(tmp_path / "clip.wav"), _audio(1.2), SR)
    np.save(tmp_path / "clip_ResNET_PCA512.npy", np.zeros((3, 512), np.float32))
    jobs = plan_games([os.path.join(g1, "2.wav"), str(tmp_path / "clip.wav")], str(tmp_path / "o"))
    assert [(j.key, [h.half for h in j.halves]) for j in jobs] == [
        ("lg/2015/g1", ["2"]),
        ("", ["clip"]),
    ]
    s = _run([str(tmp_path / "clip.wav")], weights, tmp_path / "o")
    assert np.load(tmp_path / "o" / "clip_VGGish.npy").shape == (3, 512)  # 2 chunks, padded
    assert s["done"] == 1
    # the same file twice is one half; two folders writing the same output are refused
    assert len(plan_games([g1, os.path.join(g1, "1.wav")], "o")[0].halves) == 2
    other = _game(tmp_path / "copy" / "lg" / "2015" / "g1", seconds=(1.0, 1.0), video=(None, None))
    with pytest.raises(DataError, match="writes the same output"):
        plan_games([g1, other], "o")
    with pytest.raises(DataError, match="no such file or directory"):
        plan_games([str(tmp_path / "absent")], "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no game folder"):
        plan_games([str(tmp_path / "empty")], "o")
    with pytest.raises(DataError, match="no INPUT"):
        plan_games([], "o")


def test_end_to_end_soccernet_video_to_feature_table(tmp_path, weights):
    """Matroska halves with AAC audio -> {half}_VGGish.npy -> ingest -> the table's audio."""
    from avspot.datasets.soccernet import ingest
    from avspot.datasets.table import read_halves

    root = tmp_path / "soccernet"
    key = "italy_serie-a/2016-2017/2017-01-08 - 17-00 Genoa 0 - 1 AS Roma"
    game = root / key
    _game(game, seconds=(20.0, 20.0), video=(40, 40), ext="mkv", sr=44100)
    (game / "Labels.json").write_text(
        json.dumps(
            {
                "annotations": [
                    {
                        "gameTime": "1 - 00:05",
                        "label": "y-card",
                        "team": "home",
                        "visibility": "visible",
                    }
                ]
            }
        )
    )
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"train": [key], "valid": [], "test": []}))
    summary = _run([str(root)], weights, root)  # OUT = the SoccerNet root: beside the features
    assert summary["done"] == 1 and abs(summary["media_minutes"] - 40 / 60) < 0.01
    assert summary["media_minutes_per_cpu_second"] > 0
    written = {h: np.load(game / f"{h}_VGGish.npy") for h in (1, 2)}
    assert all(w.shape == (40, 512) and w.dtype == np.float32 for w in written.values())
    table = str(tmp_path / "table")
    ingest(str(root), table, splits=str(splits))
    halves = {h.half: h for h in read_halves(table)}
    assert set(halves) == {1, 2} and halves[1].game == key
    for h in (1, 2):
        np.testing.assert_array_equal(halves[h].audio, written[h])
    assert [e.raw_label for e in halves[1].events] == ["y-card"]


# ---- Ray -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.mark.integration
def test_ray_data_extracts_games_like_a_local_run(tmp_path, weights, ray_local):
    root = tmp_path / "sn"
    _game(root / "lg" / "s" / "g1", seconds=(3.0, 2.6), video=(6, 5))
    _game(root / "lg" / "s" / "g2", seconds=(2.0, 2.2), video=(None, None), seed=5)
    local = _run([str(root)], weights, tmp_path / "local")
    dist = _run([str(root)], weights, tmp_path / "ray", address="local")
    assert (dist["games"], dist["done"], dist["halves"]) == (2, 2, 4)
    assert dist["device"].startswith("ray: 1 actor(s), 2 CPU")
    assert dist["cpu_seconds"] > 0 and dist["media_minutes"] == pytest.approx(
        local["media_minutes"]
    )
    for rel in ("g1/1", "g1/2", "g2/1", "g2/2"):
        a = np.load(tmp_path / "local" / "lg" / "s" / f"{rel}_VGGish.npy")
        b = np.load(tmp_path / "ray" / "lg" / "s" / f"{rel}_VGGish.npy")
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    again = _run([str(root)], weights, tmp_path / "ray", address="local")
    assert (again["done"], again["skipped"]) == (0, 2)


@pytest.mark.integration
def test_ray_reports_failed_games_after_writing_the_others(tmp_path, weights, ray_local):
    root = tmp_path / "sn"
    _game(root / "lg" / "s" / "good", seconds=(2.0, 2.0), video=(4, 4))
    _game(root / "lg" / "s" / "bad", seconds=(2.0, 2.0), video=(40, 4))
    with pytest.raises(
        DataError, match=r"1 of 2 games failed .*bad/1\.wav vs .*: audio gives 4 frames, video 40"
    ):
        _run([str(root)], weights, tmp_path / "out", address="local")
    assert (tmp_path / "out/lg/s/good/2_VGGish.npy").exists()
    assert not (tmp_path / "out/lg/s/bad/1_VGGish.npy").exists()


def test_extract_audio_command(tmp_path, weights, capsys):
    """`avspot data extract-audio`: one summary line, exit 2 with one line on bad input."""
    from avspot.search.cli.main import main

    game = _game(tmp_path / "root" / "league" / "2020" / "g1")
    out = tmp_path / "out"
    assert (
        main(["data", "extract-audio", game, "--weights", weights, "--out", str(out), "--quiet"])
        == 0
    )
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and said[0].startswith("extracted audio features of 1 game(s)")
    assert sorted(p.name for p in out.rglob("*.npy")) == ["1_VGGish.npy", "2_VGGish.npy"]
    bad = ["data", "extract-audio", game, "--weights", str(tmp_path / "nope.pt"), "--out", str(out)]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.pt" in err[0]

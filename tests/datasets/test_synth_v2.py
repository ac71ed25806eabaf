"""Synthetic SoccerNet-v2 games: the 17 classes at SoccerNet-v2's rates, "not shown" events, and
a signal where video carries some classes, audio others, and fusion beats either."""

import json

import numpy as np
import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.labels import V2, V2_EVENTS_PER_GAME, V2_NOT_SHOWN_SHARE
from avspot.datasets.synth import synth_games, synthesize
from avspot.datasets.synth_v2 import AUDIO_CLASSES, VIDEO_CLASSES, _plan_half
from avspot.datasets.table import read_halves
from avspot.datasets.windows import chunk_labels, gather_chunks
from avspot.search.cli.main import main


def test_rates_and_visibility_follow_soccernet_v2():
    rng = np.random.default_rng(0)
    games, n = 300, 2 * 45 * 60  # 45-min halves at 2 fps
    counts = dict.fromkeys(V2.classes, 0)
    hidden = dict.fromkeys(V2.classes, 0)
    for _ in range(2 * games):
        events, episodes = _plan_half(rng, n, 45.0)
        assert len(episodes) >= len(events)  # every event is rendered, plus look-alikes
        for e in events:
            counts[e.label] += 1
            hidden[e.label] += e.visibility == "not shown"
            assert e.label == e.raw_label and 0 <= e.frame < n
            assert e.frame == int(2 * (e.position_ms / 1000))
    for c in V2.classes:
        mean = V2_EVENTS_PER_GAME[c] * games  # Poisson: sd = sqrt(mean)
        assert abs(counts[c] - mean) <= 4 * np.sqrt(mean) + 2, (c, counts[c], mean)
    total = sum(counts.values())
    assert 200 * games < total < 240 * games  # about 221 actions a game, one every 25 s
    share = sum(hidden.values()) / total
    want = sum(V2_EVENTS_PER_GAME[c] * V2_NOT_SHOWN_SHARE[c] for c in V2.classes) / sum(
        V2_EVENTS_PER_GAME.values()
    )
    assert 0.07 < share < 0.14 and abs(share - want) < 0.01, (share, want)
    assert hidden["Substitution"] / counts["Substitution"] > 0.15 > hidden["Goal"] / counts["Goal"]


def test_split_of_classes_between_modalities():
    assert set(VIDEO_CLASSES) | set(AUDIO_CLASSES) == set(V2.classes)
    assert not set(VIDEO_CLASSES) & set(AUDIO_CLASSES)
    assert {"Goal", "Foul"} <= set(AUDIO_CLASSES) and "Yellow card" in VIDEO_CLASSES


def test_v2_table(tmp_path):
    out = str(tmp_path / "t")
    m = synthesize(out, games=3, seed=2, half_minutes=4, labels="v2", dtype="float16")
    assert (m.label_set, m.dtype, m.source) == ("v2", "float16", "synthetic")
    assert m.params["generator"] == "avspot.datasets.synth_v2" and m.params["labels"] == "v2"
    assert set(m.counts["per_class"]) == set(V2.classes)
    assert (
        m.counts["visibility"]["visible"] + m.counts["visibility"]["not shown"]
        == (m.counts["events"])
    )
    halves = read_halves(out)
    assert {h.label_set for h in halves} == {"v2"} and {h.split for h in halves} == {
        "train",
        "valid",
        "test",
    }
    for h in halves:
        assert h.video.dtype == np.float16 and h.video.shape[1] == h.audio.shape[1] == 512
        assert np.isfinite(h.video).all() and np.isfinite(h.audio).all()
    games: dict[str, int] = {}
    for h in halves:
        games[h.game] = games.get(h.game, 0) + sum(e.label == "Goal" for e in h.events)
    for name, goals in games.items():  # the score in the name counts the goals
        score = name.rsplit(" - ", 1)
        assert int(score[0].split()[-1]) + int(score[1].split()[0]) == goals
    again = synthesize(str(tmp_path / "u"), games=3, seed=2, half_minutes=4, labels="v2",
                       dtype="float16")  # fmt: skip
    assert again.fingerprint == m.fingerprint


def test_v1_is_the_default_and_bad_values(tmp_path):
    h = next(iter(synth_games(1, seed=0, half_minutes=0.2)))
    assert h.label_set == "v1"
    with pytest.raises(DataError, match=r"labels 'v3': expected one of v1, v2"):
        synth_games(1, labels="v3")
    with pytest.raises(DataError, match=r"dtype 'bf16'"):
        synthesize(str(tmp_path / "t"), games=1, dtype="bf16")
    assert not (tmp_path / "t").exists()


def test_cli_synth_v2(tmp_path, capsys):
    out = str(tmp_path / "t")
    argv = ["data", "synth", "--out", out, "--games", "2", "--half-minutes", "0.5",
            "--labels", "v2", "--dtype", "float16", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "wrote 2 synthetic games (v2)" in capsys.readouterr().out
    assert main(["data", "inspect", out, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["label_set"], s["dtype"], len(s["classes"])) == ("v2", "float16", 17)
    for bad in (["--labels", "v3"], ["--dtype", "float64"]):
        with pytest.raises(SystemExit) as e:
            main(["data", "synth", "--out", str(tmp_path / "u"), *bad])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and bad[0] in err
    assert not (tmp_path / "u").exists()


def _ap(y: np.ndarray, s: np.ndarray) -> float:
    y = y[np.argsort(-s)]
    tp = np.cumsum(y)
    return float(((tp / np.arange(1, len(y) + 1)) * y).sum() / max(y.sum(), 1))


@pytest.mark.slow
def test_fusion_beats_each_modality_v2():
    """A ridge probe on mean+max pooled 5 s chunks (train games -> valid+test): video leads on
    the video classes, audio on the audio classes, and both together have the best mean AP."""
    w = 10
    feats: dict[str, list[np.ndarray]] = {"video": [], "audio": []}
    targets, held_out = [], []
    for h in synth_games(16, seed=3, half_minutes=10, labels="v2"):
        starts, t = chunk_labels(h, w)
        for m in feats:
            x = gather_chunks(getattr(h, m), starts, w)  # (C, W, 512)
            feats[m].append(np.concatenate([x.mean(1), x.max(1)], 1))
        targets.append(t)
        held_out.append(np.full(len(starts), h.split != "train"))
    y, te = np.concatenate(targets), np.concatenate(held_out)
    assert y.shape[1] == 18  # 17 classes + background
    video, audio = np.concatenate(feats["video"]), np.concatenate(feats["audio"])
    ap: dict[str, dict[str, float]] = {}
    for name, x in (("video", video), ("audio", audio), ("both", np.c_[video, audio])):
        mu, sd = x[~te].mean(0), x[~te].std(0) + 1e-6
        x = np.c_[(x - mu) / sd, np.ones(len(x))]
        a = x[~te]
        coef = np.linalg.solve(a.T @ a + 300 * np.eye(a.shape[1]), a.T @ y[~te])
        s = x[te] @ coef
        ap[name] = {
            c: _ap(y[te][:, k], s[:, k]) for k, c in enumerate(V2.classes) if y[te][:, k].sum() >= 3
        }

    def mean(m: str, classes: tuple[str, ...]) -> float:
        return float(np.mean([ap[m][c] for c in classes if c in ap[m]]))

    assert mean("video", VIDEO_CLASSES) > mean("audio", VIDEO_CLASSES) + 0.15, ap
    assert mean("audio", AUDIO_CLASSES) > mean("video", AUDIO_CLASSES) + 0.1, ap
    every = V2.classes
    assert mean("both", every) > max(mean("video", every), mean("audio", every)) + 0.05, ap

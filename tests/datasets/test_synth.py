import re

import numpy as np
import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.synth import LEAGUES, _plan_game, synth_games, synthesize
from avspot.datasets.table import read_halves

NAME = re.compile(
    r"^([a-z_\-0-9]+)/(\d{4})-(\d{4})/(\d{4})-(\d\d)-(\d\d) - (\d\d)-(\d\d) (.+) (\d+) - (\d+) (.+)$"
)


def test_deterministic_fingerprint(tmp_path):
    a = synthesize(str(tmp_path / "a"), games=3, seed=11, half_minutes=0.5)
    b = synthesize(str(tmp_path / "b"), games=3, seed=11, half_minutes=0.5)
    c = synthesize(str(tmp_path / "c"), games=3, seed=12, half_minutes=0.5)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.seed == 11 and a.source == "synthetic"
    assert a.counts["games"] == 3 and a.counts["halves"] == 6


def test_shapes_and_structure(tiny_table):
    halves = read_halves(tiny_table)
    assert len(halves) == 10
    for h in halves:
        assert h.video.dtype == np.float32 and h.audio.dtype == np.float32
        assert h.video.shape[1] == h.audio.shape[1] == 512
        assert h.video.shape[0] == h.audio.shape[0]
        assert 120 <= h.n_frames <= 2 * (60 + 240)  # 1 minute + 0-4 min stoppage at 2 fps
        assert np.isfinite(h.video).all() and np.isfinite(h.audio).all()
        assert h.fps == 2.0
        for e in h.events:
            assert 0 <= e.frame < h.n_frames
            assert e.frame == int(2 * e.position_ms / 1000)
    assert {h.split for h in halves} == {"train", "valid", "test"}


def test_names_and_scores():
    games: dict[str, list] = {}
    for h in synth_games(12, seed=1, half_minutes=0.1):
        games.setdefault(h.game, []).append(h)
    assert len(games) == 12
    for name, halves in games.items():
        m = NAME.match(name)
        assert m, name
        assert m.group(1) in LEAGUES
        assert int(m.group(3)) == int(m.group(2)) + 1
        assert m.group(9) != m.group(12)
        goals = sum(e.label == "soccer" for h in halves for e in h.events)
        assert int(m.group(10)) + int(m.group(11)) == goals
        assert [h.half for h in halves] == [1, 2]


@pytest.mark.parametrize(
    "games,expect",
    [
        (1, {"train": 1}),
        (3, {"train": 1, "valid": 1, "test": 1}),
        (10, {"train": 6, "valid": 2, "test": 2}),
    ],
)
def test_split_ratios(games, expect):
    seen: dict[str, set] = {}
    for h in synth_games(games, seed=0, half_minutes=0.1):
        seen.setdefault(h.split, set()).add(h.game)
    assert {s: len(g) for s, g in seen.items()} == expect


def test_event_rates():
    """Per-game rates of the seed's Table 3, over the same event planner that synth_game uses."""
    n_games = 1000
    per_class = {"card": 0, "subs": 0, "soccer": 0}
    subs_by_half = [0, 0]
    for seed in np.random.SeedSequence(2).spawn(n_games):
        _, plans = _plan_game(np.random.default_rng(seed), 45.0)
        for half, p in enumerate(plans, start=1):
            for e in p.events:
                per_class[e.label] += 1
                if e.label == "subs":
                    subs_by_half[half - 1] += 1
                assert 0 <= e.frame < p.n
    rates = {k: v / n_games for k, v in per_class.items()}
    assert rates["card"] == pytest.approx(4.4, abs=0.25)
    assert rates["subs"] == pytest.approx(5.1, abs=0.25)
    assert rates["soccer"] == pytest.approx(3.1, abs=0.2)
    assert subs_by_half[1] > 5 * subs_by_half[0]  # substitutions mostly in the second half


def test_bad_arguments(tmp_path):
    for kw in (
        {"games": 0},
        {"games": -1},
        {"half_minutes": 0},
        {"half_minutes": 200},
        {"seed": -1},
    ):
        with pytest.raises(DataError):
            synthesize(str(tmp_path / "x"), **kw)
    assert not (tmp_path / "x").exists()

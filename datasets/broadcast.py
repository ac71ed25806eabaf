"""The synthetic broadcast that ``data synth`` renders: camera shots, sound, fixed feature bases.

Every half is a Markov sequence of camera shots (wide play, player close-up, referee close-up,
replay, crowd, bench) that persist for seconds, and a soundtrack of latent channels (crowd roar,
whistle, applause, boos, commentary excitement). Features are these latents projected through
fixed random 512-d bases plus temporally correlated AR(1) noise, per-shot variation and white
noise, float32 at 2 frames/s. Events and look-alike distractors are ``_Episode``s that rewrite
the shots and drive the sound over a spread of seconds. The v1 games (``datasets/synth.py``) and
the v2 games (``datasets/synth_v2.py``, which adds shot types and sound channels) are built from
these parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avspot.datasets.labels import FPS

DIM = 512
BASIS_SEED = 20_190_419  # fixed "feature extractor": tables of any seed share one feature space

# camera shot types
WIDE, CLOSE, REF, REPLAY, CROWD, BENCH = range(6)
N_SHOTS = 6
_SHOT_MEAN_S = np.array([13.0, 4.0, 3.0, 6.0, 3.0, 4.0])  # background shot durations
_TRANSITIONS = np.array(  # background Markov switching between shot types (rows sum to 1)
    [
        [0.00, 0.55, 0.06, 0.15, 0.12, 0.12],
        [0.70, 0.00, 0.05, 0.12, 0.07, 0.06],
        [0.70, 0.20, 0.00, 0.05, 0.03, 0.02],
        [0.80, 0.10, 0.02, 0.00, 0.05, 0.03],
        [0.75, 0.15, 0.02, 0.05, 0.00, 0.03],
        [0.75, 0.15, 0.02, 0.05, 0.03, 0.00],
    ]
)

# audio latent channels
ROAR, WHISTLE, APPLAUSE, BOOS, EXCITEMENT = range(5)
N_AUDIO = 5

LEAGUES: dict[str, tuple[str, ...]] = {
    "england_epl": (
        "Arsenal", "Chelsea", "Liverpool", "Manchester United", "Manchester City", "Tottenham",
        "Everton", "Southampton", "Swansea", "Crystal Palace", "Burnley", "Watford", "Leicester",
    ),
    "spain_laliga": (
        "Barcelona", "Real Madrid", "Atl. Madrid", "Sevilla", "Valencia", "Villarreal",
        "Celta Vigo", "Malaga", "Espanyol", "Eibar", "Ath Bilbao",
    ),
    "france_ligue-1": (
        "Paris SG", "Marseille", "Lyon", "Monaco", "Nice", "Bordeaux", "Nantes", "Lille",
        "Rennes", "St Etienne",
    ),
    "germany_bundesliga": (
        "Bayern Munich", "Dortmund", "Schalke", "Leverkusen", "Wolfsburg", "Hamburger SV",
        "Mainz", "Hertha Berlin", "FC Koln", "Hoffenheim",
    ),
    "italy_serie-a": (
        "Juventus", "Napoli", "AS Roma", "Inter", "AC Milan", "Lazio", "Fiorentina", "Atalanta",
        "Torino", "Sampdoria",
    ),
}  # fmt: skip
SEASONS = ("2014-2015", "2015-2016", "2016-2017")
KICKOFFS = ("13-30", "14-30", "15-00", "16-00", "17-00", "18-00", "19-30", "20-45", "21-45")


@dataclass(frozen=True)
class _Bases:
    """Fixed projections from latent factors to 512-d features (shared by every game)."""

    shot: np.ndarray  # (N_SHOTS, DIM)
    shot_var: np.ndarray  # (16, DIM) per-shot-instance variation
    video_ar: np.ndarray  # (32, DIM)
    sound: np.ndarray  # (N_AUDIO, DIM)
    audio_ar: np.ndarray  # (32, DIM)
    stadium: np.ndarray  # (8, DIM) per-game acoustics

    @property
    def video_mix(self) -> np.ndarray:  # (6 + 16 + 32, DIM)
        return np.concatenate([self.shot, self.shot_var, self.video_ar]).astype(np.float32)

    @property
    def audio_mix(self) -> np.ndarray:  # (5 + 32, DIM)
        return np.concatenate([self.sound, self.audio_ar]).astype(np.float32)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _make_bases() -> _Bases:
    rng = np.random.default_rng(BASIS_SEED)
    g = rng.standard_normal
    close, wide = g(DIM), g(DIM)
    shot = np.stack(
        [
            wide,
            close + 0.5 * g(DIM),  # player close-up
            close + 0.7 * g(DIM),  # referee close-up: also a close-up
            0.6 * wide + g(DIM),  # replay: slow-motion play
            g(DIM),  # crowd
            0.5 * close + g(DIM),  # bench / touchline
        ]
    )
    return _Bases(
        shot=_unit_rows(shot) * 1.6,
        shot_var=_unit_rows(g((16, DIM))),
        video_ar=_unit_rows(g((32, DIM))),
        sound=_unit_rows(g((N_AUDIO, DIM))),
        audio_ar=_unit_rows(g((32, DIM))),
        stadium=_unit_rows(g((8, DIM))),
    )


_BASES: _Bases | None = None


def _bases() -> _Bases:
    global _BASES
    if _BASES is None:
        _BASES = _make_bases()
    return _BASES


def _ar1(rng: np.random.Generator, n: int, dim: int, rho: float, scale: float) -> np.ndarray:
    """(n, dim) stationary AR(1) noise, x_t = rho x_{t-1} + e_t, computed in blocks of cumsums."""
    out = np.empty((n, dim), np.float64)
    e = rng.standard_normal((n, dim)) * (scale * np.sqrt(1.0 - rho**2))
    prev = rng.standard_normal(dim) * scale
    block = 128  # rho**-block stays far from overflow
    powers = rho ** np.arange(1, block + 1)  # (block,)
    for s in range(0, n, block):
        m = min(block, n - s)
        p = powers[:m, None]  # rho^(k+1)
        acc = np.cumsum(e[s : s + m] / p, axis=0) * p  # sum_j rho^(k-j) e_j
        out[s : s + m] = acc + p * prev
        prev = out[s + m - 1]
    return out.astype(np.float32)


def _white(rng: np.random.Generator, n: int, scale: float = 0.05) -> np.ndarray:
    """(n, DIM) float32 white noise (uniform, std ``scale``: 3x cheaper than normal draws)."""
    x = rng.random((n, DIM), dtype=np.float32)
    x -= 0.5
    x *= scale * np.float32(np.sqrt(12.0))
    return x


@dataclass
class _Episode:
    """A scripted stretch of broadcast: shots to paint and sounds to add, from frame `start`."""

    start: int
    shots: list[tuple[int, float]]  # (shot type, seconds)
    sounds: list[
        tuple[int, float, float, float, float]
    ]  # (channel, onset s, amp, sustain s, decay s)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _goal(rng: np.random.Generator, t: int) -> _Episode:
    shots = [(CLOSE, _u(rng, 6, 14)), (CROWD, _u(rng, 2, 5)), (CLOSE, _u(rng, 3, 7))]
    for _ in range(int(rng.integers(2, 4))):
        shots += [(REPLAY, _u(rng, 4, 8)), (WIDE, _u(rng, 0.5, 2))]
    onset = _u(rng, 0, 2.5)
    sounds = [
        (ROAR, onset, _u(rng, 2.2, 3.5), _u(rng, 12, 30), _u(rng, 5, 10)),
        (EXCITEMENT, onset + _u(rng, 0, 1.5), _u(rng, 1.5, 2.5), _u(rng, 10, 25), 6.0),
        (APPLAUSE, onset + _u(rng, 15, 30), _u(rng, 0.6, 1.2), _u(rng, 4, 8), 3.0),
    ]
    return _Episode(t + int(FPS * _u(rng, 0, 3)), shots, sounds)


def _shot_on_target(rng: np.random.Generator, t: int) -> _Episode:
    shots = [(CLOSE, _u(rng, 2, 7))]
    if rng.random() < 0.5:
        shots.append((CROWD, _u(rng, 1, 3)))
    shots.append((REPLAY, _u(rng, 4, 8)))
    if rng.random() < 0.4:
        shots += [(WIDE, _u(rng, 0.5, 2)), (REPLAY, _u(rng, 3, 7))]
    onset = _u(rng, 0, 2.5)
    sounds = [
        (ROAR, onset, _u(rng, 1.5, 3.0), _u(rng, 1, 4), _u(rng, 1.5, 3)),
        (EXCITEMENT, onset, _u(rng, 1.0, 2.0), _u(rng, 2, 5), 2.0),
    ]
    return _Episode(t + int(FPS * _u(rng, 0, 3)), shots, sounds)


def _card(rng: np.random.Generator, t: int) -> _Episode:
    foul = -_u(rng, 8, 35)  # the foul comes before the card is shown
    shots = [(WIDE, -foul - 8 if -foul > 12 else 1.0), (CLOSE, _u(rng, 2, 5))]
    shots += [(REF, _u(rng, 3, 7)), (CLOSE, _u(rng, 1, 3)), (REPLAY, _u(rng, 4, 9))]
    sounds = [(WHISTLE, foul, _u(rng, 1.5, 2.5), 0.5, 0.5)]
    if rng.random() < 0.7:
        sounds.append((BOOS, _u(rng, -6, 2), _u(rng, 0.5, 1.2), _u(rng, 3, 8), 2.0))
    return _Episode(t + int(FPS * foul), shots, sounds)


def _foul(rng: np.random.Generator, t: int) -> _Episode:
    shots: list[tuple[int, float]] = [(WIDE, _u(rng, 1, 4))]
    if rng.random() < 0.7:
        shots.append((CLOSE, _u(rng, 2, 5)))
    if rng.random() < 0.15:
        shots.append((REF, _u(rng, 1, 3)))
    if rng.random() < 0.45:
        shots.append((REPLAY, _u(rng, 3, 7)))
    sounds = [(WHISTLE, 0.0, _u(rng, 1.5, 2.5), 0.5, 0.5)]
    if rng.random() < 0.5:
        sounds.append((BOOS, _u(rng, 0, 8), _u(rng, 0.5, 1.2), _u(rng, 3, 8), 2.0))
    return _Episode(t, shots, sounds)


def _sub(rng: np.random.Generator, t: int) -> _Episode:
    shots = [(BENCH, _u(rng, 8, 18)), (CLOSE, _u(rng, 2, 5)), (BENCH, _u(rng, 3, 8))]
    sounds = [(APPLAUSE, _u(rng, 5, 15), _u(rng, 0.8, 1.6), _u(rng, 5, 12), 3.0)]
    return _Episode(t - int(FPS * _u(rng, 5, 15)), shots, sounds)


def _coach(rng: np.random.Generator, t: int) -> _Episode:
    return _Episode(t, [(BENCH, _u(rng, 2, 5))], [])


def _applause(rng: np.random.Generator, t: int) -> _Episode:
    return _Episode(t, [], [(APPLAUSE, 0.0, _u(rng, 0.5, 1.3), _u(rng, 2, 6), 2.0)])


def _near_miss(rng: np.random.Generator, t: int) -> _Episode:
    return _Episode(t, [], [(ROAR, 0.0, _u(rng, 0.8, 2.0), _u(rng, 1, 3), 1.5)])


def _background_shots(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) shot type per frame: Markov switching, durations drawn per shot (>= 1 s)."""
    shots = np.empty(n, np.int8)
    pos, state = 0, WIDE
    while pos < n:
        length = max(2, int(FPS * rng.gamma(3.0, _SHOT_MEAN_S[state] / 3.0)))
        shots[pos : pos + length] = state
        pos += length
        state = int(rng.choice(N_SHOTS, p=_TRANSITIONS[state]))
    return shots


def _envelope(n: int, start: float, sustain: float, decay: float, attack: float) -> np.ndarray:
    """(n,) smooth rise, plateau and exponential decay, times in frames from the slice start."""
    t = np.arange(n, dtype=np.float64) - start
    rise = np.clip(t / max(attack, 1e-6), 0.0, 1.0)
    fall = np.exp(-np.clip(t - sustain, 0.0, None) / max(decay, 1e-6))
    return np.where(t < 0, 0.0, rise * fall)


def _half_features(
    rng: np.random.Generator,
    n: int,
    episodes: list[_Episode],
    stadium: np.ndarray,
    bases: _Bases | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render a half's (n, 512) video and audio features from its episodes (``bases``: the
    feature space, default v1's; v2 adds shot types and sound channels)."""
    b = bases if bases is not None else _bases()
    n_shots, n_audio = b.shot.shape[0], b.sound.shape[0]
    shots = _background_shots(rng, n)
    sound = np.zeros((n, n_audio))
    for ep in sorted(episodes, key=lambda e: e.start):
        pos = ep.start
        for shot, seconds in ep.shots:
            length = max(1, int(round(FPS * seconds)))
            lo, hi = max(pos, 0), min(pos + length, n)
            if lo < hi:
                shots[lo:hi] = shot
            pos += length
        for channel, onset, amp, sustain, decay in ep.sounds:
            s0 = ep.start + int(FPS * onset)
            span = int(FPS * (sustain + 5 * decay)) + 4
            lo, hi = max(s0, 0), min(s0 + span, n)
            if lo < hi:
                attack = 1.0 if channel == WHISTLE else FPS * _u(rng, 0.5, 2.0)
                env = _envelope(hi - lo, s0 - lo, FPS * sustain, FPS * decay, attack)
                sound[lo:hi, channel] += amp * env
    # video: shot embedding + per-shot-instance variation + AR(1) camera motion + white noise
    change = np.flatnonzero(np.diff(shots)) + 1
    seg_id = np.zeros(n, np.int64)
    seg_id[change] = 1
    seg_id = np.cumsum(seg_id)  # (n,) shot instance of each frame
    seg_var = rng.standard_normal((int(seg_id[-1]) + 1, 16), dtype=np.float32) * 0.35
    latent = np.concatenate(
        [np.eye(n_shots, dtype=np.float32)[shots], seg_var[seg_id], _ar1(rng, n, 32, 0.9, 0.45)],
        axis=1,
    )  # (n, n_shots + 16 + 32)
    video = latent @ b.video_mix  # (n, 512) float32
    video += _white(rng, n)
    # audio: background crowd/commentary levels + event sounds + stadium + AR(1) + white noise
    sound[:, ROAR] += _ar1(rng, n, 1, 0.98, 0.5)[:, 0]
    sound[:, EXCITEMENT] += _ar1(rng, n, 1, 0.95, 0.5)[:, 0]
    sound[:, WHISTLE] += 0.6 * (rng.random(n) < 0.01)  # stray whistles (throw-ins, offsides)
    latent = np.concatenate([sound.astype(np.float32), _ar1(rng, n, 32, 0.85, 0.4)], axis=1)
    audio = latent @ b.audio_mix  # (n, 512) float32
    audio += stadium
    audio += _white(rng, n)
    return video, audio


def _game_name(rng: np.random.Generator, home_goals: int, away_goals: int) -> str:
    league = list(LEAGUES)[int(rng.integers(len(LEAGUES)))]
    home, away = rng.choice(len(LEAGUES[league]), size=2, replace=False)
    season = SEASONS[int(rng.integers(len(SEASONS)))]
    start_year = int(season[:4])
    month = int(rng.choice([8, 9, 10, 11, 12, 1, 2, 3, 4, 5]))
    year = start_year if month >= 8 else start_year + 1
    day = int(rng.integers(1, 29))
    kickoff = KICKOFFS[int(rng.integers(len(KICKOFFS)))]
    teams = LEAGUES[league]
    return (
        f"{league}/{season}/{year}-{month:02d}-{day:02d} - {kickoff} "
        f"{teams[home]} {home_goals} - {away_goals} {teams[away]}"
    )


def _split_plan(games: int, rng: np.random.Generator) -> list[str]:
    """60/20/20 splits (300/100/100-like), at least one game per split when games >= 3."""
    n_valid = max(1, round(0.2 * games)) if games >= 2 else 0
    n_test = max(1, round(0.2 * games)) if games >= 3 else 0
    plan = ["train"] * (games - n_valid - n_test) + ["valid"] * n_valid + ["test"] * n_test
    return [plan[i] for i in rng.permutation(games)]

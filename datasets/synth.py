"""Synthetic SoccerNet-shaped games whose audio and video carry complementary evidence.

``synthesize`` / ``synth_games`` write v1 games (3 classes, this module) or SoccerNet-v2 games
(17 classes, ``datasets/synth_v2.py``). Every half is a broadcast (``datasets/broadcast.py``): a
Markov sequence of camera shots (wide play, player close-up, referee close-up, replay, crowd,
bench) that persist for seconds, and a soundtrack of latent channels (crowd roar, whistle,
applause, boos, commentary excitement). Features are these latents projected through fixed
random 512-d bases plus temporally correlated AR(1) noise, per-shot variation and white noise,
float32 at 2 frames/s (stored as float32 or float16).

v1 games:

Events and look-alike distractors rewrite the shots and drive the sound over a spread of seconds
with random delays (never a clean spike at the annotated frame):

- goal: long celebration close-ups, crowd, 2-3 replays; a loud roar sustained 12-30 s.
  Distractor shot on target: close-up, crowd, 1-2 replays (video alike) but a roar of 1-4 s.
- card: referee close-up (the card), player close-ups, a replay; whistle at the foul and mild
  boos. Distractor foul: the same whistle and boos (audio alike), player close-up and replay
  but rarely a referee close-up.
- substitution: bench/touchline shots for 10-25 s (coach shots are short distractors) and
  moderate applause (applause also follows good play).

So video tells cards from fouls, audio tells goals from shots, and fusing both beats either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from avspot.datasets.broadcast import (  # noqa: F401 - LEAGUES, DIM: part of this module's API
    BASIS_SEED,
    DIM,
    LEAGUES,
    _applause,
    _bases,
    _card,
    _coach,
    _Episode,
    _foul,
    _game_name,
    _goal,
    _half_features,
    _near_miss,
    _shot_on_target,
    _split_plan,
    _sub,
    _u,
)
from avspot.datasets.errors import DataError
from avspot.datasets.halves import DEFAULT_DTYPE, SPLITS, Event, Half, check_dtype
from avspot.datasets.labels import FPS, get_label_set, label_to_class
from avspot.datasets.manifest import Manifest
from avspot.datasets.progress import progress as bar
from avspot.datasets.synth_v2 import synth_game_v2
from avspot.datasets.table import write_table

EVENTS_PER_GAME = {"card": 4.4, "subs": 5.1, "soccer": 3.1}  # seed Table 3


@dataclass
class _HalfPlan:
    n: int  # frames
    events: list[Event]
    episodes: list[_Episode]


def _plan_game(rng: np.random.Generator, half_minutes: float) -> tuple[str, list[_HalfPlan]]:
    """Name, lengths, events and scripted episodes of one game (no features yet)."""
    n_cards = int(rng.poisson(EVENTS_PER_GAME["card"]))
    n_subs = int(rng.binomial(6, EVENTS_PER_GAME["subs"] / 6))
    n_goals = int(rng.poisson(EVENTS_PER_GAME["soccer"]))
    lengths = [int(FPS * round(60 * half_minutes + rng.uniform(0, 240))) for _ in (1, 2)]
    # (half, raw label): subs mostly in the second half, cards a little more there
    cards = ["y-card"] * 17 + ["yr-card", "r-card", "r-card"]
    plan: list[tuple[int, str]] = []
    plan += [(1 if rng.random() < 0.45 else 2, str(rng.choice(cards))) for _ in range(n_cards)]
    plan += [(1 if rng.random() < 0.08 else 2, "substitution-in") for _ in range(n_subs)]
    plan += [
        (
            1 if rng.random() < 0.47 else 2,
            "soccer-ball-own" if rng.random() < 0.05 else "soccer-ball",
        )
        for _ in range(n_goals)
    ]
    home_goals = int(rng.binomial(n_goals, 0.55))
    name = _game_name(rng, home_goals, n_goals - home_goals)
    makers = {"card": _card, "subs": _sub, "soccer": _goal}
    distractors = (
        (_foul, 9.0),
        (_shot_on_target, 3.0),
        (_coach, 2.5),
        (_applause, 3.0),
        (_near_miss, 5.0),
    )
    halves = []
    for half, n in zip((1, 2), lengths, strict=True):
        margin = min(20.0, 0.1 * n / FPS)  # seconds kept free at the half's edges
        events: list[Event] = []
        episodes: list[_Episode] = []
        for h, raw in plan:
            if h != half:
                continue
            seconds = int(rng.uniform(margin, n / FPS - margin))
            frame = int(FPS * seconds)
            label = label_to_class(raw)
            events.append(Event(frame, label, raw, seconds * 1000))
            episodes.append(makers[label](rng, frame))
        minutes = n / FPS / 60.0
        for maker, per_45 in distractors:  # look-alikes without an event
            for _ in range(int(rng.poisson(per_45 * minutes / 45.0))):
                episodes.append(maker(rng, int(FPS * rng.uniform(0, n / FPS))))
        events.sort(key=lambda e: (e.frame, e.raw_label))
        halves.append(_HalfPlan(n, events, episodes))
    return name, halves


def synth_game(
    seed: np.random.SeedSequence | int, split: str, half_minutes: float = 45.0
) -> list[Half]:
    """Both halves of one synthetic game (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    name, plans = _plan_game(rng, half_minutes)
    stadium = ((rng.standard_normal(8) * 0.3) @ _bases().stadium).astype(np.float32)  # (512,)
    halves = []
    for half, p in enumerate(plans, start=1):
        video, audio = _half_features(rng, p.n, p.episodes, stadium)
        halves.append(Half(name, half, split, FPS, video, audio, p.events))
    return halves


def synth_games(
    games: int = 20, seed: int = 0, half_minutes: float = 45.0, labels: str = "v1"
) -> Iterator[Half]:
    """The halves of ``games`` synthetic games, generated one game at a time (lazy, deterministic).

    ``labels`` v1 (3 classes, this module) or v2 (17 classes, ``datasets/synth_v2.py``).
    Arguments are checked now (DataError), not at the first ``next``.
    """
    get_label_set(labels, field="labels")
    if isinstance(games, bool) or not isinstance(games, int) or games < 1:
        raise DataError(f"games {games!r}: must be a positive integer", field="games")
    if not isinstance(half_minutes, int | float) or not 0 < half_minutes <= 90:
        raise DataError(f"half_minutes {half_minutes!r}: must be in (0, 90]", field="half_minutes")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed {seed!r}: must be a non-negative integer", field="seed")
    if labels == "v2":
        return _synth_games(games, seed, float(half_minutes), synth_game_v2)
    return _synth_games(games, seed, float(half_minutes), synth_game)


def _synth_games(
    games: int,
    seed: int,
    half_minutes: float,
    make: Callable[[np.random.SeedSequence, str, float], list[Half]],
) -> Iterator[Half]:
    root = np.random.SeedSequence(seed)
    plan_seed, *game_seeds = root.spawn(games + 1)
    splits = _split_plan(games, np.random.default_rng(plan_seed))
    names: set[str] = set()
    for i, (gs, split) in enumerate(zip(game_seeds, splits, strict=True)):
        halves = make(gs, split, half_minutes)
        if halves[0].game in names:  # vanishingly rare; keep names unique and deterministic
            for h in halves:
                h.game = f"{h.game} ({i})"
        names.add(halves[0].game)
        yield from halves


def synthesize(
    out: str,
    *,
    games: int = 20,
    seed: int = 0,
    half_minutes: float = 45.0,
    labels: str = "v1",
    dtype: str = DEFAULT_DTYPE,
    overwrite: bool = False,
    endpoint: str | None = None,
    progress: bool = False,
) -> Manifest:
    """Write ``games`` synthetic games (label set ``labels``: v1 or v2) to a feature table at
    ``out`` stored as ``dtype`` (atomic, a bar of halves on stderr with ``progress``); return
    its manifest. A v1 float32 table is the same (same fingerprint) as before label sets."""
    check_dtype(dtype)
    halves = synth_games(games, seed, half_minutes, labels)
    generator = "avspot.datasets.synth" if labels == "v1" else "avspot.datasets.synth_v2"
    return write_table(
        bar(halves, total=2 * games, desc="synth", enabled=progress, unit="half"),
        out,
        source="synthetic",
        seed=seed,
        overwrite=overwrite,
        endpoint=endpoint,
        dtype=dtype,
        params={
            "generator": generator,
            "games": games,
            "half_minutes": half_minutes,
            "labels": labels,
            "dtype": dtype,
        },
    )


__all__ = ["SPLITS", "synth_game", "synth_games", "synthesize"]

"""Synthetic SoccerNet-v2-shaped games: the 17 classes at SoccerNet-v2's rates, some not shown.

The broadcast model of ``datasets/broadcast.py`` (Markov camera shots, latent sound channels, fixed
random 512-d bases, AR(1) and white noise, 2 frames/s), with five more shot types (set piece,
corner flag, touchline, goal mouth, centre circle) and three more sound channels (groan, hush,
ball strike) from their own fixed bases. Event counts per class are Poisson at
``labels.V2_EVENTS_PER_GAME`` (SoccerNet-v2's approximate per-class rates) scaled by the half's
regular minutes / 45, placed uniformly in the half (so episodes overlap, as they do at one event
every 25 s). An event is "not shown" with ``labels.V2_NOT_SHOWN_SHARE`` (an assumption): the
broadcast then shows a replay, close-up or the crowd instead of its shots, and only its sound
remains.

Which modality carries which class (the other modality has at most a shared, ambiguous cue):

- video: Kick-off (centre circle), Throw-in (touchline), Corner (corner flag, then set piece),
  Substitution (bench), Yellow card (referee close-up), Red card (referee, then the player's long
  walk off), Yellow->red card (two referee close-ups, the walk off), Clearance (goal mouth, then
  wide; its ball strike is also in goal kicks), Offside (touchline flag and a replay; whistle).
- audio: Goal (roar sustained 12-30 s), Shots on target (roar of 1-4 s; the same close-ups and
  replays as a goal), Shots off target (groan; goal mouth and replay like a clearance), Penalty
  (a long hush, then roar), Foul (whistle and boos), Direct free-kick (hush, then the strike; set
  piece like an indirect one), Indirect free-kick (whistle, then the strike), Ball out of play
  (the commentary drops; a cut to a close-up).

So each modality alone confuses look-alike pairs that the other tells apart, and "not shown"
events of video classes leave a model only their sound: fusion matters.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from avspot.datasets import broadcast as B
from avspot.datasets.halves import Event, Half
from avspot.datasets.labels import (
    FPS,
    V2,
    V2_EVENTS_PER_GAME,
    V2_NOT_SHOWN_SHARE,
    position_to_frame,
)

BASIS_SEED_V2 = 20_210_419  # the extra shot and sound directions (v1's stay as they are)
SETPIECE, CORNER_FLAG, TOUCHLINE, GOALMOUTH, CENTRE = range(6, 11)
GROAN, HUSH, STRIKE = range(5, 8)

Rng = np.random.Generator
_BASES_V2: B._Bases | None = None


def _v2_bases() -> B._Bases:
    """v1's bases plus five shot types and three sound channels drawn from their own seed."""
    global _BASES_V2
    if _BASES_V2 is None:
        b = B._bases()
        g = np.random.default_rng(BASIS_SEED_V2).standard_normal
        wide, close = B._unit_rows(b.shot[[B.WIDE, B.CLOSE]])
        extra = np.stack(
            [
                0.6 * wide + g(B.DIM),  # set piece: a static wide view, players lined up
                g(B.DIM),  # corner flag
                0.5 * close + g(B.DIM),  # touchline: the thrower, the linesman's flag
                0.5 * wide + g(B.DIM),  # goal mouth
                0.7 * wide + g(B.DIM),  # centre circle
            ]
        )
        _BASES_V2 = B._Bases(
            shot=np.concatenate([b.shot, B._unit_rows(extra) * 1.6]),
            shot_var=b.shot_var,
            video_ar=b.video_ar,
            sound=np.concatenate([b.sound, B._unit_rows(g((3, B.DIM)))]),
            audio_ar=b.audio_ar,
            stadium=b.stadium,
        )
    return _BASES_V2


def _before(t: int, seconds: float) -> int:
    return t - int(FPS * seconds)


# ---- video classes ----------------------------------------------------------------------------


def _kick_off(rng: Rng, t: int) -> B._Episode:
    lead = B._u(rng, 2, 5)
    whistle = (B.WHISTLE, lead, B._u(rng, 1.0, 2.0), 0.5, 0.5)
    return B._Episode(
        _before(t, lead), [(CENTRE, lead + B._u(rng, 1, 3)), (B.WIDE, 1.0)], [whistle]
    )


def _throw_in(rng: Rng, t: int) -> B._Episode:
    return B._Episode(_before(t, B._u(rng, 1, 3)), [(TOUCHLINE, B._u(rng, 2, 5))], [])


def _corner(rng: Rng, t: int) -> B._Episode:
    lead = B._u(rng, 3, 7)
    shots = [(CORNER_FLAG, lead), (SETPIECE, B._u(rng, 1, 3))]
    return B._Episode(
        _before(t, lead), shots, [(B.EXCITEMENT, lead, B._u(rng, 0.5, 1.0), 3.0, 2.0)]
    )


def _sent_off(rng: Rng, t: int, second_yellow: bool) -> B._Episode:
    foul = -B._u(rng, 8, 30)
    shots = [(B.WIDE, -foul - 8 if -foul > 12 else 1.0), (B.CLOSE, B._u(rng, 2, 4))]
    if second_yellow:
        shots += [(B.REF, B._u(rng, 2, 4)), (B.CLOSE, B._u(rng, 2, 3)), (B.REF, B._u(rng, 2, 4))]
    else:
        shots += [(B.REF, B._u(rng, 3, 7))]
    shots += [(B.CLOSE, B._u(rng, 8, 15)), (B.BENCH, B._u(rng, 2, 4))]  # the long walk off
    sounds = [
        (B.WHISTLE, 0.0, B._u(rng, 1.5, 2.5), 0.5, 0.5),
        (B.BOOS, B._u(rng, 4, 10), B._u(rng, 1.0, 1.8), B._u(rng, 5, 12), 3.0),
    ]
    return B._Episode(t + int(FPS * foul), shots, sounds)


def _red(rng: Rng, t: int) -> B._Episode:
    return _sent_off(rng, t, second_yellow=False)


def _yellow_red(rng: Rng, t: int) -> B._Episode:
    return _sent_off(rng, t, second_yellow=True)


def _clearance(rng: Rng, t: int) -> B._Episode:
    lead = B._u(rng, 1, 3)
    shots = [(GOALMOUTH, lead + B._u(rng, 0.5, 1.5)), (B.WIDE, B._u(rng, 1, 3))]
    return B._Episode(_before(t, lead), shots, [(STRIKE, lead, B._u(rng, 0.8, 1.3), 0.5, 0.5)])


def _offside(rng: Rng, t: int) -> B._Episode:
    shots = [(B.WIDE, B._u(rng, 0.5, 2)), (TOUCHLINE, B._u(rng, 1, 2)), (B.REPLAY, B._u(rng, 4, 8))]
    return B._Episode(t, shots, [(B.WHISTLE, 0.0, B._u(rng, 1.5, 2.5), 0.5, 0.5)])


# ---- audio classes ----------------------------------------------------------------------------


def _shot_off_target(rng: Rng, t: int) -> B._Episode:
    shots = [(GOALMOUTH, B._u(rng, 1, 3))]
    if rng.random() < 0.5:
        shots.append((B.REPLAY, B._u(rng, 3, 6)))
    onset = B._u(rng, 0, 1.5)
    sounds = [
        (GROAN, onset, B._u(rng, 1.5, 2.5), B._u(rng, 1.5, 4), 2.0),
        (B.EXCITEMENT, 0.0, B._u(rng, 0.8, 1.5), B._u(rng, 1, 3), 1.5),
    ]
    return B._Episode(t, shots, sounds)


def _penalty(rng: Rng, t: int) -> B._Episode:
    lead = B._u(rng, 10, 20)  # the run-up is long and quiet
    shots = [(B.REF, B._u(rng, 2, 4)), (B.CLOSE, B._u(rng, 3, 6)), (GOALMOUTH, lead)]
    sounds = [
        (HUSH, 0.0, B._u(rng, 1.5, 2.5), lead - 1.0, 1.0),
        (B.ROAR, lead + B._u(rng, 0, 1), B._u(rng, 1.5, 3.0), B._u(rng, 3, 10), 3.0),
    ]
    return B._Episode(_before(t, lead), shots, sounds)


def _free_kick(rng: Rng, t: int, direct: bool) -> B._Episode:
    lead = B._u(rng, 4, 10) if direct else B._u(rng, 1, 4)
    shots = [(SETPIECE, lead), (B.WIDE, B._u(rng, 1, 3))]
    strike = (STRIKE, lead, B._u(rng, 1.0, 1.6), 0.5, 0.5)
    if direct:  # the crowd holds its breath, then reacts to the strike at goal
        sounds = [
            (HUSH, 0.0, B._u(rng, 1.0, 1.8), lead - 0.5, 0.8),
            strike,
            (B.EXCITEMENT, lead, B._u(rng, 0.8, 1.5), B._u(rng, 1, 3), 1.5),
        ]
    else:
        sounds = [(B.WHISTLE, 0.0, B._u(rng, 0.8, 1.5), 0.5, 0.5), strike]
    return B._Episode(_before(t, lead), shots, sounds)


def _direct(rng: Rng, t: int) -> B._Episode:
    return _free_kick(rng, t, direct=True)


def _indirect(rng: Rng, t: int) -> B._Episode:
    return _free_kick(rng, t, direct=False)


def _ball_out(rng: Rng, t: int) -> B._Episode:
    shots = [(B.CLOSE, B._u(rng, 1.5, 4))] if rng.random() < 0.6 else []
    return B._Episode(t, shots, [(B.EXCITEMENT, 0.0, -B._u(rng, 0.8, 1.5), B._u(rng, 3, 8), 2.0)])


# ---- distractors (look-alikes without an event) ----------------------------------------------


def _goal_kick(rng: Rng, t: int) -> B._Episode:
    return B._Episode(
        t, [(GOALMOUTH, B._u(rng, 2, 4))], [(STRIKE, 1.5, B._u(rng, 0.8, 1.3), 0.5, 0.5)]
    )


def _tension(rng: Rng, t: int) -> B._Episode:
    return B._Episode(t, [], [(HUSH, 0.0, B._u(rng, 0.8, 1.5), B._u(rng, 2, 5), 1.0)])


MAKERS: dict[str, Callable[[Rng, int], B._Episode]] = {
    "Penalty": _penalty,
    "Kick-off": _kick_off,
    "Goal": B._goal,
    "Substitution": B._sub,
    "Offside": _offside,
    "Shots on target": B._shot_on_target,
    "Shots off target": _shot_off_target,
    "Clearance": _clearance,
    "Ball out of play": _ball_out,
    "Throw-in": _throw_in,
    "Foul": B._foul,
    "Indirect free-kick": _indirect,
    "Direct free-kick": _direct,
    "Corner": _corner,
    "Yellow card": B._card,
    "Red card": _red,
    "Yellow->red card": _yellow_red,
}
VIDEO_CLASSES: tuple[str, ...] = (
    "Kick-off",
    "Throw-in",
    "Corner",
    "Substitution",
    "Yellow card",
    "Red card",
    "Yellow->red card",
    "Clearance",
    "Offside",
)
AUDIO_CLASSES: tuple[str, ...] = tuple(c for c in V2.classes if c not in VIDEO_CLASSES)
_DISTRACTORS = (
    (_goal_kick, 8.0),
    (B._coach, 2.5),
    (B._applause, 3.0),
    (B._near_miss, 5.0),
    (_tension, 2.0),
)
_OFF_SCREEN = (B.REPLAY, B.CLOSE, B.CROWD)  # what the broadcast shows while an action is not shown


def _not_shown(rng: Rng, t: int, ep: B._Episode) -> B._Episode:
    """The episode's sound over other pictures: a replay, a close-up or the crowd."""
    shot = _OFF_SCREEN[int(rng.integers(len(_OFF_SCREEN)))]
    start = _before(t, B._u(rng, 1, 4))
    shift = (ep.start - start) / FPS  # keep every sound at its time
    sounds = [(ch, onset + shift, amp, sus, dec) for ch, onset, amp, sus, dec in ep.sounds]
    return B._Episode(start, [(shot, B._u(rng, 5, 10))], sounds)


def _plan_half(rng: Rng, n: int, half_minutes: float) -> tuple[list[Event], list[B._Episode]]:
    scale = half_minutes / 45.0 / 2.0  # the per-game rates cover two 45-min halves
    margin = min(20.0, 0.1 * n / FPS)  # seconds kept free at the half's edges
    events: list[Event] = []
    episodes: list[B._Episode] = []
    for cls in V2.classes:
        for _ in range(int(rng.poisson(V2_EVENTS_PER_GAME[cls] * scale))):
            ms = int(1000 * rng.uniform(margin, n / FPS - margin))
            frame = position_to_frame(ms)
            shown = rng.random() >= V2_NOT_SHOWN_SHARE[cls]
            ep = MAKERS[cls](rng, frame)
            episodes.append(ep if shown else _not_shown(rng, frame, ep))
            events.append(Event(frame, cls, cls, ms, "visible" if shown else "not shown"))
    for maker, per_45 in _DISTRACTORS:
        for _ in range(int(rng.poisson(per_45 * n / FPS / 60.0 / 45.0))):
            episodes.append(maker(rng, int(FPS * rng.uniform(0, n / FPS))))
    events.sort(key=lambda e: (e.frame, e.raw_label, e.position_ms))
    return events, episodes


def synth_game_v2(
    seed: np.random.SeedSequence | int, split: str, half_minutes: float = 45.0
) -> list[Half]:
    """Both halves of one synthetic SoccerNet-v2 game (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    lengths = [int(FPS * round(60 * half_minutes + rng.uniform(0, 240))) for _ in (1, 2)]
    plans = [_plan_half(rng, n, half_minutes) for n in lengths]
    goals = sum(1 for events, _ in plans for e in events if e.label == "Goal")
    home = int(rng.binomial(goals, 0.55))
    name = B._game_name(rng, home, goals - home)
    b = _v2_bases()
    stadium = ((rng.standard_normal(8) * 0.3) @ b.stadium).astype(np.float32)  # (512,)
    halves = []
    for half, (n, (events, episodes)) in enumerate(zip(lengths, plans, strict=True), start=1):
        video, audio = B._half_features(rng, n, episodes, stadium, b)
        halves.append(Half(name, half, split, FPS, video, audio, events, label_set="v2"))
    return halves

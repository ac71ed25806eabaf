"""Ingest a SoccerNet v1 folder tree (features + Labels.json) into a feature table.

Input: ``<root>/<league>/<season>/<game>/`` with ``{1,2}_<video>.npy`` (N, 512),
``{1,2}_<audio>.npy`` (N', 512) and ``Labels.json``. Splits come from the shipped official
SoccerNet lists, a JSON file ``{"train": [...], "valid": [...], "test": [...]}`` of game paths
relative to the root, or ``"dirs"`` (``<root>/<split>/<league>/<season>/<game>/``).

Everything cheap (labels, file presence, shapes from .npy headers) is checked for every game
before any feature is loaded, so most bad input fails in seconds; the table is written
atomically, so a failure later (NaN features) leaves nothing behind either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from avspot.datasets.errors import DataError, one_line
from avspot.datasets.halves import SPLITS, Event, Half
from avspot.datasets.labels import (
    FPS,
    format_game_time,
    label_to_class,
    parse_game_time,
    time_to_frame,
)
from avspot.datasets.layout import FEATURE_DIM, LABELS_FILE, official_splits
from avspot.datasets.manifest import Manifest
from avspot.datasets.progress import progress as bar
from avspot.datasets.table import write_table


@dataclass
class _Game:
    key: str  # league/season/game
    path: str  # folder on disk
    split: str


def _find_games(base: str) -> list[str]:
    """``league/season/game`` keys of the game folders (three levels deep) under ``base``."""
    keys = []
    for league in sorted(os.listdir(base)):
        lp = os.path.join(base, league)
        if not os.path.isdir(lp) or league.startswith("."):
            continue
        for season in sorted(os.listdir(lp)):
            sp = os.path.join(lp, season)
            if not os.path.isdir(sp):
                continue
            for game in sorted(os.listdir(sp)):
                if os.path.isdir(os.path.join(sp, game)):
                    keys.append(f"{league}/{season}/{game}")
    return keys


def _plan_games(root: str, splits: str) -> list[_Game]:
    if splits == "dirs":
        games = []
        for split in SPLITS:
            base = os.path.join(root, split)
            if os.path.isdir(base):
                games += [_Game(k, os.path.join(base, k), split) for k in _find_games(base)]
        if not games:
            raise DataError(
                f"{root}: no games under {root}/{{train,valid,test}}/<league>/<season>/<game> (--splits dirs)"
            )
        return games
    if splits == "official":
        lists = official_splits()
        where = {k: s for s, keys in lists.items() for k in keys}
        found = _find_games(root)
        if not found:
            raise DataError(f"{root}: no game folders <league>/<season>/<game> found")
        unknown = [k for k in found if k not in where]
        if unknown:
            raise DataError(
                f"{root}: {len(unknown)} game(s) are not in the official SoccerNet splits, e.g. "
                f'{unknown[0]!r}; pass --splits FILE.json ({{"train": [...], ...}}) or --splits dirs'
            )
        return [_Game(k, os.path.join(root, k), where[k]) for k in found]
    # a JSON split file
    if not os.path.isfile(splits):
        raise DataError(
            f"--splits {splits!r}: expected 'official', 'dirs' or an existing JSON file"
        )
    try:
        with open(splits) as f:
            spec = json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"{splits}: cannot read split file: {one_line(exc)}") from None
    if not isinstance(spec, dict) or not all(isinstance(v, list) for v in spec.values()):
        raise DataError(f'{splits}: expected {{"train": [...], "valid": [...], "test": [...]}}')
    bad = [s for s in spec if s not in SPLITS]
    if bad:
        raise DataError(f"{splits}: unknown split {bad[0]!r} (expected {', '.join(SPLITS)})")
    games, seen = [], {}
    for split in SPLITS:
        for key in spec.get(split, []):
            key = str(key).strip("/")
            if key in seen:
                raise DataError(f"{splits}: game {key!r} is in both {seen[key]!r} and {split!r}")
            seen[key] = split
            path = os.path.join(root, key)
            if not os.path.isdir(path):
                raise DataError(f"{splits}: game {key!r} not found under {root}")
            games.append(_Game(key, path, split))
    if not games:
        raise DataError(f"{splits}: lists no games")
    return games


def _npy_shape(path: str, game: str) -> tuple[int, ...]:
    if not os.path.isfile(path):
        raise DataError(f"game {game!r}: missing feature file {os.path.basename(path)} ({path})")
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read .npy: {one_line(exc)}") from None
    return tuple(arr.shape)


def _read_labels(g: _Game) -> list[tuple[int, int, str]]:
    """(half, seconds, raw label) of each annotation in a game's Labels.json."""
    path = os.path.join(g.path, LABELS_FILE)
    if not os.path.isfile(path):
        raise DataError(f"game {g.key!r}: missing {LABELS_FILE} ({path})")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: malformed {LABELS_FILE}: {one_line(exc)}") from None
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list):
        raise DataError(f'{path}: malformed {LABELS_FILE}: expected {{"annotations": [...]}}')
    out = []
    for i, a in enumerate(anns):
        if not isinstance(a, dict) or "gameTime" not in a or "label" not in a:
            raise DataError(f"{path}: annotation {i} needs 'gameTime' and 'label'")
        try:
            half, seconds = parse_game_time(a["gameTime"])
            label_to_class(a["label"])
        except DataError as exc:
            raise DataError(f"{path}: annotation {i}: {exc}") from None
        out.append((half, seconds, str(a["label"])))
    return out


@dataclass
class _Checked:
    game: _Game
    labels: list[tuple[int, int, str]]
    frames: dict[int, int]  # half -> frames kept (the shorter of audio and video)


def _check_game(g: _Game, video: str, audio: str, max_length_diff: int) -> _Checked:
    labels = _read_labels(g)
    frames: dict[int, int] = {}
    for half in (1, 2):
        shapes = {}
        for stem in (video, audio):
            path = os.path.join(g.path, f"{half}_{stem}.npy")
            shape = _npy_shape(path, g.key)
            if len(shape) != 2 or shape[1] != FEATURE_DIM or shape[0] == 0:
                raise DataError(f"{path}: features of shape {shape}, expected (N, {FEATURE_DIM})")
            shapes[stem] = shape[0]
        nv, na = shapes[video], shapes[audio]
        if abs(nv - na) > max_length_diff:
            raise DataError(
                f"game {g.key!r} half {half}: video has {nv} frames, audio {na}; they differ by "
                f"more than --max-length-diff {max_length_diff}"
            )
        frames[half] = min(nv, na)
    for half, seconds, raw in labels:
        frame = time_to_frame(seconds)
        if frame >= frames[half]:
            raise DataError(
                f"{os.path.join(g.path, LABELS_FILE)}: {raw} at gameTime {format_game_time(half, seconds)!r} "
                f"is beyond half {half}'s {frames[half]} frames ({frames[half] / FPS / 60:.1f} min)"
            )
    return _Checked(g, labels, frames)


def _load(path: str, n: int) -> np.ndarray:
    x = np.load(path)
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise DataError(f"{path}: features of dtype {x.dtype}, expected floats")
    x = np.ascontiguousarray(x[:n], dtype=np.float32)  # (n, 512), truncated to the shorter stream
    finite = np.isfinite(x)
    if not finite.all():
        frame = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise DataError(f"{path}: NaN or Inf features (first at frame {frame})")
    return x


def _halves(checked: list[_Checked], video: str, audio: str) -> Iterator[Half]:
    for c in checked:
        for half in (1, 2):
            n = c.frames[half]
            events = [
                Event(time_to_frame(s), label_to_class(raw), raw, s * 1000)
                for h, s, raw in c.labels
                if h == half
            ]
            events.sort(key=lambda e: (e.frame, e.raw_label))
            yield Half(
                game=c.game.key,
                half=half,
                split=c.game.split,
                fps=FPS,
                video=_load(os.path.join(c.game.path, f"{half}_{video}.npy"), n),
                audio=_load(os.path.join(c.game.path, f"{half}_{audio}.npy"), n),
                events=events,
            )


def ingest(
    root: str,
    out: str,
    *,
    video_features: str = "ResNET_PCA512",
    audio_features: str = "VGGish",
    splits: str = "official",
    max_length_diff: int = 5,
    overwrite: bool = False,
    endpoint: str | None = None,
    progress: bool = False,
) -> Manifest:
    """Turn a SoccerNet v1 tree into a feature table at ``out`` (atomic); return its manifest.

    ``progress`` shows a bar of halves written on stderr (when it is a terminal).
    """
    if not os.path.isdir(root):
        raise DataError(f"--soccernet {root!r}: not a directory")
    if max_length_diff < 0:
        raise DataError(f"--max-length-diff {max_length_diff}: must be >= 0")
    games = sorted(_plan_games(root, splits), key=lambda g: (SPLITS.index(g.split), g.key))
    checked = [_check_game(g, video_features, audio_features, max_length_diff) for g in games]
    halves = _halves(checked, video_features, audio_features)
    return write_table(
        bar(halves, total=2 * len(checked), desc="ingest", enabled=progress, unit="half"),
        out,
        source=f"soccernet:{os.path.abspath(root)}",
        seed=None,
        overwrite=overwrite,
        endpoint=endpoint,
        params={
            "video_features": video_features,
            "audio_features": audio_features,
            "splits": splits,
            "max_length_diff": max_length_diff,
        },
    )

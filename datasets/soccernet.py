"""Ingest a SoccerNet folder tree (features + Labels.json / Labels-v2.json) into a feature table.

Input: ``<root>/<league>/<season>/<game>/`` with ``{1,2}_<video>.npy`` (N, Dv),
``{1,2}_<audio>.npy`` (N', Da) (or no audio at all: ``audio_features=None``) and the label
set's file: ``Labels.json`` (v1: gameTime, label) or ``Labels-v2.json`` (v2: gameTime, label,
position in ms, team, visibility). Widths are taken from the files (ResNET_PCA512 512, ResNET
2048, baidu_soccer_embeddings 8576, ...), one per modality per table. Splits come from the
shipped official SoccerNet lists (train 300 / valid 100 / test 100 / challenge 50), a JSON file
``{"train": [...], "valid": [...], "test": [...], "challenge": [...]}`` of game paths relative
to the root, or ``"dirs"`` (``<root>/<split>/<league>/<season>/<game>/``). Challenge games have
no labels: their halves get no events (a label file there is not read).

Event frames follow the official evaluator: v2 ``int(fps * (position / 1000))`` (``position``
in ms, a string in the official files; gameTime seconds when it is missing), v1
``int(fps * seconds)`` of the gameTime.

Everything cheap (labels, file presence, shapes from .npy headers) is checked for every game
before any feature is loaded, so most bad input fails in seconds; the table is written
atomically, so a failure later (NaN features) leaves nothing behind either.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from avspot.datasets import halves as H
from avspot.datasets.errors import DataError, one_line
from avspot.datasets.halves import SPLITS, Event, Half
from avspot.datasets.labels import (
    DEFAULT_LABEL_SET,
    FPS,
    HALVES,
    VISIBILITIES,
    LabelSet,
    get_label_set,
    parse_game_time,
    position_to_frame,
    time_to_frame,
)
from avspot.datasets.layout import official_splits
from avspot.datasets.manifest import Manifest
from avspot.datasets.progress import progress as bar
from avspot.datasets.rows import as_stored
from avspot.datasets.table import write_table

NO_AUDIO = "none"  # --audio-features none: a table without audio (zero-width audio arrays)


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
                f"{root}: no games under {root}/{{{','.join(SPLITS)}}}/<league>/<season>/<game> "
                "(split source: dirs)",
                field="splits",
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
                f'{unknown[0]!r}; give the splits as a JSON file ({{"train": [...], ...}}) or as '
                "dirs",
                field="splits",
            )
        return [_Game(k, os.path.join(root, k), where[k]) for k in found]
    # a JSON split file
    if not os.path.isfile(splits):
        raise DataError(
            f"splits {splits!r}: expected 'official', 'dirs' or an existing JSON file",
            field="splits",
        )
    try:
        with open(splits) as f:
            spec = json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"{splits}: cannot read split file: {one_line(exc)}") from None
    if not isinstance(spec, dict) or not all(isinstance(v, list) for v in spec.values()):
        raise DataError(
            f'{splits}: expected {{"train": [...], "valid": [...], "test": [...], '
            '"challenge": [...]}}'
        )
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


@dataclass
class _Label:
    half: int
    position_ms: int  # from the half's start
    frame: int
    raw: str
    visibility: str
    game_time: str


def _position_ms(a: dict[str, Any], seconds: int) -> int:
    """``position`` (ms, a string in the official Labels-v2.json) or the gameTime seconds."""
    if "position" not in a:
        return seconds * 1000
    try:
        ms = int(str(a["position"]).strip())
    except ValueError:
        raise DataError(f"malformed position {a['position']!r} (expected milliseconds)") from None
    if ms < 0:
        raise DataError(f"position {ms} ms is negative")
    return ms


def _read_labels(g: _Game, ls: LabelSet, fps: float) -> list[_Label]:
    """The annotations of a game's label file (none for an unlabelled split: challenge)."""
    if g.split in H.UNLABELLED_SPLITS:
        return []
    name = ls.labels_file
    path = os.path.join(g.path, name)
    if not os.path.isfile(path):
        raise DataError(f"game {g.key!r}: missing {name} ({path})")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: malformed {name}: {one_line(exc)}") from None
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list):
        raise DataError(f'{path}: malformed {name}: expected {{"annotations": [...]}}')
    out = []
    for i, a in enumerate(anns):
        if not isinstance(a, dict) or "gameTime" not in a or "label" not in a:
            raise DataError(f"{path}: annotation {i} needs 'gameTime' and 'label'")
        try:
            half, seconds = parse_game_time(a["gameTime"])
            ls.class_of(a["label"])
            if ls.name == DEFAULT_LABEL_SET:  # v1: second precision, as the seed read it
                ms, frame = seconds * 1000, time_to_frame(seconds, fps)
            else:
                ms = _position_ms(a, seconds)
                frame = position_to_frame(ms, fps)
            visibility = str(a.get("visibility", "visible"))
            if visibility not in VISIBILITIES:
                raise DataError(
                    f"visibility {visibility!r} (expected one of "
                    f"{', '.join(map(repr, VISIBILITIES))})"
                )
        except DataError as exc:
            raise DataError(f"{path}: annotation {i}: {exc}") from None
        out.append(_Label(half, ms, frame, str(a["label"]), visibility, str(a["gameTime"])))
    return out


@dataclass
class _Checked:
    game: _Game
    labels: list[_Label]
    frames: dict[int, int]  # half -> frames kept (the shorter of audio and video)
    widths: dict[int, dict[str, int]]  # half -> {"video": Dv, "audio": Da}


def _check_game(
    g: _Game, video: str, audio: str | None, max_length_diff: int, fps: float, ls: LabelSet
) -> _Checked:
    labels = _read_labels(g, ls, fps)
    frames: dict[int, int] = {}
    widths: dict[int, dict[str, int]] = {}
    for half in HALVES:
        shapes = {}
        for modality, stem in (("video", video), ("audio", audio)):
            if stem is None:
                continue
            path = os.path.join(g.path, f"{half}_{stem}.npy")
            shape = _npy_shape(path, g.key)
            if len(shape) != 2 or shape[1] == 0 or shape[0] == 0:
                raise DataError(f"{path}: features of shape {shape}, expected (N, D)")
            shapes[modality] = shape
        nv = shapes["video"][0]
        widths[half] = {"video": shapes["video"][1], "audio": 0}
        if audio is None:
            frames[half] = nv
            continue
        na = shapes["audio"][0]
        widths[half]["audio"] = shapes["audio"][1]
        if abs(nv - na) > max_length_diff:
            raise DataError(
                f"game {g.key!r} half {half}: video has {nv} frames, audio {na}; they differ by "
                f"more than the allowed {max_length_diff} (max_length_diff)"
            )
        frames[half] = min(nv, na)
    for lab in labels:
        n = frames[lab.half]
        if lab.frame >= n:
            raise DataError(
                f"{os.path.join(g.path, ls.labels_file)}: {lab.raw} at gameTime "
                f"{lab.game_time!r} is beyond half {lab.half}'s {n} frames "
                f"({n / fps / 60:.1f} min)"
            )
    return _Checked(g, labels, frames, widths)


def _check_widths(checked: list[_Checked], video: str, audio: str | None) -> None:
    """One width per modality across every half of the table, checked from the .npy headers."""
    first: dict[str, tuple[int, str]] = {}
    for c in checked:
        for half, w in c.widths.items():
            for modality, stem in (("video", video), ("audio", audio)):
                if stem is None:
                    continue
                if modality not in first:
                    first[modality] = (w[modality], c.game.key)
                elif w[modality] != first[modality][0]:
                    width, game = first[modality]
                    raise DataError(
                        f"game {c.game.key!r} half {half}: {half}_{stem}.npy has width "
                        f"{w[modality]}, the table's {modality} width is {width} (from game "
                        f"{game!r}); one width per modality per table"
                    )


def _load(path: str, n: int, dtype: str) -> np.ndarray:
    x = np.load(path, mmap_mode="r")
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise DataError(f"{path}: features of dtype {x.dtype}, expected floats")
    x = np.ascontiguousarray(x[:n], dtype=np.float32)  # (n, D), truncated to the shorter stream
    finite = np.isfinite(x)
    if not finite.all():
        frame = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise DataError(f"{path}: NaN or Inf features (first at frame {frame})")
    return as_stored(x, dtype, path, "feature")  # float16: refused when a value overflows


def _halves(
    checked: list[_Checked], video: str, audio: str | None, fps: float, ls: LabelSet, dtype: str
) -> Iterator[Half]:
    for c in checked:
        for half in HALVES:
            n = c.frames[half]
            events = [
                Event(lab.frame, ls.class_of(lab.raw), lab.raw, lab.position_ms, lab.visibility)
                for lab in c.labels
                if lab.half == half
            ]
            events.sort(key=lambda e: (e.frame, e.raw_label, e.position_ms))
            v = _load(os.path.join(c.game.path, f"{half}_{video}.npy"), n, dtype)
            a = (
                np.zeros((n, 0), v.dtype)
                if audio is None
                else _load(os.path.join(c.game.path, f"{half}_{audio}.npy"), n, dtype)
            )
            yield Half(c.game.key, half, c.game.split, fps, v, a, events, label_set=ls.name)


def ingest(
    root: str,
    out: str,
    *,
    labels: str = DEFAULT_LABEL_SET,
    video_features: str = "ResNET_PCA512",
    audio_features: str | None = "VGGish",
    splits: str = "official",
    max_length_diff: int = 5,
    fps: float = FPS,
    dtype: str = H.DEFAULT_DTYPE,
    overwrite: bool = False,
    endpoint: str | None = None,
    progress: bool = False,
) -> Manifest:
    """Turn a SoccerNet tree into a feature table at ``out`` (atomic); return its manifest.

    ``labels`` is the label set (v1 reads ``Labels.json``, v2 ``Labels-v2.json``);
    ``audio_features`` None (or ``"none"``) makes a table without audio; ``fps`` is the feature
    rate (SoccerNet 2, some Baidu releases 1); ``dtype`` the stored feature type (float32 or
    float16). ``progress`` shows a bar of halves written on stderr (when it is a terminal).
    """
    ls = get_label_set(labels, field="labels")
    H.check_dtype(dtype)
    if not isinstance(fps, int | float) or not math.isfinite(fps) or fps <= 0:
        raise DataError(f"fps {fps!r}: must be a positive number of frames per second", field="fps")
    audio = None if audio_features is None or audio_features.lower() == NO_AUDIO else audio_features
    if not os.path.isdir(root):
        raise DataError(f"soccernet {root!r}: not a directory", field="soccernet")
    if max_length_diff < 0:
        raise DataError(f"max_length_diff {max_length_diff}: must be >= 0", field="max_length_diff")
    fps = float(fps)
    games = sorted(_plan_games(root, splits), key=lambda g: (SPLITS.index(g.split), g.key))
    checked = [_check_game(g, video_features, audio, max_length_diff, fps, ls) for g in games]
    _check_widths(checked, video_features, audio)
    halves = _halves(checked, video_features, audio, fps, ls, dtype)
    source = "soccernet" if ls.name == DEFAULT_LABEL_SET else f"soccernet-{ls.name}"
    return write_table(
        bar(halves, total=2 * len(checked), desc="ingest", enabled=progress, unit="half"),
        out,
        source=f"{source}:{os.path.abspath(root)}",
        seed=None,
        overwrite=overwrite,
        endpoint=endpoint,
        dtype=dtype,
        params={
            "labels": ls.name,
            "video_features": video_features,
            "audio_features": audio if audio is not None else NO_AUDIO,
            "splits": splits,
            "max_length_diff": max_length_diff,
            "fps": fps,
            "dtype": dtype,
        },
    )

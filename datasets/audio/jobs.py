"""Which halves an audio extraction has to do: game folders and media files found, their
outputs, the video frame counts they align to, and which are done already (resuming).

See ``datasets.audio.extract`` for the layout of inputs and outputs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from avspot.datasets.audio.media import MEDIA_EXTENSIONS, media_segment
from avspot.datasets.errors import DataError

VIDEO_FEATURES = "ResNET_PCA512"
AUDIO_FEATURES = "VGGish"
FEATURE_DIM = 512
DEFAULT_BATCH_SIZE = 128  # chunks per forward pass (64 s of audio)
_HALF_FILE = re.compile(r"^([12])(?:_(?:224p|720p|HQ))?$")


def _half_candidates(half: str) -> list[str]:
    """Media names for a half in a game folder, most preferred first (trimmed before raw)."""
    names = [f"{half}.mkv", f"{half}_224p.mkv", f"{half}_720p.mkv"]
    names += [f"{half}{ext}" for ext in MEDIA_EXTENSIONS if ext != ".mkv"]
    return names + [f"{half}_HQ{ext}" for ext in (".mkv", ".mp4", ".ts")]


@dataclass
class HalfJob:
    """One half to extract: where its audio is, what to align to, where the output goes."""

    half: str  # "1", "2", or a media file's stem
    media: str
    start: float  # seconds into the media where the game starts (video.ini)
    duration: float | None
    out_npy: str
    video_npy: str | None = None
    video_frames: int | None = None


@dataclass
class GameJob:
    """A game's halves; ``key`` is its output folder relative to OUT ("" for loose files)."""

    key: str
    source: str
    halves: list[HalfJob] = field(default_factory=list)


def _game_key(folder: str) -> str:
    parts = [p for p in os.path.abspath(folder).split(os.sep) if p]
    return "/".join(parts[-3:])


def _game_media(folder: str) -> dict[str, str]:
    """``{half: media path}`` of the half media found in ``folder``."""
    found = {}
    for half in ("1", "2"):
        for name in _half_candidates(half):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                found[half] = path
                break
    return found


def _video_frames(path: str) -> int:
    try:
        shape = np.load(path, mmap_mode="r").shape
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read .npy: {' '.join(str(exc).split())}") from None
    if len(shape) != 2 or shape[0] == 0:
        raise DataError(f"{path}: video features of shape {shape}, expected (N, D)")
    return int(shape[0])


def _half_job(
    key: str, half: str, media: str, out_dir: str, video_root: str | None, video_stem: str
) -> HalfJob:
    seg = media_segment(media)  # reads video.ini (DataError now, not hours later)
    out_folder = os.path.join(out_dir, key) if key else out_dir
    name = f"{half}_{video_stem}.npy"
    candidates = [os.path.join(video_root, key, name)] if video_root else []
    candidates += [os.path.join(os.path.dirname(media), name), os.path.join(out_folder, name)]
    video = next((c for c in candidates if os.path.isfile(c)), None)
    return HalfJob(
        half=half,
        media=media,
        start=seg.start,
        duration=seg.duration,
        out_npy=os.path.join(out_folder, f"{half}_{AUDIO_FEATURES}.npy"),
        video_npy=video,
        video_frames=_video_frames(video) if video else None,
    )


def plan_games(
    inputs: Sequence[str],
    out_dir: str,
    *,
    video_features_root: str | None = None,
    video_features: str = VIDEO_FEATURES,
) -> list[GameJob]:
    """Resolve INPUTs into games and halves (checks paths and video.ini; decodes nothing)."""
    if isinstance(inputs, str):
        inputs = [inputs]
    if not inputs:
        raise DataError("extract-audio: no INPUT given (media files or game folders)")
    if video_features_root is not None and not os.path.isdir(video_features_root):
        raise DataError(
            f"video_features_root {video_features_root!r}: not a directory",
            field="video_features_root",
        )
    sources: list[tuple[str, str, str, str]] = []  # (key, half, media, source)
    for inp in inputs:
        if os.path.isfile(inp):
            stem = os.path.splitext(os.path.basename(inp))[0]
            m = _HALF_FILE.match(stem)
            if m:
                sources.append((_game_key(os.path.dirname(inp)), m.group(1), inp, inp))
            else:
                sources.append(("", stem, inp, inp))
        elif os.path.isdir(inp):
            folders = [inp] if _game_media(inp) else []
            if not folders:
                for root, dirs, _files in os.walk(inp):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    if _game_media(root):
                        folders.append(root)
            if not folders:
                raise DataError(
                    f"{inp}: no game folder with half media (1.mkv/2.mkv, 1_224p.mkv, 1.wav, "
                    "1_HQ.mkv + video.ini, ...) found"
                )
            for folder in folders:
                for half, media in _game_media(folder).items():
                    sources.append((_game_key(folder), half, media, folder))
        else:
            raise DataError(f"{inp}: no such file or directory")
    games: dict[str, GameJob] = {}
    seen: dict[tuple[str, str], str] = {}
    for key, half, media, source in sources:
        if (key, half) in seen:
            if os.path.abspath(seen[key, half]) == os.path.abspath(media):
                continue  # the same file named twice (a folder and its 1.mkv)
            raise DataError(
                f"{media}: writes the same output as {seen[key, half]} "
                f"({os.path.join(out_dir, key, f'{half}_{AUDIO_FEATURES}.npy')})"
            )
        seen[key, half] = media
        game = games.setdefault(key, GameJob(key=key, source=source))
        game.halves.append(
            _half_job(key, half, media, out_dir, video_features_root, video_features)
        )
    for game in games.values():
        game.halves.sort(key=lambda h: h.half)
    return list(games.values())


def is_complete(h: HalfJob) -> bool:
    """Whether ``h``'s output exists as float32 (N, 512) with the video's N when known."""
    if not os.path.isfile(h.out_npy):
        return False
    try:
        arr = np.load(h.out_npy, mmap_mode="r")
    except (OSError, ValueError):
        return False
    ok = arr.ndim == 2 and arr.shape[1] == FEATURE_DIM and arr.shape[0] > 0
    ok = ok and arr.dtype == np.float32
    return ok and (h.video_frames is None or arr.shape[0] == h.video_frames)

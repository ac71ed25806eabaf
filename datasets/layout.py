"""The SoccerNet v1 folder layout: file names and the official split lists.

``<root>/<league>/<season>/<game>/`` holds ``Labels.json``, ``{half}_<features>.npy`` (N, 512)
per half (video ``ResNET_PCA512``, audio ``VGGish``) and, for the videos, ``{half}.mkv``. The
official game lists (300 train / 100 valid / 100 test) ship with avspot; light to import (no
pyarrow), so that ``avspot evaluate`` starts fast.
"""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from pathlib import Path

from avspot.datasets.errors import DataError
from avspot.datasets.halves import SPLITS

LABELS_FILE = "Labels.json"
FEATURE_DIM = 512  # width of ResNET_PCA512 and VGGish features
OFFICIAL_SPLITS = ("train", "valid", "test", "challenge")


def official_games(split: str) -> list[str]:
    """Games (``league/season/game``) of an official SoccerNet v1 split: the lists shipped with
    avspot (train 300, valid 100, test 100); ``challenge`` from the ``SoccerNet`` pip package
    when it is installed. The one reader of the official lists."""
    if split not in OFFICIAL_SPLITS:
        raise DataError(f"split {split!r}: expected one of {', '.join(OFFICIAL_SPLITS)}")
    name = f"SoccerNetGames{split.capitalize()}.json"
    text = None
    shipped = Path(__file__).with_name("splits") / name
    if shipped.is_file():
        text = shipped.read_text()
    else:
        with contextlib.suppress(FileNotFoundError, ModuleNotFoundError, OSError):
            text = resources.files("SoccerNet").joinpath("data", name).read_text()
    if text is None:
        raise DataError(f"split {split!r}: the official game list {name} is not available")
    nested = json.loads(text)
    return [
        f"{league}/{season}/{game}"
        for league, seasons in nested.items()
        for season, games in seasons.items()
        for game in games
    ]


def official_splits() -> dict[str, list[str]]:
    """The official train / valid / test game lists (300/100/100)."""
    return {split: official_games(split) for split in SPLITS}

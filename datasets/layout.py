"""The SoccerNet folder layout: file names and the official split lists.

``<root>/<league>/<season>/<game>/`` holds ``Labels.json`` (v1) and/or ``Labels-v2.json``
(SoccerNet-v2), ``{half}_<features>.npy`` (N, D) per half (video ``ResNET_PCA512``, ``ResNET``,
``baidu_soccer_embeddings``, ...; audio ``VGGish``) and, for the videos, ``{half}.mkv``. The
official game lists ship with avspot: 300 train / 100 valid / 100 test (the same games for v1
and v2 spotting) and SoccerNet-v2's 50 challenge games (no labels). Light to import (no
pyarrow), so that ``avspot evaluate`` starts fast.
"""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from pathlib import Path

from avspot.datasets.errors import DataError
from avspot.datasets.halves import SPLITS

LABELS_FILE = "Labels.json"  # v1; a label set names its own file (LabelSet.labels_file)
FEATURE_DIM = 512  # width of ResNET_PCA512 and VGGish features (ingest takes any width)
OFFICIAL_SPLITS: tuple[str, ...] = SPLITS  # train, valid, test, challenge


def official_games(split: str) -> list[str]:
    """Games (``league/season/game``) of an official SoccerNet split: the lists shipped with
    avspot (train 300, valid 100, test 100, challenge 50; a list missing from the install is
    taken from the ``SoccerNet`` pip package when it is there). The one reader of the official
    lists."""
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
    """The official train / valid / test / challenge game lists (300/100/100/50)."""
    return {split: official_games(split) for split in SPLITS}

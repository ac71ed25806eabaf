"""Shared label vocabulary: SoccerNet v1 raw labels, the three classes, game-time parsing."""

from __future__ import annotations

import re

from avspot.datasets.errors import DataError

CLASSES: tuple[str, ...] = ("card", "subs", "soccer")
DISPLAY_NAMES: dict[str, str] = {"card": "cards", "subs": "substitutions", "soccer": "goals"}
NUM_OUTPUTS = 4  # logits: card, subs, soccer, background
BACKGROUND = 3  # index of the background output
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
RAW_LABELS: tuple[str, ...] = (
    "soccer-ball",
    "soccer-ball-own",
    "y-card",
    "r-card",
    "yr-card",
    "substitution-in",
)
FPS = 2.0  # SoccerNet v1 feature rate, frames per second

_GAME_TIME = re.compile(r"^\s*([12])\s*-\s*(\d{1,3}):([0-5]\d)\s*$")


def label_to_class(raw_label: str) -> str:
    """Map a SoccerNet v1 label to its class by substring, as the official evaluator does."""
    if raw_label not in RAW_LABELS:
        raise DataError(f"unknown label {raw_label!r} (expected one of {', '.join(RAW_LABELS)})")
    for name in CLASSES:
        if name in raw_label:
            return name
    raise AssertionError(raw_label)  # unreachable: every raw label contains a class name


def class_index(label: str) -> int:
    """Index of a class (card=0, subs=1, soccer=2) in the model outputs."""
    try:
        return CLASS_INDEX[label]
    except KeyError:
        raise DataError(f"unknown class {label!r} (expected one of {', '.join(CLASSES)})") from None


def parse_game_time(game_time: str) -> tuple[int, int]:
    """Parse SoccerNet's "2 - 35:21" into (half=2, seconds=2121); minutes may exceed 45."""
    m = _GAME_TIME.match(game_time) if isinstance(game_time, str) else None
    if m is None:
        raise DataError(f"malformed gameTime {game_time!r} (expected 'H - MM:SS' with H in 1, 2)")
    return int(m.group(1)), int(m.group(2)) * 60 + int(m.group(3))


def format_game_time(half: int, seconds: int) -> str:
    """Inverse of parse_game_time: (2, 2121) -> "2 - 35:21"."""
    return f"{half} - {seconds // 60:02d}:{seconds % 60:02d}"


def time_to_frame(seconds: float, fps: float = FPS) -> int:
    """Frame index of a time in the half, ``int(fps * seconds)`` as in the official evaluator."""
    return int(fps * seconds)

"""The one vocabulary: SoccerNet v1 raw labels, the three classes, outputs, game time.

Everything else (models, metrics, reports, plots) reads these names from here.
"""

from __future__ import annotations

import re

from avspot.datasets.errors import DataError

CLASSES: tuple[str, ...] = ("card", "subs", "soccer")
OUTPUTS: tuple[str, ...] = (*CLASSES, "background")  # model logits, in this order
NUM_OUTPUTS = len(OUTPUTS)
BACKGROUND = OUTPUTS.index("background")
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
DISPLAY_NAMES: dict[str, str] = {
    "card": "cards",
    "subs": "substitutions",
    "soccer": "goals",
    "background": "background",
}
RAW_LABELS: tuple[str, ...] = (
    "soccer-ball",
    "soccer-ball-own",
    "y-card",
    "r-card",
    "yr-card",
    "substitution-in",
)
FPS = 2.0  # SoccerNet v1 feature rate, frames per second (also the official evaluator's)

# "H - MM:SS": half 1 or 2, minutes may exceed 45 (stoppage time).
_GAME_TIME = re.compile(r"^\s*([12])\s*-\s*(\d{1,3}):([0-5]\d)\s*$")


def class_of_label(raw_label: str) -> int | None:
    """Class index of a label by substring in the official order card, subs, soccer (None: no
    class), exactly as the official evaluator maps labels."""
    for i, name in enumerate(CLASSES):
        if name in raw_label:
            return i
    return None


def label_to_class(raw_label: str) -> str:
    """Class name of a SoccerNet v1 label; DataError for a label outside the v1 vocabulary."""
    if raw_label not in RAW_LABELS:
        raise DataError(f"unknown label {raw_label!r} (expected one of {', '.join(RAW_LABELS)})")
    return CLASSES[class_of_label(raw_label)]  # every raw label contains a class name


def parse_game_time(game_time: str) -> tuple[int, int]:
    """Parse SoccerNet's "2 - 35:21" into (half=2, seconds=2121); minutes may exceed 45."""
    m = _GAME_TIME.match(game_time) if isinstance(game_time, str) else None
    if m is None:
        raise DataError(f"malformed gameTime {game_time!r} (expected 'H - MM:SS' with H in 1, 2)")
    return int(m.group(1)), int(m.group(2)) * 60 + int(m.group(3))


def format_game_time(half: int, seconds: int) -> str:
    """Inverse of parse_game_time: (2, 2121) -> "2 - 35:21"."""
    seconds = int(seconds)
    return f"{half} - {seconds // 60:02d}:{seconds % 60:02d}"


def time_to_frame(seconds: float, fps: float = FPS) -> int:
    """Frame index of a time in the half, ``int(fps * seconds)`` as in the official evaluator."""
    return int(fps * seconds)

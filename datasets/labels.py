"""The one vocabulary: label sets (SoccerNet v1's 3 classes, v2's 17), outputs, game time.

A label set is data: its class names in the official order, the raw label strings a
``Labels*.json`` file may hold and the class each maps to, display names, and the file name the
official evaluator reads. A table records its label set in the manifest; models, metrics,
reports and the served model take the class count and names from it (``get_label_set``).
Model outputs are the classes followed by ``background`` (chunk classification).

- ``v1`` (SoccerNet v1, ``Labels.json``): 6 raw labels mapped by substring to card, subs,
  soccer, exactly as the official evaluator does (``version=1``).
- ``v2`` (SoccerNet-v2, ``Labels-v2.json``): 17 classes in ``EVENT_DICTIONARY_V2`` order; the raw
  label is the class name. Events carry a visibility ("visible" / "not shown").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from avspot.datasets.errors import DataError

BACKGROUND_NAME = "background"
FPS = 2.0  # SoccerNet feature rate, frames per second (also the official evaluator's)
HALVES: tuple[int, ...] = (1, 2)  # a game's halves, in order
VISIBILITIES: tuple[str, ...] = ("visible", "not shown")  # SoccerNet-v2 event visibility


@dataclass(frozen=True)
class LabelSet:
    """One vocabulary: classes in the official order and how raw labels map onto them."""

    name: str  # v1 | v2: the official evaluator's version
    classes: tuple[str, ...]
    raw_labels: tuple[str, ...]  # every raw label string this set accepts
    labels_file: str  # the per-game label file (Labels.json | Labels-v2.json)
    display: dict[str, str] = field(default_factory=dict)  # class -> readable name
    by_substring: bool = False  # v1: a raw label's class is the first class name it contains

    @property
    def outputs(self) -> tuple[str, ...]:
        """Model logits in order: the classes, then background."""
        return (*self.classes, BACKGROUND_NAME)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_outputs(self) -> int:
        return len(self.classes) + 1

    @property
    def background(self) -> int:
        """Index of the background output."""
        return len(self.classes)

    @property
    def class_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def display_name(self, name: str) -> str:
        return self.display.get(name, name)

    def class_of(self, raw_label: str) -> str:
        """Class name of a raw label; DataError for a label outside this set."""
        if raw_label not in self.raw_labels:
            raise DataError(
                f"unknown label {raw_label!r} "
                f"(label set {self.name}: expected one of {', '.join(self.raw_labels)})"
            )
        if not self.by_substring:
            return raw_label
        return next(c for c in self.classes if c in raw_label)  # every raw label contains one


V1 = LabelSet(
    name="v1",
    classes=("card", "subs", "soccer"),
    raw_labels=(
        "soccer-ball",
        "soccer-ball-own",
        "y-card",
        "r-card",
        "yr-card",
        "substitution-in",
    ),
    labels_file="Labels.json",
    display={"card": "cards", "subs": "substitutions", "soccer": "goals"},
    by_substring=True,
)

_V2_CLASSES = (
    "Penalty",
    "Kick-off",
    "Goal",
    "Substitution",
    "Offside",
    "Shots on target",
    "Shots off target",
    "Clearance",
    "Ball out of play",
    "Throw-in",
    "Foul",
    "Indirect free-kick",
    "Direct free-kick",
    "Corner",
    "Yellow card",
    "Red card",
    "Yellow->red card",
)
V2 = LabelSet(name="v2", classes=_V2_CLASSES, raw_labels=_V2_CLASSES, labels_file="Labels-v2.json")

# SoccerNet-v2 action annotations per class over its 500 games: APPROXIMATE figures read off the
# class histogram of the SoccerNet-v2 paper (Deliege et al., "SoccerNet-v2: A Dataset and
# Benchmarks for Holistic Understanding of Broadcast Soccer Videos", CVPR Workshops 2021,
# arXiv 2011.13367, Fig. 2). Their sum (110.4k) agrees with the 110,458 annotated actions, about
# 221 per game or one every 25 s, that descriptions of the dataset report. ``data synth --labels
# v2`` draws events at these rates (per 90 regular minutes: count / 500).
V2_ANNOTATIONS_500_GAMES: dict[str, int] = {
    "Penalty": 173,
    "Kick-off": 2_600,
    "Goal": 1_700,
    "Substitution": 2_800,
    "Offside": 2_100,
    "Shots on target": 5_800,
    "Shots off target": 5_300,
    "Clearance": 7_900,
    "Ball out of play": 31_800,
    "Throw-in": 18_900,
    "Foul": 11_700,
    "Indirect free-kick": 10_500,
    "Direct free-kick": 2_200,
    "Corner": 4_800,
    "Yellow card": 2_000,
    "Red card": 55,
    "Yellow->red card": 46,
}
V2_EVENTS_PER_GAME: dict[str, float] = {c: n / 500 for c, n in V2_ANNOTATIONS_500_GAMES.items()}
# Share of each class's events marked "not shown" (it happens off-screen, e.g. during a replay
# or a close-up). An ASSUMPTION of this project, not a published figure: routine restarts and
# substitutions are often missed by the broadcast, goals, penalties, shots and cards almost
# never; overall about 10% of the events.
V2_NOT_SHOWN_SHARE: dict[str, float] = {
    "Penalty": 0.0,
    "Kick-off": 0.15,
    "Goal": 0.01,
    "Substitution": 0.25,
    "Offside": 0.10,
    "Shots on target": 0.03,
    "Shots off target": 0.03,
    "Clearance": 0.10,
    "Ball out of play": 0.12,
    "Throw-in": 0.12,
    "Foul": 0.08,
    "Indirect free-kick": 0.15,
    "Direct free-kick": 0.05,
    "Corner": 0.05,
    "Yellow card": 0.05,
    "Red card": 0.05,
    "Yellow->red card": 0.05,
}

LABEL_SETS: dict[str, LabelSet] = {ls.name: ls for ls in (V1, V2)}
DEFAULT_LABEL_SET = "v1"


def get_label_set(name: str, field: str | None = None) -> LabelSet:
    """A label set by name; an unknown name fails with the valid ones (naming ``field``, the
    parameter it came from, when given)."""
    try:
        return LABEL_SETS[name]
    except (KeyError, TypeError):
        raise DataError(
            f"{field or 'label set'} {name!r}: expected one of {', '.join(LABEL_SETS)}",
            field=field,
        ) from None


# v1 names kept for the modules that still speak only v1 (being moved onto label sets).
CLASSES: tuple[str, ...] = V1.classes
OUTPUTS: tuple[str, ...] = V1.outputs
NUM_OUTPUTS = V1.num_outputs
BACKGROUND = V1.background
CLASS_INDEX: dict[str, int] = V1.class_index
DISPLAY_NAMES: dict[str, str] = {**V1.display, BACKGROUND_NAME: BACKGROUND_NAME}
RAW_LABELS: tuple[str, ...] = V1.raw_labels

# "H - MM:SS": half 1 or 2, minutes may exceed 45 (stoppage time).
_GAME_TIME = re.compile(r"^\s*([12])\s*-\s*(\d{1,3}):([0-5]\d)\s*$")


def class_of_label(raw_label: str) -> int | None:
    """Class index of a v1 label by substring in the official order card, subs, soccer (None: no
    class), exactly as the official evaluator maps labels."""
    for i, name in enumerate(V1.classes):
        if name in raw_label:
            return i
    return None


def label_to_class(raw_label: str) -> str:
    """Class name of a SoccerNet v1 label; DataError for a label outside the v1 vocabulary."""
    return V1.class_of(raw_label)


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


def position_to_frame(position_ms: int, fps: float = FPS) -> int:
    """Frame index of a ``position`` in ms, ``int(fps * (ms / 1000))``: the official evaluator's
    expression for annotations at millisecond precision (SoccerNet-v2's ``Labels-v2.json``)."""
    return int(fps * (int(position_ms) / 1000))

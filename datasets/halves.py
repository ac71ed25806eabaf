"""A game half in memory: its features and events, the unit every layer passes around."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avspot.datasets.errors import DataError

# Splits in storage order. ``challenge`` (SoccerNet's 50 challenge games) has no labels: its
# halves carry no events and are never scored (``LABELLED_SPLITS`` are the ones with labels).
SPLITS: tuple[str, ...] = ("train", "valid", "test", "challenge")
LABELLED_SPLITS: tuple[str, ...] = ("train", "valid", "test")
UNLABELLED_SPLITS: tuple[str, ...] = ("challenge",)
# Feature dtypes a table may store (``--dtype``); float16 halves come back as float16 arrays.
FEATURE_DTYPES: tuple[str, ...] = ("float32", "float16")
DEFAULT_DTYPE = "float32"


def check_dtype(dtype: str) -> str:
    """``dtype`` when a table may store it; DataError naming the field otherwise."""
    if dtype not in FEATURE_DTYPES:
        raise DataError(
            f"dtype {dtype!r}: expected one of {', '.join(FEATURE_DTYPES)}", field="dtype"
        )
    return dtype


@dataclass
class Event:
    """One annotated action in a half."""

    frame: int  # index at fps, int(fps * seconds) / int(fps * position_ms / 1000)
    label: str  # class name in the half's label set (v1: card | subs | soccer)
    raw_label: str  # the label string of the Labels*.json file
    position_ms: int  # milliseconds from the half's start
    visibility: str = "visible"  # SoccerNet-v2: "visible" | "not shown" (v1: always visible)


@dataclass
class Half:
    """The features and events of one game half.

    ``video`` is (N, Dv), ``audio`` (N, Da), both float32 or both float16 (as the table stores
    them). A table without audio holds zero-width audio, shape (N, 0).
    """

    game: str
    half: int
    split: str
    fps: float
    video: np.ndarray  # (N, Dv) float32 | float16
    audio: np.ndarray  # (N, Da) float32 | float16; Da = 0: no audio
    events: list[Event] = field(default_factory=list)
    label_set: str = "v1"  # the vocabulary of ``events`` (datasets/labels.py: v1 | v2)

    @property
    def n_frames(self) -> int:
        return int(self.video.shape[0])

    @property
    def has_audio(self) -> bool:
        return int(self.audio.shape[1]) > 0 if self.audio.ndim == 2 else False

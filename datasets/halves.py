"""A game half in memory: its features and events, the unit every layer passes around."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPLITS: tuple[str, ...] = ("train", "valid", "test")


@dataclass
class Event:
    """One annotated action in a half."""

    frame: int  # index at fps, int(fps * seconds)
    label: str  # class: card | subs | soccer
    raw_label: str  # SoccerNet v1 label string
    position_ms: int  # milliseconds from the half's start


@dataclass
class Half:
    """The features and events of one game half."""

    game: str
    half: int
    split: str
    fps: float
    video: np.ndarray  # (N, 512) float32
    audio: np.ndarray  # (N, 512) float32
    events: list[Event] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.video.shape[0])

"""Fixtures for the data-layer tests: tiny halves and tiny synthetic tables."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from avspot.datasets.halves import Event, Half


def make_half(
    game: str = "league/2015-2016/g",
    half: int = 1,
    split: str = "train",
    n: int = 50,
    seed: int = 0,
    dim: int = 512,
    *,
    video: int | None = None,
    audio: int | None = None,
    events: list[Event] | None = None,
    label_set: str = "v1",
) -> Half:
    """A half of random features (``dim`` wide, or ``video`` / ``audio``) with ``events``
    (default: a v1 card at frame 3 and a goal on the last frame)."""
    rng = np.random.default_rng(seed)
    if events is None:
        events = [
            Event(3, "card", "y-card", 1500),
            Event(n - 1, "soccer", "soccer-ball", (n - 1) * 500),
        ]
    return Half(
        game=game,
        half=half,
        split=split,
        fps=2.0,
        video=rng.standard_normal((n, dim if video is None else video)).astype(np.float32),
        audio=rng.standard_normal((n, dim if audio is None else audio)).astype(np.float32),
        events=events,
        label_set=label_set,
    )


@pytest.fixture
def half_factory() -> Callable[..., Half]:
    return make_half


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 5-game synthetic table with 1-minute halves (shared, read-only)."""
    from avspot.datasets.synth import synthesize

    out = str(tmp_path_factory.mktemp("tables") / "tiny")
    synthesize(out, games=5, seed=3, half_minutes=1)
    return out

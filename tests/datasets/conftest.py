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
) -> Half:
    rng = np.random.default_rng(seed)
    return Half(
        game=game,
        half=half,
        split=split,
        fps=2.0,
        video=rng.standard_normal((n, dim)).astype(np.float32),
        audio=rng.standard_normal((n, dim)).astype(np.float32),
        events=[
            Event(3, "card", "y-card", 1500),
            Event(n - 1, "soccer", "soccer-ball", (n - 1) * 500),
        ],
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

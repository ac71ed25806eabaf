"""Figures: each returns a matplotlib Figure and writes a PNG."""

from __future__ import annotations

from pathlib import Path

from avspot.search import plots
from avspot.search.testing import fake_history

PNG = b"\x89PNG"


def test_lr_decay_epochs() -> None:
    hist = [
        {"epoch": 1, "lr": 1e-3},
        {"epoch": 2, "lr": 1e-3},
        {"epoch": 3, "lr": 1e-4},
        {"epoch": 4, "lr": 1e-4},
        {"epoch": 5, "lr": 1e-5},
    ]
    assert plots.lr_decay_epochs(hist) == [3.0, 5.0]


def test_every_figure_renders(tmp_path: Path) -> None:
    curve = {"tolerances": [5, 10, 15, 20], "curve": [0.1, 0.3, 0.5, 0.6], "average_map": 0.4}
    figs = {
        "tol.png": lambda p: plots.tolerance_curve({"T=20s": curve, "T=60s": curve}, p),
        "lc.png": lambda p: plots.learning_curves(fake_history(6), p),
        "lc_train.png": lambda p: plots.learning_curves(
            [{**h, "train_map": 0.9} for h in fake_history(3)], p
        ),
        "cm.png": lambda p: plots.confusion_matrix([[5, 1, 0, 2]] * 4, p),
        "tl.png": lambda p: plots.event_timeline(
            [
                (
                    "g1 / half 1",
                    [{"position_ms": 60000, "label": "card"}],
                    [{"position_ms": 61000, "label": "card", "confidence": 0.9}],
                ),
                ("g2 / half 2", [], [(120.0, "soccer", 0.7)]),
            ],
            p,
        ),
    }
    for name, draw in figs.items():
        fig = draw(tmp_path / name)
        assert fig.axes
        assert (tmp_path / name).read_bytes()[:4] == PNG

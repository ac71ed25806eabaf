"""Figures of a trial: each returns a matplotlib Figure, writes a PNG and names its data."""

from __future__ import annotations

from pathlib import Path

from avspot.search import plots
from tests.support.testing import fake_history

PNG = b"\x89PNG"
SYNTHETIC = "SYNTHETIC data (avspot data synth), not SoccerNet"


def test_lr_decay_epochs_are_the_trainers_step_downs_only() -> None:
    step = [
        {"epoch": 1, "lr": 1e-3, "lr_decayed": 0.0},
        {"epoch": 2, "lr": 1e-3, "lr_decayed": 1.0},
        {"epoch": 3, "lr": 1e-4, "lr_decayed": 0.0},
        {"epoch": 4, "lr": 1e-4, "lr_decayed": 1.0},
        {"epoch": 5, "lr": 1e-5, "lr_decayed": 0.0},
    ]
    assert plots.lr_decay_epochs(step) == [2.0, 4.0]
    cosine = [{"epoch": e, "lr": 1e-3 * (6 - e) / 5, "lr_decayed": 0.0} for e in range(1, 6)]
    assert plots.lr_decay_epochs(cosine) == []  # lowered every epoch, never stepped down


def test_trainer_flags_decays_of_step_and_plateau_schedules_only() -> None:
    from avspot.avmodels.trainer import train
    from tests.support.testing import tiny_halves, tiny_train_config

    train_h = tiny_halves(4, split="train")
    valid_h = tiny_halves(2, split="valid", seed=1)
    for schedule, expect_some in (("step", True), ("cosine", False)):
        cfg = tiny_train_config("video")
        cfg = cfg.merge({"schedule": schedule, "patience": 1, "max_epochs": 4, "stop_patience": 9})
        history = train(cfg, train_h, valid_h).history
        assert all(0.0 <= h["train_map"] <= 1.0 for h in history)
        flagged = [h["epoch"] for h in history if h["lr_decayed"]]
        assert bool(flagged) == expect_some, (schedule, history)
        for h, nxt in zip(history, history[1:], strict=False):
            assert (nxt["lr"] < h["lr"]) == bool(h["lr_decayed"]) or schedule == "cosine"


def test_every_figure_renders(tmp_path: Path) -> None:
    curve = {"deltas": [5, 10, 15, 20], "map_per_delta": [0.1, 0.3, 0.5, 0.6], "average_map": 0.4}
    figs = {
        "tol.png": lambda p: plots.tolerance_curve(
            {"T=20s": curve, "T=60s": curve}, p, source="synthetic"
        ),
        "lc.png": lambda p: plots.learning_curves(
            fake_history(6), p, source="synthetic", schedule="step"
        ),
        "lc_train.png": lambda p: plots.learning_curves(
            [{**h, "train_map": 0.9} for h in fake_history(3)], p, source="synthetic"
        ),
        "cm.png": lambda p: plots.confusion_matrix([[5, 1, 0, 2]] * 4, p, source="synthetic"),
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
            source="synthetic",
        ),
    }
    for name, draw in figs.items():
        fig = draw(tmp_path / name)
        assert fig.axes
        assert (tmp_path / name).read_bytes()[:4] == PNG
        assert _texts(fig) == [SYNTHETIC], name  # every figure names its data


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.texts]


def test_every_figure_names_the_data_it_was_given(tmp_path: Path) -> None:
    history = fake_history(3)
    fig = plots.learning_curves(history, path=tmp_path / "s.png", source="synthetic")
    assert _texts(fig) == [SYNTHETIC]
    assert (tmp_path / "s.png").read_bytes().startswith(PNG)
    assert _texts(plots.learning_curves(history, source="soccernet:/data/SoccerNet")) == [
        "SoccerNet v1 features"
    ]
    (text,) = _texts(plots.learning_curves(history, source="kaggle"))
    assert "kaggle" in text and "not presented as SoccerNet" in text
    (text,) = _texts(plots.confusion_matrix([[1, 0], [0, 1]], source=None))
    assert "unknown" in text and "not presented as SoccerNet" in text  # never silent
    # nothing carries over from one figure to the next: each says what it was given
    assert _texts(plots.learning_curves(history, source="synthetic")) == [SYNTHETIC]


def test_the_note_sits_below_a_pyplot_figure_saved_tight(tmp_path: Path) -> None:
    """A figure without a layout engine (pyplot's default, Optuna's figures) gets the note
    below its lowest tick label, inside what ``bbox_inches="tight"`` saves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([1, 2], [3, 4])
    ax.set_xlabel("a label below the ticks")
    content = fig.get_tightbbox()
    plots.add_data_note(fig, "synthetic")
    (note,) = fig.texts
    assert note.get_text() == SYNTHETIC
    renderer = canvas.get_renderer()
    box = note.get_window_extent(renderer).transformed(fig.dpi_scale_trans.inverted())
    assert box.y1 <= content.y0  # below everything else drawn: overlaps nothing
    assert fig.get_tightbbox().y0 <= box.y0  # and inside the saved area
    fig.savefig(tmp_path / "n.png", bbox_inches="tight")
    assert (tmp_path / "n.png").read_bytes().startswith(PNG)

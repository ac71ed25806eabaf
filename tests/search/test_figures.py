"""A search's figures, drawn by Optuna on the studies rebuilt from trial runs: the values drawn
are the values reported, every figure names its data, Optuna's pyplot style stays inside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avspot.search.reporting import figures, study
from avspot.search.reporting.trials import Trial
from avspot.search.tracking import names

PNG = b"\x89PNG"
SYNTHETIC = "SYNTHETIC data (avspot data synth), not SoccerNet"
QUALITY = {"video": 0.45, "audio": 0.3, "before_fc": 0.7, "early_512": 0.55}
# (fusion, pooling, lr, epochs run, status)
RUNS = [
    ("video", "max", 1e-3, 4, "FINISHED"),
    ("audio", "max", 3e-3, 1, "KILLED"),
    ("before_fc", "netvlad", 1e-2, 4, "FINISHED"),
    ("early_512", "max", 1e-4, 2, "KILLED"),
    ("before_fc", "max", 3e-4, 4, "FINISHED"),
    ("video", "netvlad", 3e-3, 2, "KILLED"),
    ("audio", "netvlad", 1e-3, 4, "FINISHED"),
    ("early_512", "netvlad", 1e-2, 4, "FINISHED"),
    ("before_fc", "max", 1e-3, 1, "FAILED"),
]


def _scored() -> list[study.Scored]:
    out = []
    for i, (fusion, pooling, lr, epochs, status) in enumerate(RUNS):
        top = QUALITY[fusion] + (0.05 if pooling == "netvlad" else 0.0) + 0.001 * i
        curve = [(e, top * (0.5 + 0.5 * e / 4)) for e in range(1, epochs + 1)]
        params = {"model.fusion": fusion, "model.pooling": pooling, "lr": str(lr), "seed": "0"}
        if pooling == "netvlad":
            params["model.clusters"] = "4"
        metrics = {names.DEFAULT_METRIC: curve[-1][1], names.M_N_PARAMS: 1000.0 * (i + 1)}
        if status == "FINISHED":  # stopped trials never spot their final model
            metrics[names.M_SPOT_S_PER_HALF] = 0.1 * (i + 1)
        trial = Trial(
            run_id=f"r{i}",
            name=f"t{i}",
            status=status,
            parent="p",
            fusion=fusion,
            pooling=pooling,
            clusters="4",
            window_s=4.0,
            spot_method="nms",
            schedule="step",
            metrics=metrics,
            epochs=epochs,
            source="synthetic",
            fingerprint="c" * 64,
            params=params,
        )
        scored = study.Scored(trial, study.trial_params(trial), curve, max(v for _, v in curve))
        out.append(scored)
    return out


def _usable(scored: list[study.Scored]) -> list[study.Scored]:
    return [s for s in scored if s.state != "failed"]


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.texts]


def _bars(fig) -> dict[str, float]:
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    widths = [p.get_width() for p in ax.patches]
    return dict(zip(labels, widths, strict=True))


def test_importance_bars_are_the_importances_the_report_gives(tmp_path: Path) -> None:
    scored = _scored()
    usable = _usable(scored)
    imp = study.param_importance(scored)
    assert imp["counts"] == {"completed": 5, "stopped": 3, "failed": 1}
    params = study.searched_params(usable)
    fanova = [p for p in params if p not in imp["conditional"]]
    for include, key in ((True, "fANOVA, all trials"), (False, "fANOVA, completed only")):
        path = tmp_path / f"imp_{include}.png"
        fig = figures.params_figure(
            "importance",
            study.build_study(usable, params, include_stopped=include),
            fanova,
            path,
            source="synthetic",
            title=key,
            target_name="best val_average_map",
        )
        assert path.read_bytes().startswith(PNG)
        assert _bars(fig) == pytest.approx(imp["results"][key]), key
        assert SYNTHETIC in _texts(fig)
    assert imp["results"]["fANOVA, all trials"] != imp["results"]["fANOVA, completed only"]


def test_intermediate_values_draw_every_trials_curve_stopped_ones_shorter(tmp_path: Path) -> None:
    scored = _scored()
    usable = _usable(scored)
    built = study.build_study(usable, study.searched_params(usable), include_stopped=False)
    fig = figures.intermediate_values(
        built,
        tmp_path / "iv.png",
        source="synthetic",
        metric="val_average_map",
        title="t",
        max_epochs=4,
    )
    drawn = {ln.get_label(): list(ln.get_ydata()) for ln in fig.axes[0].lines if ln.get_label()}
    drawn = {k: v for k, v in drawn.items() if k.startswith("Trial")}
    assert len(drawn) == len(usable) == 8  # the failed trial is not in the study
    for t, s in zip(built.trials, usable, strict=True):
        assert drawn[f"Trial{t.number}"] == pytest.approx([v for _, v in s.curve])
    assert sorted(len(v) for v in drawn.values()) == [1, 2, 2, 4, 4, 4, 4, 4]
    assert SYNTHETIC in _texts(fig)


def test_parallel_coordinates_draw_one_line_per_trial(tmp_path: Path) -> None:
    from matplotlib.collections import LineCollection

    usable = _usable(_scored())
    params = study.searched_params(usable)
    assert params == ["fusion", "pooling", "clusters", "lr"]
    fig = figures.params_figure(
        "parallel",
        study.build_study(usable, params, include_stopped=True),
        params,
        tmp_path / "pc.png",
        source="synthetic",
        title="t",
        target_name="best val_average_map",
    )
    (lines,) = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    segments = lines.get_segments()
    assert len(segments) == len(usable)
    first_axis = sorted(seg[0][1] for seg in segments)  # the value axis, left
    assert first_axis == pytest.approx(sorted(s.score for s in usable))
    assert SYNTHETIC in _texts(fig)


@pytest.mark.parametrize("key", [names.M_SPOT_S_PER_HALF, names.M_N_PARAMS])
def test_pareto_front_is_the_reported_front(tmp_path: Path, key: str) -> None:
    points = study.pareto(_scored())[key]
    built = figures.pareto_study(points)
    fig = figures.pareto_front(
        built,
        tmp_path / "pf.png",
        source="synthetic",
        cost_name=key,
        value_name="Average-mAP",
        title="t",
    )
    reported = sorted((p["cost"], p["value"]) for p in points if p["front"])
    assert reported and len(reported) < len(points)  # a front, and trials it dominates
    np.testing.assert_allclose(sorted(tuple(t.values) for t in built.best_trials), reported)
    drawn = {c.get_label(): c.get_offsets() for c in fig.axes[0].collections}
    np.testing.assert_allclose(sorted(map(tuple, drawn["Best Trial"])), reported)
    assert len(drawn["Trial"]) == len(points) - len(reported)
    annotated = {a.get_text() for a in fig.axes[0].texts}
    assert annotated == {f"{p['fusion']}, {p['pooling']}" for p in points if p["front"]}
    assert SYNTHETIC in _texts(fig)


def test_search_figures_name_their_data_and_leave_pyplot_style_alone(tmp_path: Path) -> None:
    import matplotlib

    before = dict(matplotlib.rcParams)
    scored = _scored()
    figs = figures.search_figures(
        scored, "val_average_map", tmp_path, "d0_", 4, source=None, importance=None
    )
    assert {Path(n).stem for n in figs.values()} == {
        "d0_parallel_coordinates",
        "d0_intermediate_values",
        "d0_pareto_front",  # against spotting seconds per half
        "d0_pareto_front_n_params",
    }
    assert dict(matplotlib.rcParams) == before  # Optuna's ggplot style did not leak
    from matplotlib import pyplot as plt

    assert plt.get_fignums() == []  # every pyplot figure closed

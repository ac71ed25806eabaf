"""A search's figures as Optuna draws them, each with the footnote naming its data.

``optuna.visualization.matplotlib`` draws on the in-memory studies that ``reporting.study``
rebuilds from the MLflow trial runs: parameter importance (fANOVA), parallel coordinates,
intermediate values and, on a two-objective study (inference cost down, accuracy up), the Pareto
front. The figures of one trial are in ``search.plots``; its ``add_data_note`` footnotes these.

Optuna draws through pyplot and sets its ggplot style: each figure is drawn inside
``matplotlib.rc_context`` (the style does not leak into the object-API figures of
``search.plots``), saved, and closed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avspot.search.plots import add_data_note
from avspot.search.reporting.study import (
    PARETO_COSTS,
    STATUS_COMPLETED,
    STATUS_STOPPED,
    Scored,
    build_study,
    pareto,
    searched_params,
)
from avspot.search.tracking.names import DEFAULT_METRIC

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
# Optuna's Pareto legend, said plainly
LEGEND = {"Trial": "dominated", "Best Trial": "Pareto front"}


@contextmanager
def _pyplot_style() -> Iterator[None]:
    """Optuna's pyplot drawing, its style and experimental-feature warnings kept inside."""
    import matplotlib
    import optuna

    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _draw(
    draw: Callable[[], Axes],
    path: Path,
    *,
    source: str | None,
    size: tuple[float, float],
    finish: Callable[[Axes], None] | None = None,
) -> Figure:
    """``draw()`` (an Optuna plot function) at ``size`` inches, ``finish(ax)`` applied, the data
    footnote added, saved as PNG at ``path``; returns the closed figure (texts still readable)."""
    from matplotlib import pyplot as plt

    with _pyplot_style():
        ax = draw()
        fig = ax.get_figure()
        try:
            fig.set_size_inches(*size)
            if finish is not None:
                finish(ax)
            add_data_note(fig, source)
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=DPI, bbox_inches="tight")
        finally:
            plt.close(fig)
    return fig


def _title(ax: Axes, text: str) -> None:
    """``text`` as the one title of ``ax`` (Optuna's own, centred or left, replaced)."""
    for loc in ("center", "right"):
        ax.set_title("", loc=loc)
    ax.set_title(text, loc="left", fontsize=10, pad=10)


def _titled(text: str) -> Callable[[Axes], None]:
    return lambda ax: _title(ax, text)


def param_importances(
    study: optuna.Study,
    params: Sequence[str],
    path: Path,
    *,
    source: str | None,
    title: str,
    target_name: str,
) -> Figure:
    """Optuna's importance bars: fANOVA (seed 0, the evaluator ``reporting.study`` reports)
    over the study's COMPLETE trials and ``params``."""
    import optuna
    from optuna.visualization.matplotlib import plot_param_importances

    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return _draw(
        lambda: plot_param_importances(
            study, evaluator=evaluator, params=list(params), target_name=target_name
        ),
        path,
        source=source,
        size=(7.0, 1.6 + 0.45 * max(1, len(params))),
        finish=_titled(title),
    )


def parallel_coordinates(
    study: optuna.Study,
    params: Sequence[str],
    path: Path,
    *,
    source: str | None,
    title: str,
    target_name: str,
) -> Figure:
    """Optuna's parallel coordinates of ``params`` over the study's COMPLETE trials, coloured by
    their value (a conditional parameter a trial lacks: its ``None`` tick)."""
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    return _draw(
        lambda: plot_parallel_coordinate(study, params=list(params), target_name=target_name),
        path,
        source=source,
        size=(max(7.0, 1.3 * (len(params) + 1) + 2.0), 4.8),
        finish=_titled(title),
    )


def intermediate_values(
    study: optuna.Study,
    path: Path,
    *,
    source: str | None,
    metric: str,
    title: str,
    max_epochs: int | None = None,
) -> Figure:
    """Optuna's intermediate values: ``metric`` per epoch of every trial, COMPLETE and PRUNED
    (stopped early: visibly shorter); ``max_epochs`` marked."""
    from optuna.visualization.matplotlib import plot_intermediate_values

    def finish(ax: Axes) -> None:
        from matplotlib.ticker import MaxNLocator

        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if max_epochs:
            ax.axvline(max_epochs, color="gray", linewidth=0.8, linestyle=":")
        _title(ax, title)

    return _draw(
        lambda: plot_intermediate_values(study),
        path,
        source=source,
        size=(8.0, 4.6),
        finish=finish,
    )


def pareto_study(points: Sequence[Mapping[str, Any]]) -> optuna.Study:
    """A two-objective study (cost: minimize, value: maximize) of ``points``, each with
    ``cost``, ``value`` and what labels it (``run``, ``fusion``, ``pooling``) as user attrs."""
    import optuna
    from optuna.trial import TrialState, create_trial

    study = optuna.create_study(directions=["minimize", "maximize"])
    for p in points:
        study.add_trial(
            create_trial(
                values=[float(p["cost"]), float(p["value"])],
                state=TrialState.COMPLETE,
                user_attrs={k: p[k] for k in ("run", "fusion", "pooling") if k in p},
            )
        )
    return study


def pareto_front(
    study: optuna.Study,
    path: Path,
    *,
    source: str | None,
    cost_name: str,
    value_name: str,
    title: str,
) -> Figure:
    """Optuna's Pareto front of a ``pareto_study``: dominated trials too, the front's trials
    labelled (fusion, pooling); the cost on a log axis when it spans more than a decade."""
    from optuna.visualization.matplotlib import plot_pareto_front

    def finish(ax: Axes) -> None:
        costs = [t.values[0] for t in study.trials]
        if costs and min(costs) > 0 and max(costs) / min(costs) > 10:
            ax.set_xscale("log")
        for t in study.best_trials:
            label = ", ".join(
                str(t.user_attrs[k]) for k in ("fusion", "pooling") if k in t.user_attrs
            )
            if label:
                ax.annotate(
                    label, tuple(t.values), fontsize=7, xytext=(4, 4), textcoords="offset points"
                )
        legend = ax.get_legend()
        for text in legend.get_texts() if legend is not None else ():
            text.set_text(LEGEND.get(text.get_text(), text.get_text()))
        _title(ax, title)

    return _draw(
        lambda: plot_pareto_front(study, target_names=[cost_name, value_name]),
        path,
        source=source,
        size=(6.4, 4.6),
        finish=finish,
    )


# ---- a search's figures from its scored trials -------------------------------------------------

IMPORTANCE_FIGURES = (  # (importance result, figure title, file stem)
    ("fANOVA, all trials", "Parameter importance: all trials", "param_importance"),
    (
        "fANOVA, completed only",
        "Parameter importance: completed only",
        "param_importance_completed",
    ),
)
PARALLEL_TITLE = "Parallel coordinates of the searched parameters"
INTERMEDIATE_TITLE = "Intermediate values: validation metric per epoch of every trial"
PARETO_TITLE = "Pareto front: Average-mAP against inference cost"


def _pareto_file(key: str) -> str:
    return "pareto_front" if key == PARETO_COSTS[0][0] else f"pareto_front_{key}"


def search_figures(
    scored: list[Scored],
    monitor: str,
    fig_dir: Path,
    tag: str = "",
    max_epochs: int | None = None,
    *,
    source: str | None,
    importance: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Optuna's figures of the trials (``reporting.figures``) as PNGs in ``fig_dir``, each
    footnoted with ``source``: the importances in ``importance`` (``param_importance``), parallel
    coordinates (stopped trials at their best value), intermediate values (stopped trials
    PRUNED) and the Pareto front per inference cost. Returns {title: file name}."""
    out: dict[str, str] = {}
    usable = [s for s in scored if s.state != "failed" and not math.isnan(s.score)]
    params = searched_params(usable)
    best = f"best {monitor}"
    if importance is not None:
        fanova = [p for p in importance["params"] if p not in importance["conditional"]]
        counts = importance["counts"]
        for key, title, stem in IMPORTANCE_FIGURES:
            if key not in importance["results"]:
                continue
            include = key.endswith("all trials")
            n = counts[STATUS_COMPLETED] + (counts[STATUS_STOPPED] if include else 0)
            what = "stopped ones at their best value" if include else "stopped ones PRUNED"
            path = fig_dir / f"{tag}{stem}.png"
            param_importances(
                build_study(usable, params, include_stopped=include),
                fanova,
                path,
                source=source,
                title=f"{key}: {n} trials ({what})",
                target_name=best,
            )
            out[title] = path.name
    if usable and params:
        path = fig_dir / f"{tag}parallel_coordinates.png"
        parallel_coordinates(
            build_study(usable, params, include_stopped=True),
            params,
            path,
            source=source,
            title=f"{len(usable)} trials (stopped early by ASHA: at their best value)",
            target_name=best,
        )
        out[PARALLEL_TITLE] = path.name
    if any(s.curve for s in usable):
        path = fig_dir / f"{tag}intermediate_values.png"
        intermediate_values(
            build_study(usable, params, include_stopped=False),
            path,
            source=source,
            metric=monitor,
            title="validation per epoch (shorter: stopped early by ASHA, PRUNED)",
            max_epochs=max_epochs,
        )
        out[INTERMEDIATE_TITLE] = path.name
    front = pareto(scored)
    for key, label in PARETO_COSTS:
        if not front[key]:
            continue
        path = fig_dir / f"{tag}{_pareto_file(key)}.png"
        pareto_front(
            pareto_study(front[key]),
            path,
            source=source,
            cost_name=f"{label} ({key})",
            value_name=f"Average-mAP ({DEFAULT_METRIC})",
            title=f"{len(front[key])} trials: Average-mAP against {label}",
        )
        out[f"{PARETO_TITLE}: {label}"] = path.name
    return out

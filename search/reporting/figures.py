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

import functools
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


PARAMS_FIGURES = ("importance", "parallel")  # the figures drawn over the searched params


def params_figure(
    kind: str,
    study: optuna.Study,
    params: Sequence[str],
    path: Path,
    *,
    source: str | None,
    title: str,
    target_name: str,
) -> Figure:
    """A figure of ``params`` over the study's COMPLETE trials, drawn by Optuna: ``importance``,
    the fANOVA importance bars (seed 0, the evaluator ``reporting.study`` reports), or
    ``parallel``, parallel coordinates coloured by value (a conditional parameter a trial lacks:
    its ``None`` tick)."""
    import optuna
    from optuna.visualization.matplotlib import plot_parallel_coordinate, plot_param_importances

    names = list(params)
    if kind == "importance":
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)

        def plot() -> Any:
            return plot_param_importances(
                study, evaluator=evaluator, params=names, target_name=target_name
            )

        size = (7.0, 1.6 + 0.45 * max(1, len(names)))
    elif kind == "parallel":

        def plot() -> Any:
            return plot_parallel_coordinate(study, params=names, target_name=target_name)

        size = (max(7.0, 1.3 * (len(names) + 1) + 2.0), 4.8)
    else:
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(PARAMS_FIGURES)}")
    return _draw(plot, path, source=source, size=size, finish=_titled(title))


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

    def draw(name: str, stem: str, figure: Any, *args: Any, stopped: bool, **kw: Any) -> None:
        """One figure: ``figure(study, *args, path, ...)`` filed under ``name``."""
        path = fig_dir / f"{tag}{stem}.png"
        study = build_study(usable, params, include_stopped=stopped)
        figure(study, *args, path, source=source, **kw)
        out[name] = path.name

    importances = functools.partial(params_figure, "importance")
    coordinates = functools.partial(params_figure, "parallel")

    if importance is not None:
        fanova = [p for p in importance["params"] if p not in importance["conditional"]]
        counts = importance["counts"]
        for key, title, stem in IMPORTANCE_FIGURES:
            if key not in importance["results"]:
                continue
            include = key.endswith("all trials")
            n = counts[STATUS_COMPLETED] + (counts[STATUS_STOPPED] if include else 0)
            what = "stopped ones at their best value" if include else "stopped ones PRUNED"
            title_n = f"{key}: {n} trials ({what})"
            draw(title, stem, importances, fanova, stopped=include, title=title_n,
                 target_name=best)  # fmt: skip
    if usable and params:
        draw(PARALLEL_TITLE, "parallel_coordinates", coordinates, params, stopped=True,
             title=f"{len(usable)} trials (stopped early by ASHA: at their best value)",
             target_name=best)  # fmt: skip
    if any(s.curve for s in usable):
        draw(INTERMEDIATE_TITLE, "intermediate_values", intermediate_values, stopped=False,
             metric=monitor, max_epochs=max_epochs,
             title="validation per epoch (shorter: stopped early by ASHA, PRUNED)")  # fmt: skip
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

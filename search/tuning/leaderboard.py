"""A search's leaderboard, from Ray's ``ResultGrid``: each trial's last report, never its history.

The contract with the trial function (``tuning.trial``): every Tune report of a trial
carries, besides the metric itself (e.g. ``val_average_map``), ``best_<metric>``, the running
best of the metric over the trial's epochs so far (checkpointed with the trainer, so it
survives a restart), ``best_epoch``, ``epoch`` and ``finished`` (1.0 on the trial's last report,
else 0.0). A trial's best is therefore its last report's ``best_<metric>`` (``Result.metrics``),
right even when Tune's own per-trial history (``result.json``, ``Result.metrics_dataframe``)
misses an epoch after a node loss. A result without ``best_<metric>`` (an experiment recorded
before the contract, resumed) falls back to its last report's metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from avspot.avmodels import names as N

if TYPE_CHECKING:  # pragma: no cover
    from ray.tune import Result, ResultGrid

TOP = 15  # rows printed


def best_key(metric: str) -> str:
    """The report key of a trial's running best of ``metric`` (``names.best``)."""
    return N.best(metric)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def trial_best(metrics: Mapping[str, Any], metric: str) -> float:
    """A trial's best ``metric`` from its last report: ``best_<metric>``, else (an old
    experiment) the metric itself; NaN when the trial reported neither."""
    best = _number(metrics.get(best_key(metric)))
    return best if not math.isnan(best) else _number(metrics.get(metric))


def row(result: Result, metric: str) -> dict[str, Any]:
    """One trial's leaderboard row from its ``Result``: ``trial_id``, ``config``, ``best``,
    ``epochs`` (its last report's ``epoch``), ``finished``, ``error`` (whether it failed),
    ``last`` (the numbers of its last report) and ``path`` (its directory)."""
    m = result.metrics or {}
    epochs = m.get("epoch", m.get("training_iteration", 0))
    return {
        "trial_id": m.get("trial_id"),
        "config": dict(result.config or {}),
        "best": trial_best(m, metric),
        "epochs": int(epochs) if not math.isnan(_number(epochs)) else 0,
        "finished": bool(m.get("finished", 0)),
        "error": result.error is not None,
        "last": {k: v for k, v in m.items() if isinstance(v, int | float)},
        "path": result.path,
    }


def leaderboard(grid: ResultGrid, metric: str) -> list[dict[str, Any]]:
    """Every trial of ``grid`` as a ``row``, best first (trials without a value last, in the
    grid's order)."""
    rows = [row(grid[i], metric) for i in range(len(grid))]
    rows.sort(key=lambda r: -r["best"] if not math.isnan(r["best"]) else math.inf)
    return rows


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The leaderboard's first row with a value (None: no trial reported one)."""
    return next((r for r in rows if not math.isnan(r["best"])), None)


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    """``trials``, ``trial_epochs`` (epochs run, over all trials) and ``stopped_early`` (trials
    that neither finished nor failed: stopped by the scheduler)."""
    return {
        "trials": len(rows),
        "trial_epochs": sum(r["epochs"] for r in rows),
        "stopped_early": sum(1 for r in rows if not r["finished"] and not r["error"]),
    }


class SearchSummary(Protocol):
    """What ``print_leaderboard`` reads of a search's result (``tuning.tuner.SearchResult``)."""

    path: str
    rows: list[dict[str, Any]]
    trials: int
    trial_epochs: int
    stopped_early: int
    wall_s: float
    parent_run_id: str | None
    model_version: str | None


def leaderboard_lines(
    result: SearchSummary,
    metric: str,
    *,
    tracking_uri: str | None = None,
    summary: Callable[[dict[str, Any]], str] | None = None,
    top: int = TOP,
) -> list[str]:
    """The leaderboard as printed at the end of a search: totals, the ``top`` rows (rank,
    best ``metric``, epochs, ``summary(config)``; default: ``callbacks.summary``), where the
    results and the MLflow runs (in ``tracking_uri``) are."""
    if summary is None:
        from avspot.search.tuning.callbacks import summary
    lines = [
        "",
        f"{result.trials} trials, {result.trial_epochs} trial-epochs, "
        f"{result.stopped_early} stopped early by ASHA, {result.wall_s / 60:.1f} min",
        f"{'rank':>4}  {metric:>15}  {'epochs':>6}  config",
    ]
    for i, r in enumerate(result.rows[:top], 1):
        flag = " (error)" if r["error"] else ""
        lines.append(f"{i:>4}  {r['best']:>15.4f}  {r['epochs']:>6}  {summary(r['config'])}{flag}")
    lines += ["", f"results: {result.path}"]
    if result.parent_run_id:
        lines.append(f"MLflow: parent run {result.parent_run_id} in {tracking_uri}")
        if result.model_version:
            lines.append(f"registered avspot-spotter version {result.model_version} as @challenger")
    return [*lines, ""]


def print_leaderboard(
    result: SearchSummary,
    metric: str,
    print_fn: Callable[[str], None],
    *,
    tracking_uri: str | None = None,
    summary: Callable[[dict[str, Any]], str] | None = None,
    top: int = TOP,
) -> None:
    """``leaderboard_lines`` through ``print_fn``, one call per line."""
    for line in leaderboard_lines(
        result, metric, summary=summary, tracking_uri=tracking_uri, top=top
    ):
        print_fn(line)

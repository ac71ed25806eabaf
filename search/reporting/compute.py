"""Does the search pay off? What a search's trials cost, against running the full grid.

Every trial run logs its cumulative ``trial_wall_s``, ``cpu_core_s`` and ``gpu_s`` each epoch
(``tracking.trial``), so trials that ASHA stopped are counted too. ``compute_totals`` sums them
over a parent run's children and estimates what the same space would have cost without early
stopping, at the measured mean cost per trial-epoch:

- a grid space (``GRID``): every configuration of the grid run for ``max_epochs``;
- any other space (TPE): the same number of trials, each run for ``max_epochs``.

The driver logs the totals on the parent run before closing it (``log_compute``) and
``avspot report`` prints them as hours.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from avspot.search.tracking import names
from avspot.search.tracking.client import log_metrics, retry
from avspot.search.tracking.runs import child_runs

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient


@dataclass
class ComputeTotals:
    """Spent and estimated compute of one search (seconds; ``*_h`` properties in hours)."""

    parent_run_id: str
    run_name: str
    trials: int  # distinct Ray trials with a child run
    trials_with_cost: int  # of which logged cost metrics (older runs did not)
    trial_epochs: int  # epochs run, over all trial runs
    wall_s: float  # sum of the trials' wall times
    cpu_core_s: float
    gpu_s: float
    max_epochs: int
    basis: str  # "grid" | "tpe"
    estimate_trials: int  # configurations (grid) or trials (tpe) of the estimate
    cost_epochs: int  # epochs of the trials with cost metrics (the mean's denominator)

    @property
    def estimate_trial_epochs(self) -> int:
        return self.estimate_trials * self.max_epochs

    def _estimate(self, spent_s: float) -> float:
        if self.cost_epochs <= 0:
            return math.nan
        return spent_s / self.cost_epochs * self.estimate_trial_epochs

    @property
    def basis_text(self) -> str:
        if self.basis == "grid":
            return (
                f"grid: {self.estimate_trials} configurations x {self.max_epochs} epochs "
                "at the measured mean cost per trial-epoch"
            )
        return (
            f"tpe: {self.estimate_trials} trials x {self.max_epochs} epochs without early "
            "stopping, at the measured mean cost per trial-epoch"
        )

    @property
    def saved_fraction(self) -> float:
        """1 - spent / estimate, in CPU-core hours (wall hours when no CPU was recorded)."""
        spent, est = (self.cpu_core_s, self._estimate(self.cpu_core_s))
        if not spent:
            spent, est = self.wall_s, self._estimate(self.wall_s)
        if not est or math.isnan(est):
            return math.nan
        return 1.0 - spent / est

    def metrics(self) -> dict[str, float]:
        """The parent run's metrics (hours)."""
        return {
            names.M_TOTAL_WALL_H: self.wall_s / 3600,
            names.M_TOTAL_CPU_CORE_H: self.cpu_core_s / 3600,
            names.M_TOTAL_GPU_H: self.gpu_s / 3600,
            names.M_TOTAL_TRIAL_EPOCHS: self.trial_epochs,
            names.M_GRID_WALL_H: self._estimate(self.wall_s) / 3600,
            names.M_GRID_CPU_CORE_H: self._estimate(self.cpu_core_s) / 3600,
            names.M_GRID_GPU_H: self._estimate(self.gpu_s) / 3600,
            names.M_GRID_TRIAL_EPOCHS: self.estimate_trial_epochs,
            names.M_SAVED_FRACTION: self.saved_fraction,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), **self.metrics(), "basis_text": self.basis_text}

    def lines(self) -> list[str]:
        """What the driver and ``avspot report`` print."""
        m = self.metrics()
        saved = m[names.M_SAVED_FRACTION]
        missing = self.trials - self.trials_with_cost
        return [
            f"compute of {self.run_name}: {self.trials} trials, {self.trial_epochs} trial-epochs, "
            f"{m[names.M_TOTAL_WALL_H]:.3f} trial wall h, "
            f"{m[names.M_TOTAL_CPU_CORE_H]:.3f} CPU-core h, {m[names.M_TOTAL_GPU_H]:.3f} GPU h"
            + (f" ({missing} trial(s) without cost metrics)" if missing > 0 else ""),
            f"  full-search estimate ({self.basis_text}): {self.estimate_trial_epochs} "
            f"trial-epochs, {m[names.M_GRID_CPU_CORE_H]:.3f} CPU-core h, "
            f"{m[names.M_GRID_GPU_H]:.3f} GPU h; saved "
            + ("n/a" if math.isnan(saved) else f"{100 * saved:.0f}%"),
        ]


def _epochs(client: MlflowClient, run: Any, monitor: str) -> int:
    """Epochs a trial run trained: distinct steps of its monitor (a resumed run counts only its
    own), else its ``epochs`` summary."""
    hist = retry(client.get_metric_history, run.info.run_id, monitor)
    if hist:
        return len({h.step for h in hist})
    return int(run.data.metrics.get("epochs", 0))


def _grid_size(space_name: str | None) -> int | None:
    from avspot.datasets.errors import DataError
    from avspot.search.spaces import get_space

    if not space_name:
        return None
    try:
        return get_space(space_name).grid_size
    except DataError:  # a space renamed or removed since the search ran
        return None


def compute_totals(
    client: MlflowClient, parent_run_id: str, children: list[Any] | None = None
) -> ComputeTotals:
    """Spent compute of the search ``parent_run_id`` (read from its child runs) and the
    full-search estimate for the same space."""
    parent = retry(client.get_run, parent_run_id)
    pp = parent.data.params
    monitor = pp.get("metric", names.DEFAULT_METRIC)
    runs = children if children is not None else child_runs(client, parent_run_id)
    wall = cpu = gpu = 0.0
    epochs_all = cost_epochs = 0
    trial_ids: set[str] = set()
    costed: set[str] = set()
    top_epochs = 0
    for run in runs:
        m = run.data.metrics
        tid = run.data.tags.get(names.TAG_TRIAL_ID) or run.info.run_id
        trial_ids.add(tid)
        n = _epochs(client, run, monitor)
        epochs_all += n
        top_epochs = max(top_epochs, n)
        if names.M_TRIAL_WALL_S in m:
            wall += m[names.M_TRIAL_WALL_S]
            cpu += m.get(names.M_CPU_CORE_S, 0.0)
            gpu += m.get(names.M_GPU_S, 0.0)
            cost_epochs += n
            costed.add(tid)
    try:
        max_epochs = int(float(pp.get("max_epochs", "")))
    except ValueError:
        max_epochs = top_epochs
    grid = _grid_size(pp.get("space"))
    return ComputeTotals(
        parent_run_id=parent_run_id,
        run_name=parent.info.run_name or parent_run_id[:8],
        trials=len(trial_ids),
        trials_with_cost=len(costed),
        trial_epochs=epochs_all,
        wall_s=wall,
        cpu_core_s=cpu,
        gpu_s=gpu,
        max_epochs=max_epochs,
        basis="grid" if grid else "tpe",
        estimate_trials=grid or len(trial_ids),
        cost_epochs=cost_epochs,
    )


def log_compute(client: MlflowClient, parent_run_id: str) -> ComputeTotals:
    """Compute the totals of a search and log them on its parent run (metrics in hours, the
    estimate's basis as the tag ``avspot.grid_estimate_basis``)."""
    totals = compute_totals(client, parent_run_id)
    log_metrics(client, parent_run_id, totals.metrics())
    retry(client.set_tag, parent_run_id, names.TAG_GRID_BASIS, totals.basis_text)
    return totals

"""Optuna glue: the sampler of a space, a picklable define-by-run space, and honest trial states
for ASHA-stopped trials."""

from __future__ import annotations

import logging
from typing import Any

import optuna
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from avspot.search.spaces import Space, get_space


class _UsedUpGridFilter(logging.Filter):
    """Ray's OptunaSearch logs any exception of ``study.tell`` as a warning. A GridSampler whose
    grid is used up calls ``study.stop()`` after the trial's state is recorded, which raises
    outside ``optimize()``: not a failure, and users read it as one. Only that message is
    dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`Study.stop` is supposed to be invoked" not in record.getMessage()


logging.getLogger("ray.tune.search.optuna.optuna_search").addFilter(_UsedUpGridFilter())


class SpaceFunction:
    """Picklable define-by-run function: loads the named space (the searcher is checkpointed)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, trial: Any) -> dict[str, Any] | None:
        space = get_space(self.name)
        suggested = space.suggest(trial) or {}
        # Defaults first, so that a space's own suggestion always wins.
        return {**space.defaults, **suggested} or None


class AvspotOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna the truth about early-stopped trials.

    Ray's OptunaSearch records a trial that ASHA stopped as COMPLETE with its partial value, so
    TPE would treat a 2-epoch score like a converged one. Our trials report `finished=1` on the
    epoch where the trainer itself ends; anything else is told to Optuna as PRUNED, which TPE
    ranks by its last intermediate value (reported every epoch by `on_trial_result`).
    """

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if error or not result or result.get("finished", 0):
            return super().on_trial_complete(trial_id, result=result, error=error)
        if trial_id in self._completed_trials:
            return None
        from optuna.trial import TrialState

        ot_trial = self._ot_trials[trial_id]
        try:
            self._ot_study.tell(ot_trial, None, state=TrialState.PRUNED)
        except Exception as exc:  # noqa: BLE001 - Optuna refuses e.g. a trial with no reports
            # A GridSampler whose grid is used up calls study.stop() after recording the state,
            # which raises outside optimize(); only a state that was not recorded is a failure.
            recorded = self._ot_study._storage.get_trial(ot_trial._trial_id).state
            if recorded != TrialState.PRUNED:
                logging.getLogger(__name__).warning("optuna tell(PRUNED) failed: %s", exc)
        self._completed_trials.add(trial_id)
        return None


def startup_trials(trials: int) -> int:
    """TPE's random start-up trials for a budget of ``trials``: a third of it, 2..10."""
    return min(10, max(2, trials // 3))


def tpe_sampler(seed: int, n_startup_trials: int) -> optuna.samplers.TPESampler:
    """Multivariate TPE as ``avspot search`` runs it (``constant_liar`` keeps concurrent trials
    from piling onto one point); the search-replay benchmark replays this very sampler."""
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=n_startup_trials,
        multivariate=True,
        group=True,
        constant_liar=True,
    )


def build_searcher(
    space: Space,
    *,
    trials: int,
    seed: int,
    metric: str,
    study_name: str,
    study_path: str | None,
    max_concurrent: int,
    n_startup_trials: int | None = None,
) -> ConcurrencyLimiter:
    """The search algorithm of ``space``: Optuna's GridSampler for a grid space, else
    multivariate TPE (random start-up trials first: a third of the budget, 2..10, unless
    ``n_startup_trials`` is given; ``constant_liar`` keeps concurrent trials from piling onto
    one point) with the space's ``BASELINES`` enqueued first (kept by a resume)."""
    if space.grid is not None:
        sampler: optuna.samplers.BaseSampler = optuna.samplers.GridSampler(space.grid, seed=seed)
    else:
        startup = n_startup_trials if n_startup_trials is not None else startup_trials(trials)
        sampler = tpe_sampler(seed, startup)
    storage = None
    if study_path is not None:
        storage = optuna.storages.RDBStorage(f"sqlite:///{study_path}")
    searcher = AvspotOptunaSearch(
        space=SpaceFunction(space.name),
        sampler=sampler,
        storage=storage,
        study_name=study_name,
        metric=metric,
        mode="max",
        points_to_evaluate=list(space.baselines) if space.grid is None else None,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)

"""Optuna glue: the sampler of a space, a picklable define-by-run space, and honest trial states
for ASHA-stopped trials, with no read of Ray's or Optuna's private attributes."""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.storages import InMemoryStorage
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
    """OptunaSearch that tells Optuna the truth about early-stopped trials, through public APIs.

    Ray's OptunaSearch records a trial that ASHA stopped as COMPLETE with its partial value, so
    TPE would treat a 2-epoch score like a converged one. Our trials report ``finished=1`` on
    the epoch where the trainer itself ends; a trial completed without it (stopped by the
    scheduler) reaches Ray's ``on_trial_complete`` without a result, which Ray tells Optuna as
    PRUNED (no value, no error); TPE ranks it by its last intermediate value (reported every
    epoch by ``on_trial_result``).

    The Optuna storage is ours (in memory unless one is given): ``study()`` opens the search's
    study on it with ``optuna.load_study``, so nothing reads OptunaSearch's private state. It
    is pickled with the searcher's checkpoint, one object with the study's, so a restored
    search reads the same trials.
    """

    def __init__(
        self,
        space: Any = None,
        *,
        storage: optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.optuna_storage = storage if storage is not None else InMemoryStorage()
        self.optuna_study_name = study_name or "optuna"  # OptunaSearch's default name
        super().__init__(
            space=space, storage=self.optuna_storage, study_name=self.optuna_study_name, **kwargs
        )

    def study(self) -> optuna.Study:
        """The search's Optuna study (its trials, their states and values), read through
        Optuna's public ``load_study`` on the searcher's own storage."""
        return optuna.load_study(study_name=self.optuna_study_name, storage=self.optuna_storage)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if result and not error and not result.get("finished", 0):
            result = None  # stopped early: no value, no error, which OptunaSearch tells as PRUNED
        return super().on_trial_complete(trial_id, result=result, error=error)


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

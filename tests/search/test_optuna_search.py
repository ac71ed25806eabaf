"""AvspotOptunaSearch: ASHA-stopped trials reach Optuna as PRUNED, finished ones as COMPLETE; the
study is read through Optuna's public API and survives the searcher's checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from avspot.search.tuning.searcher import AvspotOptunaSearch

OPTUNA_SEARCH_LOGGER = "ray.tune.search.optuna.optuna_search"


def _space(trial):
    trial.suggest_categorical("fusion", ["video", "audio"])


def _grid_search(**kwargs) -> AvspotOptunaSearch:
    """A two-point grid with both points suggested as trials t1 and t2."""
    sampler = optuna.samplers.GridSampler({"fusion": ["video", "audio"]}, seed=0)
    search = AvspotOptunaSearch(space=_space, sampler=sampler, metric="m", mode="max", **kwargs)
    for t in ("t1", "t2"):
        assert search.suggest(t) is not None
    return search


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_stopped_trials_are_pruned_and_a_used_up_grid_is_not_an_error(caplog):
    search = _grid_search()
    search.on_trial_result("t1", {"m": 0.5, "training_iteration": 1})
    search.on_trial_complete("t1", {"m": 0.5, "finished": 1.0})
    search.on_trial_result("t2", {"m": 0.1, "training_iteration": 1})
    search.on_trial_result("t2", {"m": 0.2, "training_iteration": 2})
    with caplog.at_level(logging.WARNING):
        search.on_trial_complete("t2", {"m": 0.2, "finished": 0.0})  # the grid's last tell
    trials = search.study().get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert trials[0].value == 0.5
    assert trials[1].intermediate_values == {1: 0.1, 2: 0.2}  # what TPE ranks it by
    assert _warnings(caplog) == []  # the used-up grid's study.stop() is no failure


def test_completing_the_grids_last_point_logs_nothing(caplog):
    search = _grid_search()
    search.on_trial_complete("t1", {"m": 0.5, "finished": 1.0})
    with caplog.at_level(logging.WARNING):
        search.on_trial_complete("t2", {"m": 0.4, "finished": 1.0})  # the grid's last tell
    states = [t.state for t in search.study().get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert _warnings(caplog) == []


def test_a_stopped_trial_without_reports_and_an_errored_one():
    sampler = optuna.samplers.RandomSampler(seed=0)
    search = AvspotOptunaSearch(space=_space, sampler=sampler, metric="m", mode="max")
    for t in ("a", "b", "c"):
        search.suggest(t)
    search.on_trial_complete("a", {"m": 0.3, "finished": 0.0})  # stopped before any result
    search.on_trial_complete("b", error=True)  # as Tune tells a trial that raised
    search.on_trial_complete("c", None)  # Tune without a result: pruned as well
    states = [t.state for t in search.study().get_trials()]
    assert states == [TrialState.PRUNED, TrialState.FAIL, TrialState.PRUNED]


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_the_study_survives_the_searchers_checkpoint(tmp_path: Path, storage: str):
    """Tune checkpoints the searcher (``save``) and a resumed search restores it: the restored
    searcher reads the same study and goes on telling it (sqlite: the search's optuna.db)."""
    kwargs = {"study_name": "exp"}
    if storage == "sqlite":
        kwargs["storage"] = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    search = _grid_search(**kwargs)
    search.on_trial_result("t1", {"m": 0.1, "training_iteration": 1})
    search.on_trial_complete("t1", {"m": 0.1, "finished": 0.0})
    search.save(str(tmp_path / "searcher.pkl"))

    restored = AvspotOptunaSearch(
        space=_space, sampler=optuna.samplers.RandomSampler(), metric="m", mode="max"
    )
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.optuna_study_name == "exp"
    assert [t.state for t in restored.study().get_trials()] == [
        TrialState.PRUNED,
        TrialState.RUNNING,
    ]
    restored.on_trial_complete("t2", {"m": 0.7, "finished": 1.0})
    trials = restored.study().get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert trials[1].value == 0.7
    if storage == "sqlite":  # on disk, as `avspot search --resume` reads it
        on_disk = optuna.load_study(study_name="exp", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
        assert [t.state for t in on_disk.get_trials()] == [TrialState.PRUNED, TrialState.COMPLETE]

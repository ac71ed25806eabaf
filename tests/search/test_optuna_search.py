"""AvspotOptunaSearch: ASHA-stopped trials reach Optuna as PRUNED, finished ones as COMPLETE."""

from __future__ import annotations

import logging

import optuna
from optuna.trial import TrialState

from avspot.search.tuning.searcher import AvspotOptunaSearch


def _space(trial):
    trial.suggest_categorical("fusion", ["video", "audio"])


def _grid_search() -> AvspotOptunaSearch:
    """A two-point grid with both points suggested as trials t1 and t2."""
    sampler = optuna.samplers.GridSampler({"fusion": ["video", "audio"]}, seed=0)
    search = AvspotOptunaSearch(space=_space, sampler=sampler, metric="m", mode="max")
    for t in ("t1", "t2"):
        assert search.suggest(t) is not None
    return search


def test_stopped_trials_are_pruned_and_a_used_up_grid_is_not_an_error(caplog):
    search = _grid_search()
    search.on_trial_result("t1", {"m": 0.5, "training_iteration": 1})
    search.on_trial_complete("t1", {"m": 0.5, "finished": 1.0})
    search.on_trial_result("t2", {"m": 0.1, "training_iteration": 1})
    with caplog.at_level(logging.WARNING):
        search.on_trial_complete("t2", {"m": 0.1, "finished": 0.0})  # the grid's last tell
    states = [t.state for t in search._ot_study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED]
    assert "tell(PRUNED) failed" not in caplog.text


def test_completing_the_grids_last_point_logs_nothing(caplog):
    search = _grid_search()
    search.on_trial_complete("t1", {"m": 0.5, "finished": 1.0})
    with caplog.at_level(logging.WARNING):
        search.on_trial_complete("t2", {"m": 0.4, "finished": 1.0})  # the grid's last tell
    states = [t.state for t in search._ot_study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert "Study.stop" not in caplog.text

"""Every shipped search space: found by name, suggests only keys the trainer accepts."""

from __future__ import annotations

import optuna
import pytest

from avspot.avmodels.train_config import TrainConfig
from avspot.datasets.errors import DataError
from avspot.search.spaces import available_spaces, get_space
from avspot.search.tuning.searcher import SpaceFunction
from avspot.search.tuning.trial import TrialContext, trial_config

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _config(config: dict) -> TrainConfig:
    """What a trial builds from the suggestions: typed values merged into the base config
    (an unknown key or a value of the wrong type raises DataError)."""
    return trial_config(config, TrialContext(base=TrainConfig(), data_uri="x", metric="val_map"))


def test_shipped_spaces_are_listed():
    assert {"paper", "fusion", "smoke"} <= set(available_spaces())


def test_unknown_space_names_the_valid_ones():
    with pytest.raises(DataError, match="paper"):
        get_space("nope")


@pytest.mark.parametrize("name", available_spaces())
def test_space_has_a_question_and_yields_trainable_configs(name):
    space = get_space(name)
    assert space.question, f"{name}: the module docstring must say what question it asks"
    sampler = (
        optuna.samplers.GridSampler(space.grid, seed=0)
        if space.grid
        else optuna.samplers.RandomSampler(seed=0)
    )
    study = optuna.create_study(sampler=sampler, direction="maximize")
    fn = SpaceFunction(name)
    seen = set()
    n = min(12, space.grid_size or 12)
    for i in range(n):
        trial = study.ask()
        # In Tune the captor merges the suggested values with what the function returns.
        returned = fn(trial) or {}
        config = {**trial.params, **returned}
        assert config, name
        # Every key is a trainer or model field, every value typed: nothing is parsed.
        cfg = _config(config)
        seen.add(cfg.model.fusion)
        if i < n - 1:  # GridSampler stops the study on the last tell (only legal in optimize)
            study.tell(trial, 0.0)
    assert len(seen) > 1, f"{name}: suggestions all used fusion {seen}"


def test_paper_space_is_the_seed_grid():
    space = get_space("paper")
    assert space.grid_size == 9 * 2 * 3
    assert set(space.grid["window_s"]) == {20.0, 30.0, 60.0}


def test_fusion_space_is_conditional():
    """Cluster counts are suggested only for the pooling layers that have clusters."""
    from avspot.avmodels.pooling import POOLINGS

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        SpaceFunction("fusion")(trial)
        has_k = "clusters" in trial.params
        assert has_k == POOLINGS[trial.params["pooling"]].has_clusters
        seen.add(has_k)
        study.tell(trial, 0.0)
    assert seen == {True, False}  # both kinds drawn: the condition was exercised


def test_space_vocabulary_matches_the_model_registries():
    from avspot.avmodels.fusion_methods import FUSIONS
    from avspot.avmodels.pooling import POOLINGS
    from avspot.search.spaces import _common

    assert set(_common.FUSION_METHODS) == set(FUSIONS)
    assert set(_common.POOLINGS) == set(POOLINGS)


@pytest.mark.parametrize("name", [n for n in available_spaces() if get_space(n).baselines])
def test_baselines_are_complete_points_of_their_space(name):
    """Each baseline fixes exactly the parameters the space suggests for it, with legal values,
    and runs first: enqueued, the sampler hands them out in order."""
    space = get_space(name)
    assert space.grid is None, "baselines are for sampled spaces"
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0), direction="maximize")
    for b in space.baselines:
        study.enqueue_trial(b)
    for b in space.baselines:
        trial = study.ask()
        with _no_warning():
            config = {**trial.params, **(SpaceFunction(name)(trial) or {})}
        assert trial.params == b, f"{name}: baseline {b} left {set(trial.params) ^ set(b)} open"
        _config(config)
        study.tell(trial, 0.0)


def test_fusion_baselines_compare_fusion_with_each_modality_at_equal_settings():
    baselines = get_space("fusion").baselines
    fusions = [b["fusion"] for b in baselines]
    assert {"video", "audio"} <= set(fusions) and len(set(fusions)) > 2
    rest = [{k: v for k, v in b.items() if k != "fusion"} for b in baselines]
    assert all(r == rest[0] for r in rest)


class _no_warning:
    """Optuna warns when an enqueued value is outside a distribution: a broken baseline."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)

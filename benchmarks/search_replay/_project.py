"""Every import of project code (``avspot.*``) that the search-replay scripts make, in one place.

    avspot.avmodels.train_config   TrainConfig                         record.py
    avspot.avmodels.trainer        train                               record.py
    avspot.datasets.synth          synthesize                          record.py
    avspot.datasets.table          read_halves                         record.py
    avspot.datasets.manifest       read_manifest                       record.py
    avspot.search.plots            add_data_note                       replay.py
    avspot.search.spaces           get_space                           record.py
    avspot.search.tuning.searcher  AvspotOptunaSearch, tpe_sampler,    replay.py
                                   startup_trials, build_searcher
    avspot.search.tuning.tuner     SearchOptions                       tests (settings checks)

The imports sit inside small functions so that the replay, which needs none of torch, does not
import the trainer (and the recorder does not import Ray). The replay uses the search's own
TPE sampler and start-up rule (``search/tuning/searcher.py``), never a copy.
"""

from __future__ import annotations

from typing import Any


def trainer() -> tuple[Any, Any]:
    """(TrainConfig, train): ``train(cfg, train_halves, valid_halves, on_epoch)`` in process."""
    from avspot.avmodels.train_config import TrainConfig
    from avspot.avmodels.trainer import train

    return TrainConfig, train


def parse_sets(overrides: dict[str, str]) -> dict[str, Any]:
    """Recorded ``--set`` strings as the typed values the trainer takes (the CLI's parser)."""
    from avspot.search.cli.sets import parse_sets as parse

    return parse([f"{k}={v}" for k, v in overrides.items()])


def data() -> tuple[Any, Any, Any]:
    """(synthesize, read_halves, read_manifest) of the feature-table layer."""
    from avspot.datasets.manifest import read_manifest
    from avspot.datasets.synth import synthesize
    from avspot.datasets.table import read_halves

    return synthesize, read_halves, read_manifest


def get_space(name: str) -> Any:
    """A shipped search space (``paper``: the seed's grid, its DEFAULTS and POOLING_K)."""
    from avspot.search.spaces import get_space as get

    return get(name)


def optuna_search_cls() -> type:
    """AvspotOptunaSearch: OptunaSearch that tells Optuna PRUNED for trials ASHA stopped."""
    from avspot.search.tuning.searcher import AvspotOptunaSearch

    return AvspotOptunaSearch


def tuner_searcher(trials: int, seed: int) -> Any:
    """The ConcurrencyLimiter(AvspotOptunaSearch(TPE)) that ``avspot search`` builds for a
    non-grid space with ``trials`` trials and one trial at a time (for the settings check)."""
    from avspot.search.spaces import get_space as get
    from avspot.search.tuning.searcher import build_searcher

    space = get("fusion")
    return build_searcher(
        space,
        trials=trials,
        seed=seed,
        metric="val_average_map",
        study_name="settings-check",
        study_path=None,
        max_concurrent=1,
    )


def search_asha_defaults() -> tuple[int, float]:
    """(grace period, reduction factor) that ``avspot search`` gives ASHA by default."""
    from avspot.search.tuning.tuner import SearchOptions

    opts = SearchOptions(data="", space="fusion")
    return opts.grace_period, opts.reduction_factor


def tuner_startup_trials(trials: int) -> int:
    """TPE's random start-up trials in ``avspot search`` for a budget of ``trials``."""
    from avspot.search.tuning.searcher import startup_trials

    return startup_trials(trials)


def tpe_sampler(seed: int, n_startup_trials: int) -> Any:
    """The TPE sampler of ``avspot search``."""
    from avspot.search.tuning.searcher import tpe_sampler as sampler

    return sampler(seed, n_startup_trials)


def add_data_note(fig: Any, source: str) -> None:
    """The footnote every avspot figure carries to say which data it shows."""
    from avspot.search.plots import add_data_note as note

    note(fig, source)

"""Driver-side checks of `avspot search` that need no Ray."""

from __future__ import annotations

import pytest

from avspot.datasets.errors import DataError
from avspot.search import tuner
from avspot.search.tuner import SearchOptions


def test_default_concurrency_leaves_a_cpu_for_ray_data(monkeypatch):
    monkeypatch.setattr(tuner.os, "cpu_count", lambda: 2)
    opts = SearchOptions(data="x", space="smoke")
    assert tuner._max_concurrent(opts) == 1
    tuner._check_local_resources(opts)  # 1 trial x 1 CPU on 2 CPUs is fine
    monkeypatch.setattr(tuner.os, "cpu_count", lambda: 16)
    assert tuner._max_concurrent(opts) == 15


@pytest.mark.parametrize("concurrent, cpus_per_trial", [(2, 1.0), (1, 1.5)])
def test_a_plan_that_starves_ray_data_is_refused(monkeypatch, concurrent, cpus_per_trial):
    monkeypatch.setattr(tuner.os, "cpu_count", lambda: 2)
    opts = SearchOptions(
        data="x", space="smoke", max_concurrent=concurrent, cpus_per_trial=cpus_per_trial
    )
    with pytest.raises(DataError, match="Ray Data"):
        tuner._check_local_resources(opts)
    # A cluster address is the user's business: no check there.
    opts.address = "ray://head:10001"
    tuner._check_local_resources(opts)


def test_trial_summary_names_clusters_only_for_clustered_poolings():
    assert "clusters" not in tuner._summary({"pooling": "mean", "clusters": 16})
    assert "clusters=16" in tuner._summary({"pooling": "netvlad", "clusters": 16})


def test_trial_threads_share_the_machine_between_concurrent_trials(monkeypatch):
    """One trial on 2 CPUs also uses the CPU kept for Ray Data (idle while it trains/validates);
    15 concurrent trials on 16 CPUs get one thread each; a cluster trial uses its own CPUs."""
    monkeypatch.setattr(tuner.os, "cpu_count", lambda: 2)
    assert tuner._trial_threads(SearchOptions(data="x", space="smoke")) == 2
    monkeypatch.setattr(tuner.os, "cpu_count", lambda: 16)
    assert tuner._trial_threads(SearchOptions(data="x", space="smoke")) == 1
    opts = SearchOptions(data="x", space="smoke", cpus_per_trial=4.0)  # 3 trials: 5 threads
    assert tuner._trial_threads(opts) == 5
    opts.address = "auto"
    assert tuner._trial_threads(opts) == 0

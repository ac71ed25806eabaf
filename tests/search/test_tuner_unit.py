"""Driver-side checks of `avspot search` that need no Ray: concurrency, threads, summaries."""

from __future__ import annotations

import pytest

from avspot.datasets.errors import DataError
from avspot.search.tuning import resources
from avspot.search.tuning.callbacks import summary


def test_default_concurrency_leaves_a_cpu_for_ray_data(monkeypatch):
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 2)
    assert resources.max_concurrent(None, None) == 1
    resources.check_local_plan(None, 1, None)  # 1 trial x 1 CPU on 2 CPUs is fine
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 16)
    assert resources.max_concurrent(None, None) == 15


@pytest.mark.parametrize("concurrent, cpus_per_trial", [(2, 1.0), (1, 1.5)])
def test_a_plan_that_starves_ray_data_is_refused(monkeypatch, concurrent, cpus_per_trial):
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 2)
    with pytest.raises(DataError, match="Ray Data"):
        resources.check_local_plan(None, concurrent, cpus_per_trial)
    # A cluster address is the user's business: no check there.
    resources.check_local_plan("ray://head:10001", concurrent, cpus_per_trial)


def test_trial_summary_names_clusters_only_for_clustered_poolings():
    assert "clusters" not in summary({"pooling": "mean", "clusters": 16})
    assert "clusters=16" in summary({"pooling": "netvlad", "clusters": 16})


def test_trial_threads_share_the_machine_between_concurrent_trials(monkeypatch):
    """One trial on 2 CPUs also uses the CPU kept for Ray Data (idle while it trains/validates);
    15 concurrent trials on 16 CPUs get one thread each; a cluster trial uses its own CPUs."""
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 2)
    assert resources.trial_threads(None, resources.max_concurrent(None, None), None) == 2
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 16)
    assert resources.trial_threads(None, resources.max_concurrent(None, None), None) == 1
    concurrent = resources.max_concurrent(None, 4.0)  # 3 trials: 5 threads
    assert resources.trial_threads(None, concurrent, 4.0) == 5
    assert resources.trial_threads("auto", concurrent, 4.0) == 0

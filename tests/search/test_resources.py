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


def test_cluster_concurrency_comes_from_the_clusters_resources():
    cluster = {"CPU": 16.0, "GPU": 2.0}
    assert resources.cluster_concurrent(None, None, 0.5, cluster) == 4  # GPUs / GPUs per trial
    assert resources.cluster_concurrent(None, 4.0, 0.0, cluster) == 4  # CPUs / CPUs per trial
    assert resources.cluster_concurrent(3, None, 0.5, cluster) == 3  # as asked
    with pytest.raises(DataError, match="^max_concurrent: "):
        resources.cluster_concurrent(None, None, 1.0, {"CPU": 4.0})  # no GPU yet (autoscaling)


@pytest.mark.parametrize(
    "uri, storage, what",
    [
        ("sqlite:////tmp/mlflow.db", "s3://b/rr", "tracking URI sqlite"),
        ("http://127.0.0.1:5000", "s3://b/rr", "tracking URI http"),
        ("http://10.0.0.5:5000", "/tmp/rr", "^storage /tmp/rr"),
        ("http://10.0.0.5:5000", None, "^storage ./ray_results"),
    ],
)
def test_multi_node_search_refuses_what_other_nodes_cannot_reach(uri, storage, what):
    with pytest.raises(DataError, match=what) as err:
        resources.check_cluster_plan(uri, storage, nodes=3, head_runs_trials=True)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError):  # one node, but a head that runs no trial: the same
        resources.check_cluster_plan(uri, storage, nodes=1, head_runs_trials=False)
    resources.check_cluster_plan(uri, storage, nodes=1, head_runs_trials=True)  # one machine
    resources.check_cluster_plan("http://10.0.0.5:5000", "s3://b/rr", 3, True)  # shared: fine


def test_a_failed_trial_shows_the_end_of_its_error(tmp_path, monkeypatch):
    from avspot.search.tuning.callbacks import error_tail

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "verysecretvalue")
    f = tmp_path / "error.txt"
    f.write_text("\n".join([*(f"line {i}" for i in range(10)), "boom verysecretvalue"]))
    assert error_tail(str(f), 3) == ["line 8", "line 9", "boom ***"]
    assert error_tail(None) == [] and error_tail(str(tmp_path / "missing")) == []

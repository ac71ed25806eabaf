"""Driver-side checks of `avspot search` that need no Ray: concurrency, threads, summaries."""

from __future__ import annotations

import pytest

from avspot.datasets.errors import DataError
from avspot.search.tuning import resources
from avspot.search.tuning.callbacks import summary


def test_default_concurrency_uses_every_cpu(monkeypatch):
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 2)
    assert resources.max_concurrent(None, None) == 2  # the feed needs no CPU kept for Ray Data
    assert resources.max_concurrent(None, 2.0) == 1 and resources.max_concurrent(None, 4.0) == 1
    resources.check_local_plan(None, 2, None)  # 2 trials x 1 CPU on 2 CPUs is fine
    resources.check_local_plan(None, 1, 1.5)
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 16)
    assert resources.max_concurrent(None, None) == 16 and resources.max_concurrent(5, None) == 5


@pytest.mark.parametrize("concurrent, cpus_per_trial", [(3, 1.0), (2, 1.5), (1, 4.0)])
def test_a_plan_asking_for_more_cpus_than_the_machine_has_is_refused(
    monkeypatch, concurrent, cpus_per_trial
):
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 2)
    with pytest.raises(DataError, match="this machine has 2") as err:
        resources.check_local_plan(None, concurrent, cpus_per_trial)
    assert err.value.field == "max_concurrent"
    # A cluster address is the user's business: no check there.
    resources.check_local_plan("ray://head:10001", concurrent, cpus_per_trial)


def test_trial_summary_names_clusters_only_for_clustered_poolings():
    assert "clusters" not in summary({"pooling": "mean", "clusters": 16})
    assert "clusters=16" in summary({"pooling": "netvlad", "clusters": 16})


def test_trial_threads_share_the_machine_between_concurrent_trials(monkeypatch):
    """2 trials on 2 CPUs get one thread each, one trial both; 16 concurrent trials on 16 CPUs
    one each; trials of 4 CPUs 4; a cluster trial uses its own CPUs."""
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 2)
    assert resources.trial_threads(None, resources.max_concurrent(None, None), None) == 1
    assert resources.trial_threads(None, 1, None) == 2
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 16)
    assert resources.trial_threads(None, resources.max_concurrent(None, None), None) == 1
    concurrent = resources.max_concurrent(None, 4.0)  # 4 trials: 4 threads
    assert concurrent == 4 and resources.trial_threads(None, concurrent, 4.0) == 4
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

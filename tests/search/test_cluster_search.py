"""A search on a multi-node Ray cluster on one machine (``ray.cluster_utils.Cluster``: real
raylets): a CPU head and two worker nodes that each declare one GPU, the table and Tune's
storage on the SeaweedFS S3 server, one ``mlflow server`` whose artifacts go to S3. A worker
node is removed mid-search; its trial restarts on the other node from its checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from avspot.datasets.storage import resolve
from avspot.datasets.synth import synthesize
from avspot.search.tracking.names import TAG_NODE_ID, TAG_ROLE, TAG_TRIAL_ID
from tests.support import testing as F
from tests.support.s3server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MLFLOW = str(Path(sys.executable).with_name("mlflow"))
MAX_EPOCHS = 3  # the smoke space's own
EXPERIMENT = "cluster-search"


@pytest.fixture()
def mlflow_on_s3(s3, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(tracking URI, artifacts URI): an MLflow server on loopback whose artifacts go to S3."""
    artifacts = f"s3://{s3.bucket}/mlartifacts-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        **s3.env,
        "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    cmd = F.mlflow_server_cmd(port, f"sqlite:///{tmp_path / 'mlflow.db'}", artifacts)
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        F.wait_http(f"http://127.0.0.1:{port}/health", proc)
        yield f"http://127.0.0.1:{port}", artifacts
    finally:
        F.stop_group(proc)
        log.close()


def _keys(uri: str, endpoint: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, root = resolve(uri, endpoint)
    return [i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))]


class _NodeLoss(threading.Thread):
    """Removes a worker node as soon as one of its trials has logged an epoch and the driver
    holds that trial's checkpoint (``checkpoint_saved``, from Tune's ``on_checkpoint``)."""

    def __init__(self, cluster, workers: dict, tracking: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.workers, self.tracking = cluster, workers, tracking
        self.removed: tuple[str, str] | None = None  # (node id, trial id)
        self.before: dict[str, tuple[str | None, int]] = {}
        self.stop = threading.Event()
        self.checkpointed: set[str] = set()  # trials whose checkpoint the driver registered
        self.saved = threading.Condition()

    def checkpoint_saved(self, trial_id: str) -> None:
        with self.saved:
            self.checkpointed.add(trial_id)
            self.saved.notify_all()

    def run(self) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(self.tracking)
        while not self.stop.is_set() and self.removed is None:
            exp = client.get_experiment_by_name(EXPERIMENT)
            runs = (
                client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = 'trial'")
                if exp
                else []
            )
            for r in runs:
                node = r.data.tags.get(TAG_NODE_ID)
                if (
                    node in self.workers
                    and r.info.status == "RUNNING"
                    and "val_map" in r.data.metrics
                ):
                    trial_id = r.data.tags[TAG_TRIAL_ID]
                    with self.saved:  # the epoch's checkpoint follows its metrics
                        self.saved.wait_for(  # a timeout only as a safety net
                            lambda t=trial_id: t in self.checkpointed or self.stop.is_set(),
                            timeout=300,
                        )
                    self.before = {  # trial -> (node, epochs logged) when the node goes
                        x.data.tags[TAG_TRIAL_ID]: (
                            x.data.tags.get(TAG_NODE_ID),
                            len(client.get_metric_history(x.info.run_id, "val_map")),
                        )
                        for x in runs
                    }
                    self.removed = (node, r.data.tags[TAG_TRIAL_ID])
                    self.cluster.remove_node(self.workers[node], allow_graceful=False)
                    return
            time.sleep(0.5)


def test_search_on_a_multi_node_cluster_survives_a_node_loss(s3, mlflow_on_s3, monkeypatch):
    import ray
    from mlflow import MlflowClient
    from ray.cluster_utils import Cluster

    from avspot.search.tracking.registry import load_spotter
    from avspot.search.tuning.tuner import SearchOptions, run_search

    tracking, artifacts = mlflow_on_s3
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    table = s3.uri("cluster-table")
    synthesize(table, games=4, seed=2, half_minutes=3, endpoint=s3.endpoint)
    storage = s3.uri("ray-results")

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    workers = [cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    loss = _NodeLoss(cluster, {w.node_id: w for w in workers}, tracking)
    from avspot.search.tuning.callbacks import ProgressCallback

    monkeypatch.setattr(  # the driver's word that a checkpoint is registered, not a guess in time
        ProgressCallback,
        "on_checkpoint",
        lambda self, trial, **_: loss.checkpoint_saved(trial.trial_id),
    )
    try:
        loss.start()
        result = run_search(
            SearchOptions(
                data=table,
                space="smoke",
                trials=3,
                max_epochs=MAX_EPOCHS,
                gpus_per_trial=0.5,
                cpus_per_trial=0.5,
                address=cluster.address,
                storage=storage,
                endpoint=s3.endpoint,
                experiment=EXPERIMENT,
                grace_period=MAX_EPOCHS,  # no early stopping: every trial runs every epoch
            ),
            log=lambda line: None,  # -s shows nothing
        )
    finally:
        loss.stop.set()
        ray.shutdown()
        cluster.shutdown()

    assert loss.removed is not None, "no trial reached a worker node's first epoch"
    lost_node, lost_trial = loss.removed
    assert lost_trial in loss.checkpointed  # the node went after the driver held a checkpoint
    assert result.trials == 3 and not any(r["error"] for r in result.rows)
    for row in result.rows:  # the leaderboard reads each trial's last report: all finished
        assert row["finished"] and row["epochs"] == MAX_EPOCHS, row
        assert row["last"]["epoch"] == MAX_EPOCHS and 0.0 <= row["best"] <= 1.0, row
        # Tune's own result.json of a trial on the lost node sometimes lacks the epoch it
        # reported just before the loss (2 of 7 runs here: [2, 3]): on one machine the
        # "nodes" share the local trial directory that Tune syncs to S3. So the leaderboard
        # never reads that history (tuning.leaderboard), and MLflow, below, must hold every
        # epoch exactly once: restored, not rerun.

    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_ROLE}` = 'trial'")
    assert len(runs) == 3  # one run per trial, the restarted one reopened
    worker_ids = {w.node_id for w in workers}
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags[TAG_NODE_ID] in worker_ids  # never the head: it has no GPU
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_map")]
        assert steps == list(range(1, MAX_EPOCHS + 1)), steps  # no epoch logged twice
    (moved,) = [r for r in runs if r.data.tags[TAG_TRIAL_ID] == lost_trial]
    assert moved.data.tags[TAG_NODE_ID] != lost_node  # finished on the surviving worker
    name = {w.node_id: f"worker {i + 1}" for i, w in enumerate(workers)}
    print(  # shown with -s: placement before the loss, and where each trial finished
        "when worker node "
        + name[lost_node]
        + " went: "
        + ", ".join(
            f"{t} on {name.get(n, '?')} after {e} epoch(s)"
            for t, (n, e) in sorted(loss.before.items())
        )
        + "; finished: "
        + ", ".join(
            f"{r.data.tags[TAG_TRIAL_ID]} on {name[r.data.tags[TAG_NODE_ID]]}"
            for r in sorted(runs, key=lambda r: r.data.tags[TAG_TRIAL_ID])
        )
    )

    keys = _keys(storage, s3.endpoint)
    assert any("checkpoint_" in k for k in keys)  # Tune's checkpoints in the bucket
    assert any(k.endswith("/MLmodel") for k in _keys(artifacts, s3.endpoint))  # models in S3
    model, cfg = load_spotter("models:/avspot-spotter@challenger")  # through the server
    assert model.config == cfg

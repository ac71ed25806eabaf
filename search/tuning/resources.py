"""How many trials run at once, with how many threads, and on which Ray.

A cluster (an ``address``): trials run at once as the cluster's resources allow for the per-trial
request (its GPUs when a trial asks for some, else its CPUs); a trial runs as many torch
threads as the CPUs it holds. A search on more than one machine (or on a head that runs no
trials) cannot use a sqlite or ``file:`` tracking store, a loopback tracking server or local
storage: the trials run on other machines and would not see them (``check_cluster_plan``;
raylets started on one machine, as ``ray.cluster_utils.Cluster`` does, share its files).

Local Ray: each trial takes ``cpus_per_trial`` (default 1), and as many trials run at once as
the machine's CPUs hold; a plan asking for more at once than that is refused (the rest would
only queue, and the searcher would suggest them before any result came back). Until the trial
feed stopped using Ray Data (``tuning/feed.py``) one CPU had to stay free for Ray Data's read
tasks, or every trial waited for its first batch forever; without that rule, 4 smoke trials 2 at
a time on 2 CPUs took 29.7 s against 102 s one at a time.
"""

from __future__ import annotations

import math
import os

from avspot.datasets.errors import DataError

DEFAULT_CPUS_PER_TRIAL = 1.0


def cpus_per_trial(requested: float | None) -> float:
    return requested if requested is not None else DEFAULT_CPUS_PER_TRIAL


def max_concurrent(requested: int | None, cpus: float | None) -> int:
    """Trials at once on local Ray: as asked, else as many as the machine's CPUs hold."""
    if requested is not None:
        return requested
    machine = os.cpu_count() or 1
    return max(1, int(machine // cpus_per_trial(cpus)))


def cluster_concurrent(
    requested: int | None, cpus: float | None, gpus: float, resources: dict[str, float]
) -> int:
    """Trials at once on a cluster whose total resources are ``resources`` (``ray.
    cluster_resources()``): as asked, else what its GPUs (when trials take GPUs) or CPUs hold.
    An autoscaling cluster that has no room for a trial yet needs ``max_concurrent``."""
    if requested is not None:
        return requested
    if gpus > 0:
        n, what = int(resources.get("GPU", 0) // gpus), f"{resources.get('GPU', 0):g} GPUs"
    else:
        n = int(resources.get("CPU", 0) // cpus_per_trial(cpus))
        what = f"{resources.get('CPU', 0):g} CPUs"
    if n < 1:
        raise DataError(
            f"max_concurrent: the cluster has {what} now, too few for one trial (an autoscaling "
            "cluster adds workers on demand): set how many trials run at once",
            field="max_concurrent",
        )
    return n


def check_cluster_plan(
    tracking_uri: str | None, storage: str | None, nodes: int, head_runs_trials: bool
) -> None:
    """Refuse, at once, tracking and storage that trials on other nodes cannot reach."""
    if nodes <= 1 and head_runs_trials:
        return
    where = f"a cluster of {nodes} machines" if nodes > 1 else "a cluster whose head runs no trials"
    if tracking_uri is not None:
        from urllib.parse import urlsplit

        host = urlsplit(tracking_uri).hostname or ""
        if tracking_uri.startswith(("sqlite:", "file:")) or host in (
            "127.0.0.1",
            "localhost",
            "::1",
        ):
            raise DataError(
                f"MLflow tracking URI {tracking_uri.split('://')[0]}://... cannot be reached from "
                f"{where}: set MLFLOW_TRACKING_URI to the shared MLflow server (http://<head>:5000)"
            )
    if not (storage or "").startswith("s3://"):
        raise DataError(
            f"storage {storage or './ray_results'}: local storage on {where}; trials on other "
            "nodes write their checkpoints elsewhere: use s3://BUCKET/ray_results",
            field="storage",
        )


def trial_threads(address: str | None, concurrent: int, cpus: float | None) -> int:
    """Torch threads per trial on local Ray: the machine's CPUs shared by the concurrent trials
    (0 on a cluster: a trial then uses the CPUs it holds, rounded up)."""
    if address:
        return 0
    machine = os.cpu_count() or 1
    return max(1, math.ceil(cpus_per_trial(cpus)), machine // max(1, concurrent))


def check_local_plan(address: str | None, concurrent: int, cpus: float | None) -> None:
    """On local Ray, refuse a plan that asks for more CPUs at once than the machine has."""
    if address:
        return
    machine = os.cpu_count() or 1
    need = concurrent * cpus_per_trial(cpus)
    if need > machine:
        raise DataError(
            f"max_concurrent {concurrent} x cpus_per_trial {cpus_per_trial(cpus):g} needs "
            f"{need:g} CPUs at once and this machine has {machine}: the trials beyond that "
            "would only queue; lower one of them",
            field="max_concurrent",
        )


def init_ray(address: str | None) -> None:
    """Join the cluster at ``address``, or start a local Ray sized for this machine (object
    store 1 GiB unless $AVSPOT_OBJECT_STORE_BYTES; Ray's default takes 30% of RAM)."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(
            # "local": a Ray of our own. Without it ray.init joins any Ray already running on
            # the machine (another search's, which ends when that search does).
            address="local",
            num_cpus=os.cpu_count(),
            object_store_memory=int(os.environ.get("AVSPOT_OBJECT_STORE_BYTES", 1 << 30)),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


def cluster_layout() -> tuple[dict[str, float], int, bool]:
    """(total resources, machines, whether this driver's node offers CPUs to trials) of the
    Ray this process is connected to. Machines are distinct node addresses: several raylets on
    one machine (``ray.cluster_utils.Cluster``) share its files and loopback."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    here = ray.get_runtime_context().get_node_id()
    own = next((n for n in nodes if n.get("NodeID") == here), {})
    machines = len({n.get("NodeManagerAddress") for n in nodes})
    return dict(ray.cluster_resources()), machines, own.get("Resources", {}).get("CPU", 0) > 0


def check_builds(expected: str, timeout_s: float = 120.0) -> None:
    """Refuse at once a cluster whose nodes run another avspot than the driver: one zero-CPU
    task pinned to every alive node reports its build id. (Nodes that join later are checked
    by each trial: ``tuning.trial``.)"""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def node_build() -> str:
        from avspot.search.tracking.wheel import build_id

        return build_id()

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = {
        n["NodeManagerAddress"]: node_build.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote()
        for n in nodes
    }
    for ip, ref in refs.items():
        try:
            theirs = ray.get(ref, timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - no avspot there, or the node is unreachable
            raise DataError(
                f"node {ip}: cannot run avspot ({type(exc).__name__}); install the "
                "same wheel on every node (make cluster-dist)"
            ) from None
        if theirs != expected:
            raise DataError(
                f"node {ip} runs avspot build {theirs[:12]}, the driver {expected[:12]}: install "
                "the same wheel on every node (make cluster-dist)"
            )

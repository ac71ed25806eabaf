"""How many trials run at once, with how many threads, and on which Ray.

Local Ray: each trial takes ``cpus_per_trial`` (default 1) and one CPU stays free for Ray
Data's read tasks: with less, its read and windowing tasks never get scheduled and every trial
waits for its first batch forever (seen on 2 CPUs with 2 trials of 1 CPU, and with 1 trial of
1.5 CPUs), so such a plan is refused. The CPU kept for Ray Data is busy only while a trial
reads an epoch (which starts during the previous epoch's validation), so the trials' torch
threads use it too: 2 threads for 1 trial on 2 CPUs gave 1.4-1.6x faster epochs.
"""

from __future__ import annotations

import math
import os

from avspot.datasets.errors import DataError

DATA_CPUS = 1.0  # CPUs that Ray Data needs free beside the trials on local Ray
DEFAULT_CPUS_PER_TRIAL = 1.0


def cpus_per_trial(requested: float | None) -> float:
    return requested if requested is not None else DEFAULT_CPUS_PER_TRIAL


def max_concurrent(requested: int | None, cpus: float | None) -> int:
    """Trials at once: as asked, else as many as fit beside Ray Data's CPU on this machine."""
    if requested is not None:
        return requested
    machine = os.cpu_count() or 1
    return max(1, int((machine - DATA_CPUS) // cpus_per_trial(cpus)))


def trial_threads(address: str | None, concurrent: int, cpus: float | None) -> int:
    """Torch threads per trial on local Ray: the machine's CPUs shared by the concurrent trials
    (0 on a cluster: a trial then uses the CPUs it was given)."""
    if address:
        return 0
    machine = os.cpu_count() or 1
    return max(1, math.ceil(cpus_per_trial(cpus)), machine // max(1, concurrent))


def check_local_plan(address: str | None, concurrent: int, cpus: float | None) -> None:
    """On local Ray, refuse a plan that leaves Ray Data no CPU (the search would hang)."""
    if address:
        return
    machine = os.cpu_count() or 1
    need = concurrent * cpus_per_trial(cpus)
    if need > machine - DATA_CPUS and machine > DATA_CPUS:
        raise DataError(
            f"--max-concurrent {concurrent} x --cpus-per-trial {cpus_per_trial(cpus):g} leaves "
            f"less than {DATA_CPUS:g} of this machine's {machine} CPUs for Ray Data's read "
            "tasks: the trials would wait for data forever; lower one of them"
        )


def init_ray(address: str | None) -> None:
    """Join the cluster at ``address``, or start a local Ray sized for this machine (object
    store 1 GiB unless $AVSPOT_OBJECT_STORE_BYTES; Ray's default takes 30% of RAM)."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=os.cpu_count(),
            object_store_memory=int(os.environ.get("AVSPOT_OBJECT_STORE_BYTES", 1 << 30)),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )

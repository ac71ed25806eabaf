"""Run lifecycle: the search's parent run (driver side) and the runs of its trials.

Driver: ``search_parent_run(...)`` opens (or, on resume, reopens) the parent run;
``KillStoppedRunsCallback(parent_run_id)`` ends the child runs of trials that the scheduler
stopped; ``finish_search_run(...)`` closes the parent run. Inside a trial,
``tracking.trial.MLflowTrialCallback`` records the child run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avspot.search.tracking.client import (
    flush_logs,
    get_client,
    get_or_create_experiment,
    log_metrics,
    log_params,
    log_table_input,
    retry,
    run_tags,
)
from avspot.search.tracking.names import (
    TAG_DATA_SOURCE,
    TAG_FINGERPRINT,
    TAG_PARENT,
    TAG_RESUMED,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_TRIAL_ID,
    TERMINAL_STATUSES,
)
from avspot.search.tracking.scrub import scrub

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

    from avspot.datasets.manifest import Manifest


def start_search_run(
    experiment: str,
    params: Mapping[str, Any],
    tags: Mapping[str, Any] | None = None,
    *,
    run_name: str | None = None,
    uri: str | None = None,
    data_uri: str | None = None,
    manifest: Manifest | None = None,
) -> str:
    """Create the search's parent run in experiment ``experiment`` (created if missing).

    ``params``: space, data URI, budget, Ray address, ... With ``manifest`` the table is recorded
    as the run's dataset input and its source and fingerprint as tags (the registry and the
    report read them). MLflow's context tags and the code version are added; secret-looking keys
    and values are removed. Returns the parent run id.
    """
    client = get_client(uri)
    exp_id = get_or_create_experiment(client, experiment)
    all_tags: dict[str, Any] = {TAG_ROLE: "search", TAG_SEARCH: experiment}
    if manifest is not None:
        all_tags[TAG_DATA_SOURCE] = manifest.source
        all_tags[TAG_FINGERPRINT] = manifest.fingerprint
    all_tags.update(tags or {})
    run = retry(
        client.create_run,
        exp_id,
        tags=run_tags(all_tags),
        run_name=run_name or f"search-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    run_id = run.info.run_id
    log_params(client, run_id, params)
    if manifest is not None and data_uri is not None:
        log_table_input(client, run_id, data_uri, manifest)
    flush_logs(client)
    return run_id


def search_parent_run(
    experiment: str,
    params: Mapping[str, Any],
    tags: Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    uri: str | None = None,
    data_uri: str | None = None,
    manifest: Manifest | None = None,
) -> tuple[str, str]:
    """(parent run id, experiment id) for a search: a new parent run, or with ``resume`` the
    latest parent run of the experiment reopened (RUNNING again), if there is one."""
    client = get_client(uri)
    exp_id = get_or_create_experiment(client, experiment)
    if resume:
        runs = client.search_runs(
            [exp_id],
            filter_string=f"tags.`{TAG_ROLE}` = 'search'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs:
            run_id = runs[0].info.run_id
            if runs[0].info.status != "RUNNING":
                client.update_run(run_id, status="RUNNING")
            client.set_tag(run_id, TAG_RESUMED, time.strftime("%Y-%m-%dT%H:%M:%S"))
            return run_id, exp_id
    run_id = start_search_run(
        experiment, params, tags, uri=uri, data_uri=data_uri, manifest=manifest
    )
    return run_id, exp_id


def child_runs(client: MlflowClient, parent_run_id: str, experiment_id: str | None = None) -> list:
    """All trial runs nested under ``parent_run_id``."""
    from mlflow.entities import ViewType

    exp_id = experiment_id or client.get_run(parent_run_id).info.experiment_id
    return client.search_runs(
        [exp_id],
        filter_string=f"tags.`{TAG_PARENT}` = '{parent_run_id}'",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=50000,
    )


def wait_for_server(uri: str | None = None) -> None:
    """Return once the tracking server answers; while it is down (an outage during a long
    search) wait with backoff, at most $AVSPOT_MLFLOW_OUTAGE_S seconds (then
    TrackingUnavailable). The driver calls it before registering and closing a search's runs."""
    retry(get_client, uri)


def open_trial_run(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    trial_id: str | None,
    tags: Mapping[str, str],
    run_name: str | None = None,
) -> tuple[str, int]:
    """(run id, last step logged) for trial ``trial_id`` under ``parent_run_id``: a new child
    run, or the trial's existing one reopened (RUNNING again) when its process restarts (a
    worker killed and Tune retrying the trial from its last checkpoint, or ``--resume``). A
    trial stays one run, and the caller skips the epochs up to the step returned: an epoch that
    was logged before the restart and is trained again from the checkpoint is not logged twice.
    """
    if trial_id:
        flt = f"tags.`{TAG_TRIAL_ID}` = '{trial_id}' and tags.`{TAG_PARENT}` = '{parent_run_id}'"
        found = retry(
            client.search_runs,
            [experiment_id],
            filter_string=flt,
            order_by=["attributes.start_time ASC"],
            max_results=10,
        )
        if found:
            run = found[0]
            if run.info.status != "RUNNING":
                retry(client.update_run, run.info.run_id, status="RUNNING")
            steps = [
                m.step
                for key in run.data.metrics
                for m in retry(client.get_metric_history, run.info.run_id, key)
            ]
            return run.info.run_id, max(steps, default=0)
    run = retry(client.create_run, experiment_id, tags=dict(tags), run_name=run_name)
    return run.info.run_id, 0


def finish_search_run(
    run_id: str,
    status: str = "FINISHED",
    metrics: Mapping[str, Any] | None = None,
    artifacts: Mapping[str, str | os.PathLike] | Iterable[str | os.PathLike] | None = None,
    *,
    tags: Mapping[str, Any] | None = None,
    uri: str | None = None,
) -> None:
    """End the parent run: summary metrics, tags, artifacts, and ``status``.

    ``artifacts``: paths (logged at the root) or {artifact_dir: path}. Child runs still RUNNING
    (trial processes killed without closing theirs) are marked KILLED: no run stays RUNNING.
    """
    check_status(status)
    client = get_client(uri)
    if metrics:
        log_metrics(client, run_id, metrics)
    flush_logs(client)
    for key, value in scrub(tags or {}).items():
        retry(client.set_tag, run_id, key, value)
    items = (
        artifacts.items()
        if isinstance(artifacts, Mapping)
        else ((None, p) for p in artifacts or ())
    )
    for folder, path in items:
        path = Path(path)
        if path.is_dir():
            retry(client.log_artifacts, run_id, str(path), folder or path.name)
        else:
            retry(client.log_artifact, run_id, str(path), folder)
    for child in retry(child_runs, client, run_id):
        if child.info.status in ("RUNNING", "SCHEDULED"):
            retry(client.set_terminated, child.info.run_id, "KILLED")
    retry(client.set_terminated, run_id, status)


def end_trial_runs(
    trial_id: str, status: str, parent_run_id: str, *, uri: str | None = None
) -> int:
    """Mark the still-RUNNING child runs of Ray trial ``trial_id`` under ``parent_run_id`` as
    ``status``; returns how many (one search's experiment only, never the whole store)."""
    check_status(status)
    client = get_client(uri)
    exp_id = client.get_run(parent_run_id).info.experiment_id
    flt = f"tags.`{TAG_TRIAL_ID}` = '{trial_id}' and tags.`{TAG_PARENT}` = '{parent_run_id}'"
    n = 0
    for run in client.search_runs([exp_id], filter_string=flt, max_results=1000):
        if run.info.status in ("RUNNING", "SCHEDULED"):
            retry(client.set_terminated, run.info.run_id, status)
            n += 1
    return n


def check_status(status: str) -> None:
    """ValueError unless ``status`` is a terminal run status."""
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"run status {status!r}: expected one of {', '.join(TERMINAL_STATUSES)}")

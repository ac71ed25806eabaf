"""Model registry: `avspot-spotter` versions, the `challenger` and `champion` aliases.

A search registers its best trial's model as a new version with alias `challenger`; `promote`
moves `champion` to the experiment's latest challenger only when its validation metric beats
the current champion's on the same data fingerprint (or with `force`). Aliases, not stages.

`avspot promote` exit codes: 0 promoted (or already champion); 1 refused (not better, or the two
were measured on different data / with different metrics); 2 bad input (unknown experiment, no
challenger, unreachable server).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avspot.datasets.errors import DataError
from avspot.datasets.storage import CLOCK
from avspot.search.tracking.client import get_client, retry
from avspot.search.tracking.names import (
    CHALLENGER,
    CHAMPION,
    DEFAULT_METRIC,
    MODEL_NAME,
    PROMOTE_LOCK_SUFFIX,
    TAG_FINGERPRINT,
    TAG_MODEL_URI,
    TAG_TRIAL_ID,
    V_EXPERIMENT,
    V_FINGERPRINT,
    V_METRIC,
    V_METRIC_SOURCE,
    V_METRIC_VALUE,
    V_ROLE,
    V_SEARCH,
)
from avspot.search.tracking.runs import child_runs
from avspot.search.tracking.scrub import scrub, scrub_text

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from torch import nn

    from avspot.avmodels.config import ModelConfig

LOCK_WAIT_S = 60.0  # how long `promote` waits for a concurrent one to finish
LOCK_STALE_S = 300.0  # a promotion lock this old was left by a process that died


@dataclass
class PromotionResult:
    """What `promote` did: `promoted` False means refused; `message` says why."""

    promoted: bool
    alias: str
    version: str | None
    previous: str | None
    message: str


def _model_source(client: MlflowClient, run_id: str) -> tuple[str, str | None]:
    """(source URI, model id) of the run's logged model (`models:/<id>`, else runs:/<id>/model)."""
    run = client.get_run(run_id)
    uri = run.data.tags.get(TAG_MODEL_URI)
    if uri and uri.startswith("models:/"):
        return uri, uri[len("models:/") :]
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string="name = 'model'"
    )
    for m in models:
        if m.source_run_id == run_id:
            return f"models:/{m.model_id}", m.model_id
    raise DataError(f"MLflow run {run_id} has no logged model (did the trial complete?)")


def register_challenger(
    experiment: str,
    run_id: str,
    metrics: Mapping[str, Any],
    fingerprint: str,
    search_name: str,
    *,
    metric: str = DEFAULT_METRIC,
    model_name: str = MODEL_NAME,
    alias: str = CHALLENGER,
    uri: str | None = None,
) -> ModelVersion:
    """Register run `run_id`'s model as a new version of `model_name` with alias `alias`.

    Version tags: experiment, search, data fingerprint, the metric's name and value. `metrics`
    holds the run's metrics; the value is `full_<metric>` (the kept epoch scored in full), else
    `best_<metric>`, else `<metric>`.
    """
    from mlflow.exceptions import MlflowException

    client = get_client(uri)
    source, model_id = _model_source(client, run_id)
    # the kept epoch scored in full when the trial logged it (a search validates epochs cheaper)
    key = next(
        (k for k in (f"full_{metric}", f"best_{metric}", metric) if metrics.get(k) is not None),
        metric,
    )
    value = metrics.get(key)
    tags = {
        V_EXPERIMENT: experiment,
        V_SEARCH: search_name,
        V_FINGERPRINT: fingerprint,
        V_METRIC: metric,
        V_METRIC_VALUE: "" if value is None else repr(float(value)),
        V_METRIC_SOURCE: key,
        V_ROLE: alias,
    }
    try:
        retry(client.get_registered_model, model_name)
    except MlflowException:
        with contextlib.suppress(MlflowException):  # created concurrently
            retry(
                client.create_registered_model,
                model_name,
                description="avspot action spotter: features of a half in, spots out. "
                "Aliases: champion (promoted), challenger (best of the latest search).",
            )
    mv = retry(  # two searches finishing at once on one sqlite file: 'database is locked'
        client.create_model_version,
        model_name,
        source,
        run_id=run_id,
        tags=scrub(tags),
        model_id=model_id,
        description=f"best trial of search {search_name} in experiment {experiment}",
    )
    retry(client.set_registered_model_alias, model_name, alias, mv.version)
    return mv


def _metric_value(mv: ModelVersion) -> float | None:
    try:
        return float(mv.tags.get(V_METRIC_VALUE, ""))
    except ValueError:
        return None


def latest_challenger(
    client: MlflowClient, experiment: str, model_name: str = MODEL_NAME
) -> ModelVersion | None:
    """The newest version registered as challenger by a search of `experiment`."""
    versions = client.search_model_versions(
        f"name = '{model_name}' and tags.`{V_EXPERIMENT}` = '{experiment}'"
    )
    versions = [v for v in versions if v.tags.get(V_ROLE) == CHALLENGER]
    return max(versions, key=lambda v: int(v.version), default=None)


def _alias_version(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def promote(
    experiment: str,
    alias: str = CHAMPION,
    force: bool = False,
    *,
    model_name: str = MODEL_NAME,
    uri: str | None = None,
    out: Callable[[str], Any] | None = None,
) -> PromotionResult:
    """Move `alias` to `experiment`'s latest challenger when it beats the current holder.

    Refused (``promoted`` False) when the holder was measured on another data fingerprint or
    with another metric, or scores at least as well; `force` promotes anyway. No experiment or
    no challenger: DataError.
    """
    client = get_client(uri)
    if client.get_experiment_by_name(experiment) is None:
        raise DataError(f"MLflow experiment {experiment!r} not found")
    if latest_challenger(client, experiment, model_name) is None:
        raise DataError(
            f"experiment {experiment!r} has no registered challenger of {model_name!r}; "
            "run a search first"
        )
    with promotion_lock(client, model_name, alias):  # compare and set as one step
        return _promote_locked(client, experiment, alias, force, model_name, out)


def _promote_locked(
    client: MlflowClient,
    experiment: str,
    alias: str,
    force: bool,
    model_name: str,
    out: Callable[[str], Any] | None,
) -> PromotionResult:
    """``promote`` while holding the promotion lock: everything read here is current."""
    challenger = latest_challenger(client, experiment, model_name)
    assert challenger is not None  # versions are never removed by avspot
    current = _alias_version(client, model_name, alias)
    cv, hv = _metric_value(challenger), None
    name = challenger.tags.get(V_METRIC, DEFAULT_METRIC)
    reason = ""
    if current is not None and current.version == challenger.version:
        res = PromotionResult(
            True,
            alias,
            str(challenger.version),
            str(current.version),
            f"{model_name} version {challenger.version} already holds @{alias}",
        )
        _say(out, res.message)
        return res
    if current is not None:
        hv = _metric_value(current)
        same_data = current.tags.get(V_FINGERPRINT) == challenger.tags.get(V_FINGERPRINT)
        same_metric = current.tags.get(V_METRIC, DEFAULT_METRIC) == name
        if not same_data:
            reason = (
                f"@{alias} (version {current.version}) was measured on data "
                f"{current.tags.get(V_FINGERPRINT, '?')[:12]}, the challenger (version "
                f"{challenger.version}) on {challenger.tags.get(V_FINGERPRINT, '?')[:12]}: "
                "not comparable"
            )
        elif not same_metric:
            reason = (
                f"@{alias} was selected on {current.tags.get(V_METRIC)}, the challenger on "
                f"{name}: not comparable"
            )
        elif cv is None or (hv is not None and cv <= hv):
            reason = (
                f"challenger version {challenger.version} {name}={_fmt(cv)} does not beat "
                f"@{alias} version {current.version} {name}={_fmt(hv)}"
            )
    if reason and not force:
        res = PromotionResult(
            False,
            alias,
            str(challenger.version),
            str(current.version) if current else None,
            f"refused: {reason}",
        )
        _say(out, res.message)
        return res
    client.set_registered_model_alias(model_name, alias, challenger.version)
    client.set_model_version_tag(
        model_name,
        challenger.version,
        f"avspot.promoted_{alias}",
        time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    if force and reason:
        client.set_model_version_tag(
            model_name, challenger.version, "avspot.forced", scrub_text(reason)
        )
    prev = str(current.version) if current else None
    shown = challenger.tags.get(V_METRIC_SOURCE, name)  # full_val_average_map: the kept epoch
    msg = (
        f"promoted {model_name} version {challenger.version} ({shown}={_fmt(cv)}) to @{alias}"
        + (f", replacing version {prev} ({shown}={_fmt(hv)})" if prev else " (first holder)")
        + (" [forced]" if force and reason else "")
    )
    res = PromotionResult(True, alias, str(challenger.version), prev, msg)
    _say(out, msg)
    return res


@contextlib.contextmanager
def promotion_lock(
    client: MlflowClient,
    model_name: str,
    alias: str,
    *,
    wait_s: float = LOCK_WAIT_S,
    stale_s: float = LOCK_STALE_S,
) -> Iterator[None]:
    """Hold the right to move ``alias`` of ``model_name`` while comparing and moving it.

    Why a lock, and why this one: two concurrent ``promote`` calls each read the holder, each
    judge their challenger better, and the later write wins, even when it is the worse model.
    MLflow has no conditional update (no compare-and-set on aliases or tags), and re-reading the
    alias after setting it cannot undo a worse challenger's late write. Creating a registered
    model is atomic in every MLflow backend (a unique name in sqlite, PostgreSQL, or behind an
    ``mlflow server``): exactly one of two concurrent creates of ``<model>.<alias>.promote-lock``
    succeeds, on a local store and on a shared server alike (a file lock would cover only a
    local sqlite file). The holder deletes it when done; a lock older than ``stale_s`` (its
    holder died) is removed by the next caller. Waiting longer than ``wait_s``: DataError.
    """
    from mlflow.exceptions import MlflowException

    name = f"{model_name}.{alias}{PROMOTE_LOCK_SUFFIX}"
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = CLOCK.monotonic() + wait_s
    while True:
        try:
            retry(
                client.create_registered_model,
                name,
                tags={"avspot.lock_holder": holder},
                description=f"held while avspot promote moves @{alias}; removed when done",
            )
            break
        except MlflowException as exc:
            if "already exists" not in str(exc).lower():
                raise
        try:
            held = client.get_registered_model(name)
        except MlflowException:
            continue  # released meanwhile
        age = time.time() - held.creation_timestamp / 1000
        if age > stale_s:
            with contextlib.suppress(MlflowException):
                client.delete_registered_model(name)
            continue
        if CLOCK.monotonic() > deadline:
            raise DataError(
                f"@{alias} of {model_name!r}: another promote has held {name!r} for "
                f"{age:.0f}s; try again"
            )
        CLOCK.sleep(0.1 + random.random() * 0.3)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            retry(client.delete_registered_model, name)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _say(out: Callable[[str], Any] | None, msg: str) -> None:
    if out is not None:
        out(msg)


def register_best(
    experiment: str,
    parent_run_id: str,
    fingerprint: str,
    *,
    best_trial_id: str | None = None,
    metric: str = DEFAULT_METRIC,
    uri: str | None = None,
) -> str | None:
    """Register the best trial of a finished search as @challenger; the new version, or None
    when no trial logged a model.

    Candidates are the search's child runs that logged a model (completed trials); the tuner's
    best trial wins when it has one, else the best by ``best_<metric>``.
    """
    client = get_client(uri)
    runs = [r for r in child_runs(client, parent_run_id) if r.data.tags.get(TAG_MODEL_URI)]
    if not runs:
        return None
    chosen = [r for r in runs if best_trial_id and r.data.tags.get(TAG_TRIAL_ID) == best_trial_id]
    if not chosen:
        chosen = sorted(
            runs, key=lambda r: r.data.metrics.get(f"best_{metric}", float("-inf")), reverse=True
        )
    run = chosen[0]
    mv = register_challenger(
        experiment,
        run.info.run_id,
        run.data.metrics,
        fingerprint or run.data.tags.get(TAG_FINGERPRINT, ""),
        parent_run_id,
        metric=metric,
        uri=uri,
    )
    return str(mv.version)


# ---- loading --------------------------------------------------------------------------------------


def load_spotter(model_uri: str, device: str = "cpu") -> tuple[nn.Module, ModelConfig]:
    """(torch model in eval mode on ``device``, its ModelConfig) from models:/NAME@ALIAS,
    models:/NAME/VERSION, models:/<model_id>, runs:/<run_id>/model, an MLflow model directory
    or a model file. Used by ``avspot spot --model ...``."""
    from avspot.avmodels.device import resolve_device
    from avspot.avmodels.model_io import load_model

    dev = resolve_device(device)
    path = Path(model_uri)
    if "://" not in model_uri and ":/" not in model_uri:
        if path.is_file():
            return load_model(path, dev)
        if not (path / "MLmodel").is_file():
            raise DataError(
                f"model {model_uri}: no such model file or MLflow model directory", field="model"
            )
        local = path
    else:
        local = _download(model_uri)
    ckpt = local / "artifacts" / "checkpoint"
    if not ckpt.is_file():
        found = sorted(local.glob("artifacts/**/checkpoint"))
        if not found:
            raise DataError(
                f"model {model_uri}: not an avspot spotter (no artifacts/checkpoint)", field="model"
            )
        ckpt = found[0]
    return load_model(ckpt, dev)


def _download(model_uri: str) -> Path:
    from mlflow.exceptions import MlflowException

    get_client()  # tracking URI set, http servers health-checked
    try:
        import mlflow.artifacts

        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    except (MlflowException, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"model {model_uri}: cannot load ({scrub_text(msg[:300])})", field="model"
        ) from None

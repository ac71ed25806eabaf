"""MLflow tracking: one parent run per search (driver), one nested child run per trial.

Everything goes through an explicit `MlflowClient` and explicit run ids, so trials may run in
threads or processes without MLflow's global active-run state. mlflow is imported lazily.

Driver:  `start_search_run(...)` -> parent run id; Ray trials: `MLflowTrialCallback(...)` passed
to the trainer, `close(status)` in the trainable's finally; driver: `finish_search_run(...)`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avspot.datasets.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MODEL_ARTIFACT = "model"  # name of the logged model of a trial run (runs:/<id>/model)

# Tags this package writes (the UI shows them; the registry and report filter on them).
TAG_ROLE = "avspot.role"  # "search" (parent) | "trial" (child)
TAG_SEARCH = "avspot.search"
TAG_FINGERPRINT = "avspot.data_fingerprint"
TAG_DATA_SOURCE = "avspot.data_source"
TAG_CODE_VERSION = "avspot.code_version"
TAG_TRIAL = "avspot.trial"
TAG_TRIAL_ID = "avspot.trial_id"  # Ray Tune trial id
TAG_MODEL_URI = "avspot.model_uri"  # models:/<model_id> of a completed trial's best checkpoint
TAG_PARENT = "mlflow.parentRunId"

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")

# http(s) tracking servers: fail within seconds instead of MLflow's 7 retries with backoff.
_HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
_HEALTH_TIMEOUT_S = 3.0

_SECRET_NAME = re.compile(
    r"secret|passw|token|access_key|api_key|apikey|credential|private_key", re.I
)
_URI_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_MAX_PARAM_CHARS = 6000


# ---- secrets ------------------------------------------------------------------------------------


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (AWS keys, MLflow password...)."""
    env = os.environ if environ is None else environ
    names = {"AWS_ACCESS_KEY_ID", "MLFLOW_TRACKING_USERNAME"}
    vals = {v for k, v in env.items() if (_SECRET_NAME.search(k) or k in names) and len(v) >= 4}
    return sorted(vals, key=len, reverse=True)


def scrub_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with URI credentials (`scheme://user:pass@`) and secret env values replaced by ***."""
    out = _URI_USERINFO.sub(r"\g<scheme>***@", text)
    for value in secret_values() if secrets is None else secrets:
        out = out.replace(value, "***")
    return out


def scrub(mapping: Mapping[str, Any] | None) -> dict[str, str]:
    """Params/tags ready for MLflow: secret-looking keys dropped, values stringified and scrubbed."""
    secrets = secret_values()
    out: dict[str, str] = {}
    for key, value in (mapping or {}).items():
        if _SECRET_NAME.search(str(key)) or value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out[str(key)] = scrub_text(text, secrets)[:_MAX_PARAM_CHARS]
    return out


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dicts as flat `a.b` keys (a trial config, a TrainConfig.to_dict())."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


# ---- connection ---------------------------------------------------------------------------------


def tracking_uri(uri: str | None = None) -> str:
    """The tracking URI: `uri`, else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the CWD.

    Relative sqlite paths become absolute, so Ray trial workers (whose CWD is their trial
    directory) write to the driver's database. `file:` stores are rejected (MLflow 3).
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("file:") or "://" not in uri and not uri.startswith("databricks"):
        raise DataError(
            f"MLflow tracking URI {scrub_text(uri)!r}: file stores are not supported by MLflow 3; "
            "use sqlite:///path/mlflow.db or http://host:port"
        )
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri[len("sqlite:///") :]
        if path and path != ":memory:":
            uri = "sqlite:///" + str(Path(path).resolve())
    return uri


def _check_http(uri: str) -> None:
    """Fail within seconds, with a one-line message, when an http(s) server does not answer."""
    for key, value in _HTTP_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=_HEALTH_TIMEOUT_S) as resp:  # noqa: S310
            if resp.status >= 500:
                raise OSError(f"HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise DataError(
                f"MLflow tracking server {scrub_text(uri)} is unhealthy: HTTP {exc.code}"
            ) from None
        # a 401/403/404 on /health still proves that something answers there
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"MLflow tracking server {scrub_text(uri)} is unreachable: {scrub_text(str(reason))}"
        ) from None


def get_client(uri: str | None = None, *, check: bool = True) -> MlflowClient:
    """An `MlflowClient` for `tracking_uri(uri)`; http servers are health-checked first."""
    import mlflow
    from mlflow import MlflowClient

    resolved = tracking_uri(uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if check and resolved.startswith(("http://", "https://")):
        _check_http(resolved)
    # Process-wide default too: MLflow's model/artifact helpers resolve URIs through it.
    if mlflow.get_tracking_uri() != resolved:
        mlflow.set_tracking_uri(resolved)
    return MlflowClient(tracking_uri=resolved, registry_uri=resolved)


def _artifact_location(uri: str, name: str) -> str | None:
    """Artifacts of a sqlite store live beside the database (`<db dir>/mlartifacts/<name>`), not
    in whatever directory the driver happened to start in; a server decides for itself."""
    root = os.environ.get("AVSPOT_ARTIFACT_ROOT")
    if root:
        return f"{root.rstrip('/')}/{name}"
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts" / name).resolve().as_uri()
    return None


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created if missing (safe against a concurrent create)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        # the UI then opens on the runs table (not the GenAI traces overview)
        return client.create_experiment(
            name,
            artifact_location=_artifact_location(client.tracking_uri, name),
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    except MlflowException:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def experiment_id(name: str, uri: str | None = None) -> str:
    """Experiment id for `name`, or DataError naming the experiment."""
    client = get_client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        raise DataError(f"MLflow experiment {name!r} not found at {scrub_text(tracking_uri(uri))}")
    return exp.experiment_id


def code_version() -> str:
    """`git describe --always --dirty` of the checkout, else the package version."""
    from avspot import __version__

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        if out:
            return f"{__version__}+git.{out}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def _retry(fn, *args: Any, attempts: int = 6, **kwargs: Any) -> Any:
    """Call `fn`, retrying sqlite 'database is locked' errors (concurrent trials on one file)."""
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if "locked" not in str(exc).lower() or i == attempts - 1:
                raise
            time.sleep(0.2 * 2**i)
    return None  # pragma: no cover


def _metrics(values: Mapping[str, Any], step: int, prefix: str = "") -> list[Any]:
    """Finite numeric entries of `values` as MLflow Metric objects."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    out = []
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)  # numpy / torch scalars
            except (TypeError, ValueError):
                continue
        value = float(value)
        if math.isfinite(value):
            out.append(Metric(f"{prefix}{key}", value, now, int(step)))
    return out


def log_metrics(
    client: MlflowClient, run_id: str, values: Mapping[str, Any], step: int = 0, prefix: str = ""
) -> None:
    """Log the finite numeric entries of `values` (others are skipped) at `step`."""
    metrics = _metrics(values, step, prefix)
    for i in range(0, len(metrics), 900):  # MLflow caps a batch at 1000 metrics
        _retry(client.log_batch, run_id, metrics=metrics[i : i + 900], synchronous=True)


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    """Log scrubbed params (MLflow caps a batch at 100 params)."""
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in scrub(params).items()]
    for i in range(0, len(items), 100):
        _retry(client.log_batch, run_id, params=items[i : i + 100], synchronous=True)


def log_json(client: MlflowClient, run_id: str, obj: Any, artifact_file: str) -> None:
    """Write `obj` as scrubbed JSON to the run's artifact `artifact_file` (e.g. metrics/x.json)."""
    text = scrub_text(json.dumps(obj, indent=2, default=_jsonable))
    _log_bytes(client, run_id, text.encode(), artifact_file)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dict__"):
        return vars(obj)
    return str(obj)


def _log_bytes(client: MlflowClient, run_id: str, data: bytes, artifact_file: str) -> None:
    folder, _, name = artifact_file.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, name)
        path.write_bytes(data)
        client.log_artifact(run_id, str(path), folder or None)


def log_figure(client: MlflowClient, run_id: str, fig: Any, artifact_file: str) -> None:
    """Save a matplotlib Figure as PNG and log it as `artifact_file` (e.g. plots/curve.png)."""
    folder, _, name = artifact_file.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, name)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        client.log_artifact(run_id, str(path), folder or None)


# ---- parent run (driver) ------------------------------------------------------------------------


def start_search_run(
    experiment: str,
    params: Mapping[str, Any],
    tags: Mapping[str, Any] | None = None,
    *,
    run_name: str | None = None,
    uri: str | None = None,
) -> str:
    """Create the search's parent run in experiment `experiment` (created if missing).

    `params`: space, data URI, data fingerprint, budget, Ray address, ...; put the table manifest's
    `source` under `data_source` and its fingerprint under `data_fingerprint`: the registry and the
    report read them. The code version is added. Secret-looking keys and values are removed.
    Returns the parent run id; child runs find the experiment id with `client.get_run(id)`.
    """
    client = get_client(uri)
    exp_id = get_or_create_experiment(client, experiment)
    params = dict(params)
    params.setdefault("code_version", code_version())
    all_tags: dict[str, Any] = {
        TAG_ROLE: "search",
        TAG_SEARCH: experiment,
        TAG_CODE_VERSION: params["code_version"],
        "mlflow.source.type": "LOCAL",
    }
    if "data_source" in params:
        all_tags[TAG_DATA_SOURCE] = params["data_source"]
    if "data_fingerprint" in params:
        all_tags[TAG_FINGERPRINT] = params["data_fingerprint"]
    all_tags.update(tags or {})
    run = _retry(
        client.create_run,
        exp_id,
        tags=scrub(all_tags),
        run_name=run_name or f"search-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    log_params(client, run.info.run_id, params)
    return run.info.run_id


def search_parent_run(
    experiment: str,
    params: Mapping[str, Any],
    tags: Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    uri: str | None = None,
) -> tuple[str, str]:
    """(parent run id, experiment id) for a search: a new parent run, or with `resume` the
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
            client.set_tag(run_id, "avspot.resumed", time.strftime("%Y-%m-%dT%H:%M:%S"))
            return run_id, exp_id
    return start_search_run(experiment, params, tags, uri=uri), exp_id


def child_runs(client: MlflowClient, parent_run_id: str, experiment_id: str | None = None) -> list:
    """All trial runs nested under `parent_run_id`."""
    from mlflow.entities import ViewType

    exp_id = experiment_id or client.get_run(parent_run_id).info.experiment_id
    return client.search_runs(
        [exp_id],
        filter_string=f"tags.`{TAG_PARENT}` = '{parent_run_id}'",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=50000,
    )


def finish_search_run(
    run_id: str,
    status: str | Any = "FINISHED",
    metrics: Mapping[str, Any] | None = None,
    artifacts: Mapping[str, str | os.PathLike] | Iterable[str | os.PathLike] | None = None,
    *,
    tags: Mapping[str, Any] | None = None,
    uri: str | None = None,
) -> None:
    """End the parent run: summary metrics, artifacts, and `status`.

    `status` may also be the tuner's `SearchResult`: its counts become metrics and the status is
    FINISHED when it has a best trial, else FAILED. `artifacts`: paths (logged at the root) or
    {artifact_dir: path}. Child runs still RUNNING (trial processes killed without `close`) are
    marked KILLED, so no run stays RUNNING.
    """
    if not isinstance(status, str):
        status, metrics, tags = _from_search_result(status, metrics, tags)
    _check_status(status)
    client = get_client(uri)
    if metrics:
        log_metrics(client, run_id, metrics)
    if tags:
        for key, value in scrub(tags).items():
            client.set_tag(run_id, key, value)
    items = (
        artifacts.items()
        if isinstance(artifacts, Mapping)
        else ((None, p) for p in artifacts or ())
    )
    for folder, path in items:
        path = Path(path)
        if path.is_dir():
            client.log_artifacts(run_id, str(path), folder or path.name)
        else:
            client.log_artifact(run_id, str(path), folder)
    for child in child_runs(client, run_id):
        if child.info.status in ("RUNNING", "SCHEDULED"):
            _retry(client.set_terminated, child.info.run_id, "KILLED")
    _retry(client.set_terminated, run_id, status)


def _from_search_result(
    result: Any, metrics: Mapping[str, Any] | None, tags: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(status, metrics, tags) of a tuner SearchResult."""
    m = {k: getattr(result, k, None) for k in ("trials", "trial_epochs", "stopped_early", "wall_s")}
    best = getattr(result, "best", None)
    if isinstance(best, Mapping) and best.get("best") is not None:
        m["best_value"] = best["best"]
    t = dict(tags or {})
    if getattr(result, "model_version", None):
        t["avspot.challenger_version"] = result.model_version
    return ("FINISHED" if best else "FAILED"), {**m, **(metrics or {})}, t


def _trial_runs(client: MlflowClient, trial_id: str, parent_run_id: str | None = None) -> list:
    """Child runs tagged with Ray trial id `trial_id` (under `parent_run_id` when given)."""
    from mlflow.entities import ViewType

    if parent_run_id is not None:
        exp_ids = [client.get_run(parent_run_id).info.experiment_id]
    else:
        exp_ids = [e.experiment_id for e in client.search_experiments(ViewType.ACTIVE_ONLY)]
    flt = f"tags.`{TAG_TRIAL_ID}` = '{trial_id}'"
    if parent_run_id is not None:
        flt += f" and tags.`{TAG_PARENT}` = '{parent_run_id}'"
    return client.search_runs(exp_ids, filter_string=flt, max_results=1000)


def end_trial_runs(
    trial_id: str, status: str, *, parent_run_id: str | None = None, uri: str | None = None
) -> int:
    """Mark the still-RUNNING child runs of Ray trial `trial_id` as `status`; returns how many."""
    _check_status(status)
    client = get_client(uri)
    n = 0
    for run in _trial_runs(client, trial_id, parent_run_id):
        if run.info.status in ("RUNNING", "SCHEDULED"):
            _retry(client.set_terminated, run.info.run_id, status)
            n += 1
    return n


class KillStoppedRunsCallback:
    """Ray Tune callback (driver side): a trial that ends while its MLflow child run is still
    RUNNING was stopped by the scheduler (ASHA kills the trial's actor, so the trainable's
    `finally` never runs): mark the run KILLED; an errored trial's run FAILED."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # a ray.tune.Callback, built lazily
        from ray import tune

        class _KillStoppedRuns(tune.Callback):
            def __init__(self, parent_run_id: str | None = None, uri: str | None = None) -> None:
                self.parent_run_id = parent_run_id
                self.uri = uri

            def _end(self, trial: Any, status: str) -> None:
                try:
                    end_trial_runs(
                        str(trial.trial_id), status, parent_run_id=self.parent_run_id, uri=self.uri
                    )
                except Exception as exc:  # noqa: BLE001 - never break the search for this
                    print(
                        f"avspot: could not end the MLflow run of trial {trial.trial_id}: "
                        f"{scrub_text(str(exc))}"
                    )

            def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any):
                self._end(trial, "KILLED")

            def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any):
                self._end(trial, "FAILED")

        return _KillStoppedRuns(*args, **kwargs)


def register_best(
    result: Any, manifest: Any, *, metric: str | None = None, uri: str | None = None
) -> str | None:
    """Register the best trial of a finished search (tuner SearchResult) as @challenger.

    Candidates are the search's child runs that logged a model (completed trials); the tuner's
    best trial wins when it has one, else the best by `best_<metric>`. Returns the version.
    """
    from avspot.search.registry import register_challenger

    client = get_client(uri)
    parent = getattr(result, "parent_run_id", None)
    if parent is None:
        return None
    metric = metric or client.get_run(parent).data.params.get("metric", "val_average_map")
    runs = [r for r in child_runs(client, parent) if r.data.tags.get(TAG_MODEL_URI)]
    if not runs:
        return None
    best_trial = (getattr(result, "best", None) or {}).get("trial_id")
    chosen = [r for r in runs if best_trial and r.data.tags.get(TAG_TRIAL_ID) == str(best_trial)]
    if not chosen:
        chosen = sorted(
            runs, key=lambda r: r.data.metrics.get(f"best_{metric}", float("-inf")), reverse=True
        )
    run = chosen[0]
    fingerprint = getattr(manifest, "fingerprint", None) or run.data.tags.get(TAG_FINGERPRINT, "")
    mv = register_challenger(
        getattr(result, "experiment", None) or client.get_experiment(run.info.experiment_id).name,
        run.info.run_id,
        run.data.metrics,
        fingerprint,
        parent,
        metric=metric,
        uri=uri,
    )
    return str(mv.version)


def _check_status(status: str) -> None:
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"run status {status!r}: expected one of {', '.join(TERMINAL_STATUSES)}")


# ---- child run (inside a trial) -----------------------------------------------------------------


class MLflowTrialCallback:
    """Trainer callback that records one trial as a child run of the search's parent run.

    Created inside the trial (any thread/process): starts the child run at once. Per epoch it logs
    the numeric metrics with step=epoch; at the end of training the best epoch's metrics as
    `best_<key>` plus `best_epoch`; with `data_uri`, an evaluation of the best checkpoint on the
    validation split (confusion matrix, Average-mAP per spotting method center/max/nms as
    `val_average_map_<method>`, the mAP-vs-tolerance curve) and event timelines of a few test
    halves; plots and JSON as artifacts; the best checkpoint as an MLflow pyfunc model `model`.
    The run ends FINISHED after `on_train_end`. The trainable calls `close("KILLED")` when the
    scheduler stops the trial and `close("FAILED", exc)` on an exception (or uses the callback as
    a context manager); `close` is idempotent and never overwrites a status set by the driver.
    """

    def __init__(
        self,
        parent_run_id: str,
        experiment_id: str | None,
        trial_config: Mapping[str, Any],
        run_name: str | None = None,
        *,
        tracking_uri: str | None = None,
        trial_id: str | None = None,
        data_uri: str | None = None,
        endpoint: str | None = None,
        tags: Mapping[str, Any] | None = None,
        log_model: bool = True,
        log_plots: bool = True,
        eval_split: str = "valid",
        eval_max_halves: int | None = None,
        timeline_split: str = "test",
        timeline_halves: int = 2,
        input_example_frames: int = 240,
    ) -> None:
        self.client = get_client(tracking_uri)
        parent = self.client.get_run(parent_run_id)
        self.parent_run_id = parent_run_id
        self.experiment_id = experiment_id or parent.info.experiment_id
        self.trial_config = dict(trial_config)
        self.data_uri = data_uri
        self.endpoint = endpoint
        self.log_model = log_model
        self.log_plots = log_plots
        self.eval_split = eval_split
        self.eval_max_halves = eval_max_halves
        self.timeline_split = timeline_split
        self.timeline_halves = timeline_halves
        self.input_example_frames = input_example_frames
        self.history: list[dict[str, float]] = []
        self.model_uri: str | None = None
        self.status: str | None = None
        all_tags: dict[str, Any] = {
            TAG_PARENT: parent_run_id,
            TAG_ROLE: "trial",
            "mlflow.source.type": "LOCAL",
        }
        for key in (TAG_SEARCH, TAG_FINGERPRINT, TAG_DATA_SOURCE, TAG_CODE_VERSION):
            if key in parent.data.tags:
                all_tags[key] = parent.data.tags[key]
        if run_name:
            all_tags[TAG_TRIAL] = run_name
        if trial_id:
            all_tags[TAG_TRIAL_ID] = trial_id
        all_tags.update(tags or {})
        run = _retry(
            self.client.create_run, self.experiment_id, tags=scrub(all_tags), run_name=run_name
        )
        self.run_id: str = run.info.run_id
        log_params(self.client, self.run_id, flatten(self.trial_config))

    # trainer hooks

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, Any], trainer: Any = None) -> None:
        """Log this epoch's numeric metrics at step=epoch."""
        row = {k: v for k, v in _numeric(metrics).items() if k != "epoch"}
        self.history.append({"epoch": float(epoch), **row})
        log_metrics(self.client, self.run_id, row, step=epoch)

    def on_train_end(self, result: Any) -> None:
        """Log the best epoch's metrics, evaluation artifacts and the model; end FINISHED."""
        best_epoch = getattr(result, "best_epoch", None)
        best = dict(getattr(result, "best_metrics", None) or {})
        history = [dict(h) for h in (getattr(result, "history", None) or self.history)]
        for i, row in enumerate(history):
            row.setdefault("epoch", float(self.history[i]["epoch"]) if i < len(self.history) else i)
        summary: dict[str, Any] = {f"best_{k}": v for k, v in _numeric(best).items()}
        if best_epoch is not None:
            summary["best_epoch"] = best_epoch
        summary["epochs"] = len(history)
        log_metrics(self.client, self.run_id, summary, step=int(best_epoch or 0))
        model = getattr(result, "model", None)
        config = getattr(result, "config", None)
        evaluation: dict[str, Any] = {}
        window_frames = _window_frames(config, model)
        if self.data_uri and model is not None and window_frames:
            try:
                evaluation = evaluate_checkpoint(
                    model,
                    self.data_uri,
                    window_frames,
                    endpoint=self.endpoint,
                    split=self.eval_split,
                    max_halves=self.eval_max_halves,
                    timeline_split=self.timeline_split,
                    timeline_halves=self.timeline_halves,
                )
            except Exception as exc:  # noqa: BLE001 - the trial's result stands without it
                self.client.set_tag(
                    self.run_id,
                    "avspot.eval_error",
                    scrub_text(f"{type(exc).__name__}: {exc}")[:5000],
                )
        chunk = getattr(result, "best_chunk", None) or {}
        self.log_evaluation(
            best,
            history=history,
            confusion=chunk.get("confusion", best.get("confusion")),
            spotting=evaluation.get("spotting"),
            timelines=evaluation.get("timelines"),
            prefix="val_" if self.eval_split == "valid" else f"{self.eval_split}_",
        )
        if self.log_model and model is not None and config is not None:
            from avspot.search.pyfunc import log_spotter_model

            self.model_uri = log_spotter_model(
                self.client,
                self.run_id,
                self.experiment_id,
                model,
                config,
                metrics=summary,
                example_frames=self.input_example_frames,
            )
            self.client.set_tag(self.run_id, TAG_MODEL_URI, self.model_uri)
        self.close("FINISHED")

    # evaluation artifacts

    def log_evaluation(
        self,
        metrics: Mapping[str, Any] | None = None,
        *,
        history: list[Mapping[str, Any]] | None = None,
        confusion: Any = None,
        spotting: Any = None,
        timelines: list[tuple[str, list, list]] | None = None,
        prefix: str = "",
    ) -> None:
        """Log evaluation details as JSON + PNG artifacts (and metrics for scalars).

        `confusion`: 4x4 counts (true rows, predicted columns; card, subs, soccer, background).
        `spotting`: a SpottingResult-like object or dict (average_map, per_class, deltas,
        map_per_delta), or {"center"|"max"|"nms": result}; logged as `{prefix}average_map[_m]`
        and `{prefix}average_map[_m]_{class}`. `timelines`: [(title, true events, spots)].
        `metrics` may carry `confusion` and `spotting` entries instead.
        """
        metrics = dict(metrics or {})
        confusion = confusion if confusion is not None else metrics.get("confusion")
        spotting = spotting if spotting is not None else metrics.get("spotting")
        if confusion is not None:
            log_json(
                self.client, self.run_id, _tolist(confusion), f"metrics/{prefix}confusion.json"
            )
        curves: dict[str, dict[str, Any]] = {}
        if spotting is not None:
            by_method = spotting if _is_method_map(spotting) else {"": spotting}
            for method, res in by_method.items():
                info = spotting_summary(res)
                key = f"{prefix}average_map" + (f"_{method}" if method else "")
                values = {key: info.get("average_map")}
                values.update({f"{key}_{c}": v for c, v in info.get("per_class", {}).items()})
                log_metrics(self.client, self.run_id, values)
                curves[method or "spotting"] = info
            log_json(self.client, self.run_id, curves, f"metrics/{prefix}spotting.json")
        if history:
            log_json(
                self.client, self.run_id, [_numeric(h) for h in history], "metrics/history.json"
            )
        if not self.log_plots:
            return
        from avspot.search import plots

        if history:
            log_figure(
                self.client,
                self.run_id,
                plots.learning_curves(history),
                "plots/learning_curves.png",
            )
        if confusion is not None:
            log_figure(
                self.client,
                self.run_id,
                plots.confusion_matrix(confusion),
                f"plots/{prefix}confusion.png",
            )
        drawable = {k: v for k, v in curves.items() if v.get("tolerances")}
        if drawable:
            log_figure(
                self.client,
                self.run_id,
                plots.tolerance_curve(drawable),
                f"plots/{prefix}map_vs_tolerance.png",
            )
        if timelines:
            log_figure(
                self.client, self.run_id, plots.event_timeline(timelines), "plots/timeline.png"
            )

    # lifecycle

    def close(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        """End the child run with `status` (FINISHED/KILLED/FAILED); later calls do nothing, and
        a run already ended elsewhere (the driver marked it KILLED) keeps its status."""
        if self.status is not None:
            return
        _check_status(status)
        self.status = status
        if error is not None:
            msg = scrub_text(f"{type(error).__name__}: {error}")[:5000]
            with contextlib.suppress(Exception):  # ending the run matters more than the tag
                self.client.set_tag(self.run_id, "avspot.error", msg)
        current = _retry(self.client.get_run, self.run_id).info.status
        if current in ("RUNNING", "SCHEDULED"):
            _retry(self.client.set_terminated, self.run_id, status)
        else:
            self.status = current

    def __enter__(self) -> MLflowTrialCallback:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close("FINISHED")
        elif isinstance(exc, KeyboardInterrupt | SystemExit) or type(exc).__name__ in (
            "TrialStopped",
            "StopTrial",
        ):
            self.close("KILLED", exc)
        else:
            self.close("FAILED", exc)


def evaluate_checkpoint(
    model: Any,
    data_uri: str,
    window_frames: int,
    *,
    endpoint: str | None = None,
    split: str = "valid",
    max_halves: int | None = None,
    methods: Iterable[str] = ("center", "max", "nms"),
    timeline_split: str | None = "test",
    timeline_halves: int = 2,
) -> dict[str, Any]:
    """Average-mAP (loose) per spotting method of `model` on a table split, and (title, events,
    spots) timelines of the first halves of `timeline_split`.

    One forward pass per half (`predict_half`); the post-processings share its probabilities.
    Halves are scored as the trainer's validation does (official 120-min half length).
    """
    import numpy as np

    from avspot.avmodels.metrics import HalfSpots, average_map_spots, official_half_frames
    from avspot.avmodels.spotting import postprocess, predict_half

    classes = ("card", "subs", "soccer")
    methods = list(methods)
    halves: dict[str, list[Any]] = {m: [] for m in methods}
    for i, half in enumerate(_iter_split(data_uri, split, endpoint)):
        if max_halves is not None and i >= max_halves:
            break
        probs = predict_half(model, half, 1.0, window_frames=window_frames)  # (n_s, 3)
        n = max(int(half.video.shape[0]), official_half_frames())
        ev_f = np.array([int(e.frame) for e in half.events], dtype=np.int64)
        ev_c = np.array([classes.index(e.label) for e in half.events], dtype=np.int64)
        for m in methods:
            spots = postprocess(probs, m, stride_s=1.0)
            halves[m].append(
                HalfSpots.from_lists(
                    ev_f,
                    ev_c,
                    np.array([s.frame for s in spots], dtype=np.int64),
                    np.array([classes.index(s.label) for s in spots], dtype=np.int64),
                    np.array([s.confidence for s in spots], dtype=np.float64),
                    n,
                )
            )
    out: dict[str, Any] = {}
    if methods and halves[methods[0]]:
        out["spotting"] = {m: average_map_spots(halves[m], metric="loose") for m in methods}
    if timeline_split and timeline_halves > 0:
        timelines = []
        for i, half in enumerate(_iter_split(data_uri, timeline_split, endpoint)):
            if i >= timeline_halves:
                break
            probs = predict_half(model, half, 1.0, window_frames=window_frames)
            spots = postprocess(probs, "nms", stride_s=1.0)
            minutes = half.video.shape[0] / float(half.fps) / 60
            timelines.append((f"{half.game} / half {half.half}", list(half.events), spots, minutes))
        out["timelines"] = timelines
    return out


def _iter_split(uri: str, split: str, endpoint: str | None) -> Iterable[Any]:
    import inspect

    from avspot.datasets.table import iter_halves

    if endpoint is not None and "endpoint" in inspect.signature(iter_halves).parameters:
        return iter_halves(uri, split=split, endpoint=endpoint)
    return iter_halves(uri, split=split)


def _window_frames(config: Any, model: Any) -> int | None:
    """W of the trained model: TrainConfig.model.window_frames, else model.cfg.window_frames."""
    for cfg in (config, getattr(model, "cfg", None), getattr(model, "config", None)):
        cfg = getattr(cfg, "model", cfg)
        if cfg is not None and getattr(cfg, "window_frames", None):
            return int(cfg.window_frames)
    return None


def _numeric(values: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        if isinstance(value, bool):
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _tolist(obj: Any) -> Any:
    return obj.tolist() if hasattr(obj, "tolist") else obj


def _is_method_map(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping) and bool(obj) and all(k in ("center", "max", "nms") for k in obj)
    )


def spotting_summary(result: Any) -> dict[str, Any]:
    """average_map, per_class and the mAP-vs-tolerance curve of a spotting result (obj or dict)."""

    def get(*names: str) -> Any:
        for name in names:
            if isinstance(result, Mapping) and name in result:
                return result[name]
            if hasattr(result, name):
                return getattr(result, name)
        return None

    info: dict[str, Any] = {"average_map": _float(get("average_map", "a_map"))}
    per_class = get("per_class", "per_class_average_map")
    if isinstance(per_class, Mapping):
        info["per_class"] = {str(k): _float(v) for k, v in per_class.items()}
    tol = get("tolerances", "deltas", "delta")
    curve = get("curve", "map_curve", "maps", "mAP", "map_per_delta")
    if isinstance(curve, Mapping) and tol is None:
        tol, curve = list(curve.keys()), list(curve.values())
    if tol is not None and curve is not None:
        info["tolerances"] = [float(t) for t in _tolist(tol)]
        info["curve"] = [float(v) for v in _tolist(curve)]
    info["metric"] = get("metric")
    return info


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None

"""The MLflow connection and the logging helpers every run uses.

Everything goes through an explicit ``MlflowClient`` and explicit run ids, so trials may run in
threads or processes without MLflow's global active-run state. mlflow is imported lazily.

Outages (docs/contracts.md, Services): a server that is down when a command starts fails the
health check within seconds (``get_client``). One that drops later is waited for: ``log_metrics``
and ``log_params`` put their entries in a bounded in-memory outbox per client (at most
$AVSPOT_MLFLOW_BUFFER_MAX entries, oldest sent first, in order) and return; while the server is
unreachable the outbox is retried with backoff and ``flush_logs`` waits for it; other calls go
through ``retry``. After $AVSPOT_MLFLOW_OUTAGE_S seconds (default 300) of outage, or when the
outbox is full, ``TrackingUnavailable`` says so in one line. Re-sending a batch is idempotent
(each metric keeps its timestamp; MLflow ignores exact duplicates), so a batch whose answer was
lost is simply sent again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avspot.datasets.errors import DataError
from avspot.search.tracking.names import (
    DATASET_CONTEXT,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    TAG_CODE_VERSION,
)
from avspot.search.tracking.outage import (  # noqa: F401 - the logging path's retries, re-exported
    TrackingUnavailable,
    flush_logs,
    outbox,
    retry,
    unreachable,
)
from avspot.search.tracking.scrub import scrub, scrub_text

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

    from avspot.datasets.manifest import Manifest

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# http(s) tracking servers: fail within seconds instead of MLflow's 7 retries with backoff.
_HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
# Large artifacts bypass the server (docs/cluster.md, "Large models"). An `mlflow server
# --serve-artifacts` with an S3 destination (the cluster's) hands out presigned URLs: files of
# 64 MiB and more go to S3 in 32 MiB parts straight from the client and come back in ranged GETs,
# so a k=512 checkpoint (1-2.2 GB) never streams through the server's one worker, whose proxied
# PUT answers only after the server has copied the whole file on to S3 (silence past the
# 15 s timeout above). Explicit rather than MLflow 3.17's /server-info probe, which turns both
# off silently when it fails; a server that cannot (local artifact root) falls back to the
# proxied path. The client needs no S3 credentials: the URLs carry the server's signature.
_ARTIFACT_ENV_DEFAULTS = {
    "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "true",
    "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": str(64 * 2**20),
    "MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE": str(32 * 2**20),  # x 2 threads per CPU, in memory
    "MLFLOW_MULTIPART_DOWNLOAD_MINIMUM_FILE_SIZE": str(64 * 2**20),
}
# Seconds one artifact request may wait for its answer while a model is logged: completing a
# multipart upload makes S3 assemble the object (AWS: "can take several minutes").
ARTIFACT_TIMEOUT_ENV = "AVSPOT_MLFLOW_ARTIFACT_TIMEOUT_S"
DEFAULT_ARTIFACT_TIMEOUT_S = 600
_HEALTH_TIMEOUT_S = 3.0


def tracking_uri(uri: str | None = None) -> str:
    """The tracking URI: ``uri``, else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the CWD.

    Relative sqlite paths become absolute, so Ray trial workers (whose CWD is their trial
    directory) write to the driver's database. ``file:`` stores are rejected (MLflow 3).
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
    """Fail within seconds, with a one-line message, when an http(s) server does not answer.
    ``user:password@`` in the URI (MLflow sends it as basic auth) is left out of the probe:
    urllib would take it for part of the host name, and /health needs no login."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")
    url += "/health"
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
        raise TrackingUnavailable(
            f"MLflow tracking server {scrub_text(uri)} is unreachable: {scrub_text(str(reason))}"
        ) from None


def get_client(uri: str | None = None, *, check: bool = True) -> MlflowClient:
    """An ``MlflowClient`` for ``tracking_uri(uri)``; http servers are health-checked first
    (``check=False`` inside trials: one that starts during an outage waits through ``retry``)."""
    import mlflow
    from mlflow import MlflowClient

    resolved = tracking_uri(uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if resolved.startswith(("http://", "https://")):
        for key, value in {**_HTTP_ENV_DEFAULTS, **_ARTIFACT_ENV_DEFAULTS}.items():
            os.environ.setdefault(key, value)
        if check:
            _check_http(resolved)
    # Process-wide default too: MLflow's model/artifact helpers resolve URIs through it.
    if mlflow.get_tracking_uri() != resolved:
        mlflow.set_tracking_uri(resolved)
    if resolved.startswith("sqlite:///") and resolved not in _INITIALIZED:
        return _initialize_sqlite(resolved)
    return MlflowClient(tracking_uri=resolved, registry_uri=resolved)


@contextlib.contextmanager
def artifact_timeout(seconds: float | None = None) -> Iterator[float]:
    """MLflow's per-request HTTP timeout raised to ``seconds`` (default
    $AVSPOT_MLFLOW_ARTIFACT_TIMEOUT_S, 600) for the block, e.g. while a model is logged; the
    tracking calls' short timeout is restored after it. The setting is process-wide (MLflow reads
    it per request), so other threads' requests may wait longer meanwhile, never shorter."""
    if seconds is None:
        raw = os.environ.get(ARTIFACT_TIMEOUT_ENV, str(DEFAULT_ARTIFACT_TIMEOUT_S))
        try:
            seconds = float(raw)
        except ValueError:
            raise DataError(
                f"${ARTIFACT_TIMEOUT_ENV}={raw!r}: must be a number of seconds"
            ) from None
    key = "MLFLOW_HTTP_REQUEST_TIMEOUT"
    before = os.environ.get(key)
    current = float(before) if before and before.replace(".", "", 1).isdigit() else 0.0
    os.environ[key] = str(int(max(seconds, current)))
    try:
        yield float(os.environ[key])
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


_INITIALIZED: set[str] = set()


def _initialize_sqlite(uri: str) -> MlflowClient:
    """A client of a sqlite store, its schema created or migrated under an exclusive lock on
    the database file: two processes opening a new store at once (two searches started
    together) would both run MLflow's migrations, and one fails ('duplicate column name',
    'expected to match one row'). flock on the file itself leaves no lock file behind and does
    not touch sqlite's own (fcntl) locks."""
    import fcntl

    from mlflow import MlflowClient

    path = uri[len("sqlite:///") :]
    if path in ("", ":memory:"):
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        f = open(path, "ab")  # noqa: SIM115 - closed below, after the lock
    except OSError as exc:
        raise DataError(
            f"MLflow tracking URI {scrub_text(uri)!r}: cannot open the database: {exc.strerror}"
        ) from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # the tracking tables
            retry(client.search_registered_models, max_results=1)  # the registry's
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    _INITIALIZED.add(uri)
    return client


def _artifact_location(uri: str, name: str) -> str | None:
    """Artifacts of a sqlite store live beside the database (``<db dir>/mlartifacts/<name>``),
    not in whatever directory the driver happened to start in; a server decides for itself."""
    root = os.environ.get("AVSPOT_ARTIFACT_ROOT")
    if root:
        return f"{root.rstrip('/')}/{name}"
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts" / name).resolve().as_uri()
    return None


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created if missing (safe against a concurrent create)."""
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
    """Experiment id for ``name``, or DataError naming the experiment."""
    client = get_client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        raise DataError(f"MLflow experiment {name!r} not found at {scrub_text(tracking_uri(uri))}")
    return exp.experiment_id


def _git(*args: str) -> str | None:
    """``git ARGS`` in the checkout avspot runs from (an editable install); None elsewhere."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def code_version() -> str:
    """``git describe --always --dirty`` of the checkout, else the package version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("avspot")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        base = "0+unknown"
    out = _git("describe", "--always", "--dirty", "--tags")
    return f"{base}+git.{out}" if out else base


def run_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """``tags`` plus MLflow's standard context tags (user, source name and type, git commit),
    as ``mlflow.start_run`` would set them; scrubbed."""
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

    resolved = resolve_tags({k: str(v) for k, v in tags.items()})
    resolved.setdefault(TAG_CODE_VERSION, code_version())
    # MLflow looks for git around sys.argv[0]: the `avspot` script in a venv is outside the
    # checkout, so the UI's source version stays empty. Ask the checkout of the code instead.
    if MLFLOW_GIT_COMMIT not in resolved and (commit := _git("rev-parse", "HEAD")):
        resolved[MLFLOW_GIT_COMMIT] = commit
    return scrub(resolved)


def metric_entities(values: Mapping[str, Any], step: int, prefix: str = "") -> list[Any]:
    """Finite numeric entries of ``values`` as MLflow Metric objects (others are skipped)."""
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
    """Log the finite numeric entries of ``values`` at ``step`` (through the client's outbox:
    sent now when the server answers, kept in order while it does not)."""
    metrics = metric_entities(values, step, prefix)
    if metrics:
        box = outbox(client)
        box.put(run_id, metrics, [])
        box.flush(wait=False)


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    """Log scrubbed params (through the client's outbox, as ``log_metrics``)."""
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in scrub(params).items()]
    if items:
        box = outbox(client)
        box.put(run_id, [], items)
        box.flush(wait=False)


def log_json(client: MlflowClient, run_id: str, obj: Any, artifact_file: str) -> None:
    """``obj`` as scrubbed JSON in the run's artifact ``artifact_file`` (``log_dict``)."""
    text = scrub_text(json.dumps(obj, default=_jsonable))
    retry(client.log_dict, run_id, json.loads(text), artifact_file)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dict__"):
        return vars(obj)
    return str(obj)


def log_figure(client: MlflowClient, run_id: str, fig: Any, artifact_file: str) -> None:
    """A matplotlib Figure as the PNG artifact ``artifact_file`` (``log_figure``)."""
    retry(
        client.log_figure,
        run_id,
        fig,
        artifact_file,
        save_kwargs={"dpi": 110, "bbox_inches": "tight"},
    )


def log_table_input(
    client: MlflowClient,
    run_id: str,
    data_uri: str,
    manifest: Manifest,
    context: str = DATASET_CONTEXT,
) -> None:
    """Record the feature table a run used as an MLflow dataset input (the UI's Dataset column):
    name = the table's source, source = its URI, digest = its content fingerprint (the first 32
    hex digits: MLflow stores at most 36 characters), profile = its counts."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    profile = {
        "games": manifest.counts.get("games"),
        "halves": manifest.counts.get("halves"),
        "hours": round(manifest.frames / manifest.fps / 3600, 2),
        "fingerprint": manifest.fingerprint,
    }

    class TableDataset(MetaDataset):
        """A feature table by reference: no data is copied into MLflow."""

        @property
        def profile(self) -> dict[str, Any]:
            return profile

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(profile)}

    name = "synthetic" if manifest.source == "synthetic" else "soccernet"
    with warnings.catch_warnings():  # MLflow registers the local source type twice
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
        source = resolve_dataset_source(scrub_text(data_uri))
    dataset = TableDataset(source, name=name, digest=manifest.fingerprint[:32])
    # What mlflow.log_input does for the active run, for an explicit run id (no active run here).
    entity = dataset._to_mlflow_entity()
    retry(
        client.log_inputs,
        run_id,
        datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])],
    )

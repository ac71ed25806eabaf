"""Trial runs of an experiment, reduced to what the report's tables need.

Values are validation-split numbers at each trial's best epoch (completed trials logged
``best_*``; for trials ASHA stopped, the best epoch of the monitor is read from the metric
history). Runs are grouped by the data they saw (source + fingerprint).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avspot.avmodels.pooling import POOLINGS
from avspot.datasets.errors import DataError
from avspot.datasets.labels import LABEL_SETS, LabelSet, get_label_set
from avspot.search.tracking.names import TAG_DATA_SOURCE, TAG_FINGERPRINT, TAG_PARENT, TAG_ROLE

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

SUMMARY_KEYS = (
    "val_map",
    "val_ap_card",
    "val_ap_subs",
    "val_ap_soccer",
    "val_average_map",
    "val_average_map_tight",
    "val_loss",
    "train_loss",
    "train_map",
)


@dataclass
class Trial:
    """One trial run reduced to what the tables need (metrics at its best epoch)."""

    run_id: str
    name: str
    status: str
    parent: str | None
    fusion: str
    pooling: str
    clusters: str
    window_s: float | None
    spot_method: str
    schedule: str
    metrics: dict[str, float]
    epochs: int
    source: str
    fingerprint: str
    artifacts: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # the run's params as logged

    @property
    def vocabulary(self) -> LabelSet:
        """The label set the trial's model spots (its ``model.label_set`` param; v1 before)."""
        name = _param(self.params, "label_set", "v1")
        return get_label_set(name if name in LABEL_SETS else "v1")

    @property
    def pooling_label(self) -> str:
        k = (
            f" k={self.clusters}"
            if self.clusters
            and POOLINGS.get(self.pooling) is not None
            and POOLINGS[self.pooling].has_clusters
            else ""
        )
        return f"{self.pooling}{k}"


def _param(params: Mapping[str, str], name: str, default: str = "") -> str:
    """`name`, or a nested `x.name` key (TrainConfig.to_dict() is flattened as model.fusion)."""
    if name in params:
        return params[name]
    for key, value in params.items():
        if key.endswith(f".{name}"):
            return value
    return default


def _float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _best_epoch_metrics(client: MlflowClient, run: Any, monitor: str) -> tuple[dict, int]:
    """(metrics at the run's best epoch, epochs run). Completed runs logged `best_*` with
    `best_epoch`; for runs stopped early (the driver adds only their `best_<monitor>` and
    `epochs`) the best epoch of `monitor` is found in the metric history."""
    m = run.data.metrics
    best = {k[len("best_") :]: v for k, v in m.items() if k.startswith("best_")}
    epochs = int(m.get("epochs", 0))
    if "best_epoch" in m:  # on_train_end's summary (a stopped trial's best_<monitor> is partial)
        extra = {k: v for k, v in m.items() if not k.startswith("best_") and k not in best}
        return {**extra, **best}, epochs or int(best.get("epoch", 0))
    hist = client.get_metric_history(run.info.run_id, monitor)
    if not hist:
        return dict(m), 0
    top = max(hist, key=lambda x: (x.value if not math.isnan(x.value) else -1, -x.step))
    out = dict(m)
    for key in SUMMARY_KEYS:
        if key in m:
            for h in client.get_metric_history(run.info.run_id, key):
                if h.step == top.step:
                    out[key] = h.value
    return out, len(hist)


def download_json(client: MlflowClient, run_id: str, path: str) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception:  # noqa: BLE001 - an artifact a trial did not log is simply absent
            return None
        return json.loads(Path(local).read_text())


def collect(client: MlflowClient, experiment: str) -> tuple[list[Any], list[Trial], str]:
    """(parent runs, trials, monitor metric) of `experiment`."""
    from mlflow.entities import ViewType

    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise DataError(f"MLflow experiment {experiment!r} not found")
    runs = client.search_runs(
        [exp.experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=50000
    )
    parents = {r.info.run_id: r for r in runs if r.data.tags.get(TAG_ROLE) == "search"}
    children = [r for r in runs if r.data.tags.get(TAG_PARENT)]
    for r in children:  # parents created by other tools still group their children
        pid = r.data.tags[TAG_PARENT]
        if pid not in parents:
            try:
                parents[pid] = client.get_run(pid)
            except Exception:  # noqa: BLE001 - a deleted parent
                continue
    ordered = sorted(parents.values(), key=lambda r: r.info.start_time or 0)
    monitor = "val_average_map"
    if ordered:
        monitor = ordered[-1].data.params.get("metric", monitor)
    trials = []
    for r in children:
        parent = parents.get(r.data.tags[TAG_PARENT])
        pp = parent.data.params if parent else {}
        pt = parent.data.tags if parent else {}
        p = r.data.params
        metrics, epochs = _best_epoch_metrics(client, r, monitor)
        if not any(k.startswith("val_") for k in metrics):
            continue  # failed before its first epoch
        trials.append(
            Trial(
                run_id=r.info.run_id,
                name=r.info.run_name or r.info.run_id[:8],
                status=r.info.status,
                parent=parent.info.run_id if parent else None,
                fusion=_param(p, "fusion", "?"),
                pooling=_param(p, "pooling", "?"),
                clusters=_param(p, "clusters"),
                window_s=_float(_param(p, "window_s")),
                spot_method=_param(p, "spot_method", "nms"),
                schedule=_param(p, "schedule", ""),
                metrics=metrics,
                epochs=epochs,
                source=r.data.tags.get(TAG_DATA_SOURCE)
                or pp.get("data_source")
                or pt.get(TAG_DATA_SOURCE)
                or "unknown",
                fingerprint=r.data.tags.get(TAG_FINGERPRINT)
                or pp.get("data_fingerprint")
                or pt.get(TAG_FINGERPRINT)
                or "unknown",
                params=dict(p),
            )
        )
    return ordered, trials, monitor

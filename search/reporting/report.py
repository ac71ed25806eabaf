"""`avspot report`: the seed study's tables and figures regenerated from an experiment's runs.

Tables 1-5 (mAP per fusion method and window, per-class AP, confusion matrix, mAP per pooling and
modality, Average-mAP per spotting method) come from the trial runs' params and metrics
(`MlflowClient.search_runs`), the figures from their metric histories and JSON artifacts. Runs
are grouped by the data they saw (source + fingerprint); every section names its data and
synthetic results are labelled as such, never as SoccerNet. Values are validation-split numbers
at each trial's best epoch, in percent.

The report directory is written under a temporary name and renamed into place at the end, then
logged to the experiment's latest search (parent) run under `report/`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avspot.datasets.errors import DataError
from avspot.search.tracking import (
    TAG_DATA_SOURCE,
    TAG_FINGERPRINT,
    TAG_PARENT,
    TAG_ROLE,
    get_client,
    scrub_text,
)

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

# The seed's merging methods 1-7 and the single-modality baselines (search/spaces/paper.py names).
FUSION_ROWS: list[tuple[str, str]] = [
    ("video", "Video baseline"),
    ("audio", "Audio baseline"),
    ("prob_product", "Merging method 1 (product of probabilities)"),
    ("logit_mean", "Merging method 2 (mean of logits)"),
    ("late_joint", "Merging method 3 (joint late fusion)"),
    ("before_fc", "Merging method 4 (before the FC layer)"),
    ("before_dropout", "Merging method 5 (before dropout)"),
    ("early_1024", "Merging method 6 (before pooling, 1024)"),
    ("early_512", "Merging method 7 (before pooling, 512)"),
]
SINGLE = ("video", "audio")
CLASS_ROWS = [("card", "cards"), ("subs", "substitutions"), ("soccer", "goals")]
METHODS = [("max", "Seg. max"), ("center", "Seg. center"), ("nms", "NMS")]
SEED_ORDER = [3, 0, 1, 2]  # confusion rows/cols: background, cards, subs, goals (seed Table 3)
SEED_LABELS = ["background", "cards", "subs", "goals"]
_SUMMARY_KEYS = (
    "val_map",
    "val_ap_card",
    "val_ap_subs",
    "val_ap_soccer",
    "val_average_map",
    "val_average_map_tight",
    "val_loss",
    "train_loss",
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
    metrics: dict[str, float]
    epochs: int
    source: str
    fingerprint: str
    artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def pooling_label(self) -> str:
        k = f" k={self.clusters}" if self.clusters and self.pooling in _CLUSTERED else ""
        return f"{self.pooling}{k}"


_CLUSTERED = ("netvlad", "netrvlad", "netfv", "softdbow")


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
    """(metrics at the run's best epoch, epochs run). Completed runs logged `best_*`; for runs
    stopped early the best epoch of `monitor` is found in the metric history."""
    m = run.data.metrics
    best = {k[len("best_") :]: v for k, v in m.items() if k.startswith("best_")}
    epochs = int(m.get("epochs", 0))
    if best:
        extra = {k: v for k, v in m.items() if not k.startswith("best_") and k not in best}
        return {**extra, **best}, epochs or int(best.get("epoch", 0))
    hist = client.get_metric_history(run.info.run_id, monitor)
    if not hist:
        return dict(m), 0
    top = max(hist, key=lambda x: (x.value if not math.isnan(x.value) else -1, -x.step))
    out = dict(m)
    for key in _SUMMARY_KEYS:
        if key in m:
            for h in client.get_metric_history(run.info.run_id, key):
                if h.step == top.step:
                    out[key] = h.value
    return out, len(hist)


def _download_json(client: MlflowClient, run_id: str, path: str) -> Any:
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
            )
        )
    return ordered, trials, monitor


# ---- tables -------------------------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _md_table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _best(trials: Iterable[Trial], key: str) -> Trial | None:
    cands = [t for t in trials if not math.isnan(t.metrics.get(key, math.nan))]
    return max(cands, key=lambda t: t.metrics[key], default=None)


def _windows(trials: list[Trial]) -> list[float]:
    return sorted({t.window_s for t in trials if t.window_s is not None}, reverse=True)


def _wlabel(w: float) -> str:
    return f"T = {w:g} s"


def table_fusion(trials: list[Trial]) -> str:
    """Seed Table 1: chunk mAP per fusion method (rows) and window (columns), per pooling."""
    out = []
    windows = _windows(trials)
    for pool in sorted({t.pooling_label for t in trials}):
        sub = [t for t in trials if t.pooling_label == pool]
        rows = []
        known = [f for f, _ in FUSION_ROWS]
        extra = sorted({t.fusion for t in sub} - set(known))
        for fusion, label in FUSION_ROWS + [(f, f) for f in extra]:
            cells = []
            for w in windows:
                b = _best([t for t in sub if t.fusion == fusion and t.window_s == w], "val_map")
                cells.append(_pct(b.metrics["val_map"]) if b else "–")
            if any(c != "–" for c in cells):
                rows.append([f"{label} (`{fusion}`)", *cells])
        out.append(f"Pooling **{pool}**\n\n" + _md_table(["Model", *map(_wlabel, windows)], rows))
    return "\n\n".join(out)


def _best_fusion(trials: list[Trial], key: str = "val_map") -> Trial | None:
    return _best([t for t in trials if t.fusion not in SINGLE], key)


def table_per_class(trials: list[Trial]) -> str:
    """Seed Table 2: per-class chunk AP of the best video, audio and audio+video runs."""
    cols = [
        ("Video baseline", _best([t for t in trials if t.fusion == "video"], "val_map")),
        ("Audio baseline", _best([t for t in trials if t.fusion == "audio"], "val_map")),
    ]
    bf = _best_fusion(trials)
    cols.append((f"Best fusion (`{bf.fusion}`)" if bf else "Best fusion", bf))
    rows = []
    for c, label in CLASS_ROWS:
        rows.append(
            [f'"{label}"', *[_pct(t.metrics.get(f"val_ap_{c}")) if t else "–" for _, t in cols]]
        )
    rows.append(["mAP", *[_pct(t.metrics.get("val_map")) if t else "–" for _, t in cols]])
    header = ["Labels", *[f"{n}<br>{_describe(t)}" for n, t in cols]]
    return _md_table(header, rows)


def _describe(t: Trial | None) -> str:
    if t is None:
        return "(no run)"
    w = f", T={t.window_s:g}s" if t.window_s is not None else ""
    return f"{t.pooling_label}{w}"


def table_confusion(matrix: list[list[float]]) -> str:
    """Seed Table 3 layout: rows ground truth, columns predicted (background first)."""
    rows = []
    for i, label in zip(SEED_ORDER, SEED_LABELS, strict=True):
        rows.append([label, *[f"{matrix[i][j]:g}" for j in SEED_ORDER]])
    return _md_table(["truth \\ predicted", *SEED_LABELS], rows)


def table_pooling(trials: list[Trial]) -> str:
    """Seed Table 4: chunk mAP per pooling x modality (video, audio, best fusion) and window."""
    windows = _windows(trials)
    rows = []
    for pool in sorted({t.pooling_label for t in trials}):
        sub = [t for t in trials if t.pooling_label == pool]
        for name, pick in (
            ("Video-based", lambda ts: [t for t in ts if t.fusion == "video"]),
            ("Audio-based", lambda ts: [t for t in ts if t.fusion == "audio"]),
            ("Audio + Video (best fusion)", lambda ts: [t for t in ts if t.fusion not in SINGLE]),
        ):
            cells = []
            for w in windows:
                b = _best([t for t in pick(sub) if t.window_s == w], "val_map")
                cells.append(
                    f"{_pct(b.metrics['val_map'])}"
                    + (f" (`{b.fusion}`)" if b and b.fusion not in SINGLE else "")
                    if b
                    else "–"
                )
            if any(c != "–" for c in cells):
                rows.append([f"{name} {pool}", *cells])
    return _md_table(["Model", *map(_wlabel, windows)], rows)


def table_spotting(trials: list[Trial], monitor: str) -> tuple[str, bool]:
    """Seed Table 5: Average-mAP (loose) per spotting method and modality, per pooling and window.

    Uses `val_average_map_<method>` of the best checkpoint when logged; otherwise only the
    trainer's own method column (`val_average_map` with its `spot_method`). Returns (table, whether
    all three methods were logged)."""
    all_methods = any(f"val_average_map_{m}" in t.metrics for t in trials for m, _ in METHODS)
    groups = [
        ("Video-only", lambda t: t.fusion == "video"),
        ("Audio-only", lambda t: t.fusion == "audio"),
        ("Audio + Video", lambda t: t.fusion not in SINGLE),
    ]
    header = ["Models"] + [f"{g} {ml}" for g, _ in groups for _, ml in METHODS]
    rows = []
    for pool in sorted({t.pooling_label for t in trials}):
        for w in _windows(trials):
            sub = [t for t in trials if t.pooling_label == pool and t.window_s == w]
            if not sub:
                continue
            cells = []
            for _, sel in groups:
                cand = [t for t in sub if sel(t)]
                best = _best(cand, monitor) or _best(cand, "val_average_map")
                for m, _ in METHODS:
                    v = None
                    if best is not None:
                        v = best.metrics.get(f"val_average_map_{m}")
                        if v is None and best.spot_method == m:
                            v = best.metrics.get("val_average_map")
                    cells.append(_pct(v))
            rows.append([f"{pool}, {w:g}-s chunks", *cells])
    return _md_table(header, rows), all_methods


def table_leaderboard(trials: list[Trial], monitor: str, n: int = 10) -> str:
    ranked = sorted(trials, key=lambda t: -t.metrics.get(monitor, -1.0))[:n]
    rows = [
        [
            str(i),
            f"`{t.name}`",
            t.fusion,
            t.pooling_label,
            f"{t.window_s:g}" if t.window_s is not None else "?",
            _pct(t.metrics.get("val_map")),
            _pct(t.metrics.get("val_average_map")),
            _pct(t.metrics.get("val_average_map_tight")),
            str(t.epochs),
            t.status,
        ]
        for i, t in enumerate(ranked, 1)
    ]
    header = [
        "#",
        "run",
        "fusion",
        "pooling",
        "T (s)",
        "mAP",
        "Avg-mAP loose",
        "tight",
        "epochs",
        "status",
    ]
    return _md_table(header, rows)


def _data_heading(source: str, fingerprint: str) -> str:
    src = source.lower()
    if "synth" in src:
        what = (
            "**SYNTHETIC data** (generated by `avspot data synth`). These numbers say whether the "
            "pipeline works; they are not SoccerNet results and are not comparable with the seed's."
        )
    elif "soccernet" in src:
        what = "SoccerNet v1 features (`avspot data ingest`)."
    else:
        what = f"data source `{source}` (unknown: not presented as SoccerNet)."
    return f"Data: {what} Table fingerprint `{fingerprint[:16]}`."


# ---- figures ------------------------------------------------------------------------------------


def _history(client: MlflowClient, run_id: str) -> list[dict[str, float]]:
    rows: dict[int, dict[str, float]] = defaultdict(dict)
    for key in ("train_loss", "train_map", "val_map", "val_average_map", "lr"):
        for h in client.get_metric_history(run_id, key):
            rows[h.step][key] = h.value
    return [{"epoch": float(s), **rows[s]} for s in sorted(rows)]


def _figures(
    client: MlflowClient, trials: list[Trial], monitor: str, fig_dir: Path, tag: str
) -> dict[str, str]:
    from avspot.search import plots

    out: dict[str, str] = {}
    best = _best(trials, monitor)
    if best is not None:
        hist = _history(client, best.run_id)
        if hist:
            path = fig_dir / f"{tag}learning_curves.png"
            plots.learning_curves(
                hist, path, title=f"learning curves: {best.name} ({best.fusion}, {_describe(best)})"
            )
            out["Figure 3: learning curves of the best model"] = path.name
    curves = {}
    for w in _windows(trials):
        b = _best([t for t in trials if t.fusion not in SINGLE and t.window_s == w], monitor)
        if b is None:
            continue
        spot = _download_json(client, b.run_id, "metrics/val_spotting.json") or {}
        info = spot.get(b.spot_method) or next(iter(spot.values()), None)
        if info and info.get("tolerances"):
            curves[f"{b.fusion}, {b.pooling_label}, T={w:g}s"] = info
    if curves:
        path = fig_dir / f"{tag}map_vs_tolerance.png"
        plots.tolerance_curve(
            curves, path, title="mAP vs tolerance, best audio+video model per window"
        )
        out["Figure 2: mAP as a function of the tolerance δ"] = path.name
    return out


# ---- report ---------------------------------------------------------------------------------------


def _parents_table(parents: list[Any]) -> str:
    rows = []
    for p in parents:
        pp = p.data.params
        rows.append(
            [
                f"`{p.info.run_name}`",
                p.info.status,
                pp.get("space", "?"),
                scrub_text(pp.get("data_uri", "?")),
                pp.get("data_source", "?"),
                pp.get("data_fingerprint", "?")[:12],
                pp.get("trials", "?"),
                pp.get("metric", "?"),
                pp.get("code_version", "?"),
            ]
        )
    return _md_table(
        [
            "search run",
            "status",
            "space",
            "data",
            "source",
            "fingerprint",
            "trials",
            "metric",
            "code",
        ],
        rows,
    )


def render(client: MlflowClient, experiment: str, out_dir: Path) -> dict[str, Any]:
    """Write report.md, figures/ and report.json into `out_dir`; returns the JSON summary."""
    parents, trials, monitor = collect(client, experiment)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    md = [f"# avspot report: experiment `{experiment}`", ""]
    md += [
        f"{len(parents)} search run(s), {len(trials)} trial run(s) with validation metrics. "
        f"Model selection metric: `{monitor}`. All values: validation split, at each trial's "
        "best epoch, in percent; a table cell is the best trial of its group.",
        "",
        "## Searches",
        "",
        _parents_table(parents) if parents else "(no search runs)",
        "",
    ]
    summary: dict[str, Any] = {"experiment": experiment, "monitor": monitor, "datasets": []}
    groups: dict[tuple[str, str], list[Trial]] = defaultdict(list)
    for t in trials:
        groups[(t.source, t.fingerprint)].append(t)
    if not groups:
        md.append("No trial has validation metrics yet.")
    for gi, ((source, fingerprint), ts) in enumerate(sorted(groups.items())):
        tag = f"d{gi}_" if len(groups) > 1 else ""
        md += [
            f"## Results on {source} data `{fingerprint[:12]}`",
            "",
            _data_heading(source, fingerprint),
            "",
        ]
        md += ["### Leaderboard", "", table_leaderboard(ts, monitor), ""]
        md += [
            "### Table 1: chunk classification mAP per merging method and window",
            "",
            table_fusion(ts),
            "",
            "### Table 2: chunk classification AP per class",
            "",
            table_per_class(ts),
            "",
        ]
        bf = _best_fusion(ts) or _best(ts, "val_map")
        conf = _download_json(client, bf.run_id, "metrics/val_confusion.json") if bf else None
        if conf:
            md += [
                f"### Table 3: confusion matrix of `{bf.name}` ({bf.fusion}, {_describe(bf)})",
                "",
                table_confusion(conf),
                "",
            ]
            from avspot.search import plots

            plots.confusion_matrix(
                conf, fig_dir / f"{tag}confusion.png", title=f"{bf.fusion}, {_describe(bf)}"
            )
            md += [f"![confusion matrix](figures/{tag}confusion.png)", ""]
        md += [
            "### Table 4: chunk classification mAP per pooling and modality",
            "",
            table_pooling(ts),
            "",
        ]
        t5, full = table_spotting(ts, monitor)
        md += [
            "### Table 5: Average-mAP (loose, official evaluator) per spotting method",
            "",
            t5,
            "",
        ]
        if not full:
            md += [
                "Only the trainer's own post-processing was measured (its column); the others "
                "are logged when trials evaluate their best checkpoint with all three methods.",
                "",
            ]
        for title, name in _figures(client, ts, monitor, fig_dir, tag).items():
            md += [f"### {title}", "", f"![{title}](figures/{name})", ""]
        best = _best(ts, monitor)
        summary["datasets"].append(
            {
                "source": source,
                "fingerprint": fingerprint,
                "synthetic": "synth" in source.lower(),
                "trials": len(ts),
                "best_run_id": best.run_id if best else None,
                "best_value": best.metrics.get(monitor) if best else None,
            }
        )
    (out_dir / "report.md").write_text(scrub_text("\n".join(md)) + "\n")
    (out_dir / "report.json").write_text(scrub_text(json.dumps(summary, indent=2)) + "\n")
    summary["parent_run_id"] = parents[-1].info.run_id if parents else None
    return summary


def build_report(
    experiment: str,
    out_dir: str | os.PathLike[str],
    *,
    uri: str | None = None,
    log_to_parent: bool = True,
) -> Path:
    """Build the report of `experiment` into `out_dir` atomically; log it to the latest parent
    run under `report/`. Returns the report directory."""
    client = get_client(uri)
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out_dir}: exists and is not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        summary = render(client, experiment, tmp)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "report")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if log_to_parent and summary.get("parent_run_id"):
        client.log_artifacts(summary["parent_run_id"], str(out), "report")
    return out


def report_cli(args: argparse.Namespace) -> int:
    """`avspot report --experiment NAME --out DIR`."""
    out = build_report(args.experiment, args.out)
    print(f"wrote {out / 'report.md'}")
    return 0

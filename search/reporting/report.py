"""``avspot report``: the seed study's tables and figures regenerated from an experiment's runs.

Tables 1-5 (mAP per fusion method and window, per-class AP, confusion matrix, mAP per pooling and
modality, Average-mAP per spotting method) come from the trial runs' params and metrics, the
figures from their metric histories and JSON artifacts (``reporting.trials``,
``reporting.tables``). Beyond the seed: what each search cost against the full grid
(``reporting.compute``) and where audio should join video: the fusion point x modality table,
parameter importance, parallel coordinates, intermediate values and the Pareto front of
Average-mAP against inference cost (``reporting.analysis``, drawn by Optuna). Every section
and every figure names its data; synthetic results are labelled as such, never as SoccerNet. Values are validation-split numbers
at each trial's best epoch, in percent.

The report directory is written under a temporary name and renamed into place at the end, then
logged to the experiment's latest search (parent) run under ``report/``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avspot.datasets.errors import DataError
from avspot.datasets.manifest import is_synthetic
from avspot.search import plots
from avspot.search.reporting.analysis import render_analysis
from avspot.search.reporting.compute import ComputeTotals, compute_totals
from avspot.search.reporting.tables import (
    SINGLE,
    best_fusion,
    best_trial,
    data_heading,
    describe,
    md_table,
    table_confusion,
    table_fusion,
    table_leaderboard,
    table_per_class,
    table_pooling,
    table_spotting,
    table_spotting_per_class,
    vocabulary_of,
    windows_of,
)
from avspot.search.reporting.trials import Trial, collect, download_json
from avspot.search.tracking.client import get_client
from avspot.search.tracking.names import TAG_CODE_VERSION
from avspot.search.tracking.scrub import scrub_text

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient


# ---- figures ------------------------------------------------------------------------------------


def _history(client: MlflowClient, run_id: str) -> list[dict[str, float]]:
    rows: dict[int, dict[str, float]] = defaultdict(dict)
    for key in ("train_loss", "train_map", "val_map", "val_average_map", "lr", "lr_decayed"):
        for h in client.get_metric_history(run_id, key):
            rows[h.step][key] = h.value
    return [{"epoch": float(s), **rows[s]} for s in sorted(rows)]


def _figures(
    client: MlflowClient,
    trials: list[Trial],
    monitor: str,
    fig_dir: Path,
    tag: str,
    *,
    source: str | None,
) -> dict[str, str]:
    out: dict[str, str] = {}
    best = best_trial(trials, monitor)
    if best is not None:
        hist = _history(client, best.run_id)
        if hist:
            path = fig_dir / f"{tag}learning_curves.png"
            plots.learning_curves(
                hist,
                path,
                source=source,
                title=f"learning curves: {best.name} ({best.fusion}, {describe(best)})",
                schedule=best.schedule,
            )
            out["Figure 3: learning curves of the best model"] = path.name
    curves = {}
    for w in windows_of(trials):
        b = best_trial([t for t in trials if t.fusion not in SINGLE and t.window_s == w], monitor)
        if b is None:
            continue
        spot = download_json(client, b.run_id, "metrics/val_spotting.json") or {}
        info = spot.get(b.spot_method) or next(iter(spot.values()), None)
        if info and info.get("deltas"):
            curves[f"{b.fusion}, {b.pooling_label}, T={w:g}s"] = info
    if curves:
        path = fig_dir / f"{tag}map_vs_tolerance.png"
        plots.tolerance_curve(
            curves,
            path,
            source=source,
            title="mAP vs tolerance, best audio+video model per window",
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
                p.data.tags.get(TAG_CODE_VERSION, "?"),
            ]
        )
    return md_table(
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


def _compute_table(totals: list[ComputeTotals]) -> str:
    rows = []
    for c in totals:
        m = c.metrics()
        saved = m["saved_fraction"]
        rows.append(
            [
                f"`{c.run_name}`",
                str(c.trials),
                str(c.trial_epochs),
                f"{m['total_wall_h']:.3f}",
                f"{m['total_cpu_core_h']:.3f}",
                f"{m['total_gpu_h']:.3f}",
                f"{m['grid_estimate_cpu_core_h']:.3f}",
                f"{m['grid_estimate_gpu_h']:.3f}",
                f"{c.estimate_trial_epochs}",
                "–" if saved != saved else f"{100 * saved:.0f}%",
                c.basis_text,
            ]
        )
    header = [
        "search run",
        "trials",
        "trial-epochs",
        "trial wall h",
        "CPU-core h",
        "GPU h",
        "full CPU-core h",
        "full GPU h",
        "full trial-epochs",
        "saved",
        "full-search estimate",
    ]
    return md_table(header, rows)


def compute_lines(report_dir: str | os.PathLike[str]) -> list[str]:
    """The compute totals of a written report, as lines for the terminal (hours)."""
    summary = json.loads((Path(report_dir) / "report.json").read_text())
    return [line for c in summary.get("compute", []) for line in c.get("lines", [])]


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
    totals = [compute_totals(client, p.info.run_id) for p in parents]
    if totals:
        md += [
            "## Does the search pay off? Compute",
            "",
            "Hours the trials held (wall time x the CPUs and GPUs each trial was assigned; "
            "trials stopped by ASHA count with the epochs they ran) against the same space run "
            "in full at the measured mean cost per trial-epoch: every grid configuration for "
            "`max_epochs` (grid spaces), or the same number of trials each for `max_epochs` "
            "without early stopping (TPE spaces).",
            "",
            _compute_table(totals),
            "",
        ]
    summary: dict[str, Any] = {
        "experiment": experiment,
        "monitor": monitor,
        "compute": [{**c.to_dict(), "lines": c.lines()} for c in totals],
        "datasets": [],
    }
    by_id = {p.info.run_id: p for p in parents}
    groups: dict[tuple[str, str], list[Trial]] = defaultdict(list)
    for t in trials:
        groups[(t.source, t.fingerprint)].append(t)
    if not groups:
        md.append("No trial has validation metrics yet.")
    for gi, ((source, fingerprint), ts) in enumerate(sorted(groups.items())):
        # every figure of this group names its data (source=)
        tag = f"d{gi}_" if len(groups) > 1 else ""
        md += [
            f"## Results on {source} data `{fingerprint[:12]}`",
            "",
            data_heading(source, fingerprint),
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
        bf = best_fusion(ts) or best_trial(ts, "val_map")
        conf = download_json(client, bf.run_id, "metrics/val_confusion.json") if bf else None
        if conf:
            md += [
                f"### Table 3: confusion matrix of `{bf.name}` ({bf.fusion}, {describe(bf)})",
                "",
                table_confusion(conf, vocabulary_of(ts)),
                "",
            ]
            vocabulary = vocabulary_of(ts)
            plots.confusion_matrix(
                conf,
                fig_dir / f"{tag}confusion.png",
                source=source,
                labels=[vocabulary.display_name(o) for o in vocabulary.outputs],
                title=f"{bf.fusion}, {describe(bf)}",
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
        md += [
            "### Table 6: Average-mAP per class, loose and tight (the kept epoch, every "
            "validation half)",
            "",
            table_spotting_per_class(ts, monitor),
            "",
        ]
        for title, name in _figures(client, ts, monitor, fig_dir, tag, source=source).items():
            md += [f"### {title}", "", f"![{title}](figures/{name})", ""]
        max_epochs = max((c.max_epochs for c in totals), default=None)
        analysis_md, analysis = render_analysis(
            client, ts, by_id, monitor, fig_dir, tag=tag, max_epochs=max_epochs, source=source
        )
        md += analysis_md
        best = best_trial(ts, monitor)
        summary["datasets"].append(
            {
                "source": source,
                "fingerprint": fingerprint,
                "synthetic": is_synthetic(source),
                "trials": len(ts),
                "best_run_id": best.run_id if best else None,
                "best_value": best.metrics.get(monitor) if best else None,
                "importance": analysis["importance"],
                "fusion_table": analysis["fusion_table"],
                "pareto": analysis["pareto"],
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
        raise DataError(f"out {out_dir}: exists and is not a directory", field="out")
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

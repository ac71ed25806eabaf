"""Where should audio join video? A search's analysis in Markdown, JSON and figures.

From the Optuna study that ``reporting.study`` rebuilds from the MLflow trial runs: parameter
importance (twice: ASHA-stopped trials at their best value, and completed trials only; the
counts go with both), the fusion x modality table (``reporting.fusion_table``), Optuna's
figures (``reporting.figures``: importance, parallel coordinates, intermediate values, Pareto
front of Average-mAP against inference cost) and the Pareto fronts as tables.
``log_search_analysis`` writes it all and the compute totals (``reporting.compute``) to the
parent run under ``analysis/``; ``avspot report`` includes the same sections.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avspot.search.reporting.figures import (
    INTERMEDIATE_TITLE,
    PARALLEL_TITLE,
    PARETO_TITLE,
    search_figures,
)
from avspot.search.reporting.fusion_table import fusion_table
from avspot.search.reporting.study import (
    MIN_PED_ANOVA,
    PARETO_COSTS,
    STATUS_COMPLETED,
    STATUS_STOPPED,
    Scored,
    param_importance,
    pareto,
    score_trials,
)
from avspot.search.reporting.tables import md_table
from avspot.search.reporting.trials import Trial
from avspot.search.tracking import names
from avspot.search.tracking.client import retry
from avspot.search.tracking.scrub import scrub_text

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient


# ---- Markdown and the parent run's artifacts ----------------------------------------------------


def _fmt_cost(key: str, v: float) -> str:
    if key != names.M_N_PARAMS:
        return f"{v:.3g} s"
    return f"{v / 1e6:.2f} M" if v >= 1e5 else f"{v:,.0f}"


def importance_md(imp: dict[str, Any], monitor: str) -> list[str]:
    """The importance section's text and table."""
    c = imp["counts"]
    lines = [
        f"Optuna's own evaluators ({imp['evaluator']}; PED-ANOVA too from {MIN_PED_ANOVA} "
        "trials) over a study rebuilt from the MLflow trial runs (params, distributions inferred "
        f"from the logged values). A trial's value is its best validation `{monitor}` over the "
        f"epochs it ran. Trials: **{c[STATUS_COMPLETED]} completed**, **{c[STATUS_STOPPED]} "
        f"stopped early by ASHA**, {c['failed']} failed (left out). *All trials*: stopped "
        "trials included at their best value over the epochs they ran (an underestimate of "
        "what they would have reached). *Completed only*: stopped trials as PRUNED, as the "
        "search's own `optuna.db` records them.",
        "",
    ]
    if imp["conditional"]:
        lines += [
            "Conditional parameters (absent from some trials; fANOVA leaves them out, "
            f"PED-ANOVA assesses them from {MIN_PED_ANOVA} trials): "
            + ", ".join(f"`{p}`" for p in imp["conditional"])
            + ".",
            "",
        ]
    results = imp["results"]
    if results:
        params = list(dict.fromkeys(p for r in results.values() for p in r))
        rows = [
            [f"`{p}`", *(f"{r[p]:.3f}" if p in r else "–" for r in results.values())]
            for p in params
        ]
        lines += [md_table(["parameter", *results], rows), ""]
    for note in imp["notes"]:
        lines.append(f"- not computed: {note}")
    if imp["notes"]:
        lines.append("")
    return lines


def pareto_md(front: dict[str, list[dict]]) -> list[str]:
    lines = []
    for key, label in PARETO_COSTS:
        pts = sorted((p for p in front.get(key, []) if p["front"]), key=lambda p: p["cost"])
        if not pts:
            continue
        n = len(front[key])
        lines += [
            f"Pareto front over {label} (`{key}`): {len(pts)} of the {n} trials that logged "
            "it are on it.",
            "",
            md_table(
                ["run", "fusion", "pooling", label, "Average-mAP (%)"],
                [
                    [
                        f"`{p['run']}`",
                        p["fusion"],
                        p["pooling"],
                        _fmt_cost(key, p["cost"]),
                        f"{100 * p['value']:.1f}",
                    ]
                    for p in pts
                ],
            ),
            "",
        ]
    return lines


def render_analysis(
    client: MlflowClient,
    trials: list[Trial],
    parents: dict[str, Any],
    monitor: str,
    fig_dir: Path,
    *,
    tag: str = "",
    fig_prefix: str = "figures/",
    level: str = "###",
    max_epochs: int | None = None,
    source: str | None,
) -> tuple[list[str], dict[str, Any]]:
    """The analysis sections (Markdown lines) and their numbers for ``trials``; figures are
    written to ``fig_dir`` (each footnoted with ``source``, the trials' data) and linked as
    ``fig_prefix`` + name."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    scored = score_trials(client, trials, monitor)
    imp = param_importance(scored)
    front = pareto(scored)
    table_md, table = fusion_table(trials, parents)
    figs = search_figures(scored, monitor, fig_dir, tag, max_epochs, source=source, importance=imp)

    def fig(prefix: str) -> list[str]:
        return [
            line
            for title, name in figs.items()
            if title.startswith(prefix)
            for line in (f"![{title}]({fig_prefix}{name})", "")
        ]

    md = [f"{level} Where should audio join video? Fusion point x modality", "", table_md]
    md += [f"{level} Parameter importance", "", *importance_md(imp, monitor)]
    md += fig("Parameter importance")
    for title in (PARALLEL_TITLE, INTERMEDIATE_TITLE):
        if title in figs:
            md += [f"{level} {title}", "", *fig(title)]
    md += [f"{level} {PARETO_TITLE}", ""]
    md += fig(PARETO_TITLE) + pareto_md(front)
    if not any(front.values()):
        md += ["No trial logged `spot_s_per_half` or `n_params` yet.", ""]
    states = {s.trial.run_id: s.state for s in scored}
    data = {
        "importance": imp,
        "pareto": front,
        "fusion_table": table,
        "trials": [
            {
                "run_id": s.trial.run_id,
                "state": states[s.trial.run_id],
                "score": s.score,
                "params": s.params,
                "curve": s.curve,
            }
            for s in scored
        ],
        "figures": figs,
    }
    return md, data


def summarize_stopped(client: MlflowClient, scored: list[Scored], monitor: str) -> int:
    """Give ASHA-stopped trial runs the summary that ``on_train_end`` never logged for them:
    ``best_<monitor>`` over the epochs they ran (at its epoch) and ``epochs``, so that the UI's
    columns and charts compare every trial. Returns how many runs it completed."""
    from avspot.search.tracking.client import log_metrics

    n = 0
    for s in scored:
        key = f"best_{monitor}"
        if s.state != STATUS_STOPPED or not s.curve or key in s.trial.metrics:
            continue
        step = max(s.curve, key=lambda ev: (ev[1], -ev[0]))[0]
        log_metrics(client, s.trial.run_id, {key: s.score, "epochs": len(s.curve)}, step=step)
        n += 1
    return n


def _data_source(parent: Any, trials: list[Trial]) -> str | None:
    """Which data a search's trials saw: the parent's ``data_source`` param, else the one
    source its trials name (None: not known; the figures then say so)."""
    if parent.data.params.get("data_source"):
        return str(parent.data.params["data_source"])
    sources = {t.source for t in trials}
    return sources.pop() if len(sources) == 1 else None


def log_search_analysis(parent_run_id: str, *, uri: str | None = None) -> list[str]:
    """At the end of a search: log the compute totals on the parent run, the summary of its
    stopped trials (``summarize_stopped``) and write the analysis (``analysis.md``,
    ``analysis.json``, figures) as the parent's artifacts under ``analysis/``. Returns lines to
    print; never raises (the search's result stands without its analysis)."""
    from avspot.search.reporting.compute import log_compute
    from avspot.search.reporting.trials import collect
    from avspot.search.tracking.client import get_client

    lines: list[str] = []
    try:
        client = get_client(uri)
        totals = log_compute(client, parent_run_id)
        lines += totals.lines()
        parent = client.get_run(parent_run_id)
        exp = client.get_experiment(parent.info.experiment_id)
        parents, trials, _ = collect(client, exp.name)
        monitor = parent.data.params.get("metric", names.DEFAULT_METRIC)
        trials = [t for t in trials if t.parent == parent_run_id]
        by_id = {p.info.run_id: p for p in parents}
        summarize_stopped(client, score_trials(client, trials, monitor), monitor)
        with tempfile.TemporaryDirectory(prefix="avspot-analysis-") as tmp:
            root = Path(tmp)
            md, data = render_analysis(
                client,
                trials,
                by_id,
                monitor,
                root,
                fig_prefix="",
                level="##",
                max_epochs=totals.max_epochs,
                source=_data_source(parent, trials),
            )
            head = [f"# Analysis of search `{parent.info.run_name}`", "", "## Compute", ""]
            head += [f"    {line.strip()}" for line in totals.lines()] + [""]
            (root / "analysis.md").write_text(scrub_text("\n".join(head + md)) + "\n")
            data["compute"] = totals.to_dict()
            text = json.dumps(data, indent=2, default=str)
            (root / "analysis.json").write_text(scrub_text(text) + "\n")
            retry(client.log_artifacts, parent_run_id, str(root), names.ANALYSIS_DIR)
    except Exception as exc:  # noqa: BLE001 - report it, keep the search's result
        lines.append(
            f"avspot: search analysis failed: {scrub_text(f'{type(exc).__name__}: {exc}')}"
        )
    return lines

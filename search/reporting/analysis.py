"""Where should audio join video? A search's trials as an Optuna study, from MLflow alone.

The trial runs of any search recorded in MLflow (params + per-epoch metric history) are rebuilt
as an in-memory Optuna study (``optuna.trial.create_trial``, distributions inferred from the
logged values), so Optuna's own importance evaluators (fANOVA, and PED-ANOVA when there are
enough trials) say which searched parameter mattered. A trial's value is its best reported
validation value over the epochs it ran.

ASHA-stopped trials (run status KILLED) are handled explicitly: importance is computed twice,
once with them included as COMPLETE at their best value over the epochs they ran (all trials:
more points, but their values are underestimates) and once with them as PRUNED, as the search's
own ``optuna.db`` records them (``tuning.searcher``), i.e. completed trials only; the counts go
with both. FAILED runs are left out of the study.

Figures: parallel coordinates of the searched parameters, the intermediate values (validation
metric per epoch, stopped trials visibly shorter) and the Pareto front of Average-mAP against
inference cost (``spot_s_per_half``, ``n_params``). ``log_search_analysis`` writes it all, the
fusion x modality table (``reporting.fusion_table``) and the compute totals
(``reporting.compute``) to the parent run under ``analysis/``.
"""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avspot.avmodels.fusion_methods import FUSIONS
from avspot.avmodels.pooling import POOLINGS
from avspot.search import plots
from avspot.search.reporting.fusion_table import fusion_table
from avspot.search.reporting.tables import md_table
from avspot.search.reporting.trials import Trial
from avspot.search.tracking import names
from avspot.search.tracking.client import retry
from avspot.search.tracking.scrub import scrub_text

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    from mlflow import MlflowClient

# Trial params that are not hyperparameters (replicates, bookkeeping).
NOT_SEARCHED = frozenset({"seed", "monitor", "num_threads", "val_spotting"})
KEY_PARAMS = ("fusion", "pooling", "clusters", "window_s")  # first axes, in this order
ORDERS = {"fusion": list(FUSIONS), "pooling": list(POOLINGS)}
MIN_PED_ANOVA = 20  # PED-ANOVA compares the top 10% with the rest: needs more trials
STATUS_COMPLETED, STATUS_STOPPED = "completed", "stopped"


@dataclass
class Scored:
    """A trial run with its searched params, per-epoch curve and best value."""

    trial: Trial
    params: dict[str, str]
    curve: list[tuple[int, float]]  # (epoch, monitor value)
    score: float  # best reported value of the monitor (nan: none)

    @property
    def state(self) -> str:
        """completed (FINISHED), stopped (ASHA: KILLED, or never ended) or failed."""
        status = self.trial.status
        if status == "FINISHED":
            return STATUS_COMPLETED
        return "failed" if status == "FAILED" else STATUS_STOPPED


def _short(key: str) -> str:
    return key.split(".", 1)[1] if key.startswith("model.") else key


def trial_params(trial: Trial) -> dict[str, str]:
    """The run's params by short name, without those its config ignores (a pooling's clusters
    when it has none, a cosine schedule's patience): conditional parameters stay conditional."""
    params = {_short(k): v for k, v in trial.params.items()}
    pooling = POOLINGS.get(params.get("pooling", ""))
    if "clusters" in params and (pooling is None or not pooling.has_clusters):
        del params["clusters"]
    if params.get("schedule") == "cosine":
        params.pop("patience", None)
    return params


def score_trials(client: MlflowClient, trials: list[Trial], monitor: str) -> list[Scored]:
    """Each trial with its monitor curve and best value (the max over its epochs)."""
    out = []
    for t in trials:
        hist = retry(client.get_metric_history, t.run_id, monitor)
        by_step = {h.step: h.value for h in hist if math.isfinite(h.value)}
        curve = sorted(by_step.items())
        score = max((v for _, v in curve), default=t.metrics.get(monitor, math.nan))
        out.append(Scored(t, trial_params(t), curve, float(score)))
    return out


def searched_params(scored: list[Scored]) -> list[str]:
    """Params whose value varies across the trials (key ones first, then alphabetical)."""
    values: dict[str, set[str]] = {}
    for s in scored:
        for k, v in s.params.items():
            values.setdefault(k, set()).add(v)
    varying = {k for k, vs in values.items() if len(vs) > 1 and k not in NOT_SEARCHED}
    varying |= {k for k in values if k not in NOT_SEARCHED and _conditional(k, scored)}
    return [k for k in KEY_PARAMS if k in varying] + sorted(varying - set(KEY_PARAMS))


def _conditional(name: str, scored: list[Scored]) -> bool:
    present = sum(1 for s in scored if name in s.params)
    return 0 < present < len(scored)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def infer_distribution(name: str, values: list[str]) -> optuna.distributions.BaseDistribution:
    """An Optuna distribution covering ``values`` as logged: integers -> IntDistribution,
    other numbers -> FloatDistribution (log scale when positive over two decades or more),
    anything else -> CategoricalDistribution (fusion and pooling in registry order)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    nums = [_number(v) for v in values]
    if values and all(n is not None for n in nums):
        lo, hi = min(nums), max(nums)  # type: ignore[type-var]
        if all("." not in v and "e" not in v.lower() for v in values):
            return IntDistribution(int(lo), int(hi))
        return FloatDistribution(float(lo), float(hi), log=lo > 0 and hi / lo >= 100)
    choices = sorted(set(values))
    order = ORDERS.get(name, [])
    choices.sort(key=lambda c: (order.index(c) if c in order else len(order), c))
    return CategoricalDistribution(choices)


def _value(dist: Any, text: str) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return text
    return int(float(text)) if isinstance(dist, IntDistribution) else float(text)


def build_study(scored: list[Scored], params: list[str], *, include_stopped: bool) -> optuna.Study:
    """An in-memory study of the trials: completed ones COMPLETE with their best value, stopped
    ones COMPLETE at their best partial value (``include_stopped``) or PRUNED; per-epoch values
    as intermediate values; failed ones left out."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {
        p: infer_distribution(p, [s.params[p] for s in scored if p in s.params]) for p in params
    }
    study = optuna.create_study(direction="maximize")
    for s in scored:
        if s.state == "failed" or math.isnan(s.score):
            continue
        complete = s.state == STATUS_COMPLETED or include_stopped
        present = [p for p in params if p in s.params]
        study.add_trial(
            create_trial(
                params={p: _value(dists[p], s.params[p]) for p in present},
                distributions={p: dists[p] for p in present},
                value=s.score if complete else None,
                state=TrialState.COMPLETE if complete else TrialState.PRUNED,
                intermediate_values=dict(s.curve),
                user_attrs={"run_id": s.trial.run_id, "mlflow_status": s.trial.status},
            )
        )
    return study


def _importance(study: optuna.Study, evaluator: Any, params: list[str]) -> dict[str, float]:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp = optuna.importance.get_param_importances(study, evaluator=evaluator, params=params)
    return {k: float(v) for k, v in imp.items()}


def param_importance(scored: list[Scored]) -> dict[str, Any]:
    """Optuna's fANOVA importances over all trials (stopped ones at their best value) and over
    completed trials only; PED-ANOVA over all trials when there are at least ``MIN_PED_ANOVA``
    (it also assesses conditional parameters, which fANOVA leaves out)."""
    import optuna

    usable = [s for s in scored if s.state != "failed" and not math.isnan(s.score)]
    params = searched_params(usable)
    counts = {
        STATUS_COMPLETED: sum(1 for s in usable if s.state == STATUS_COMPLETED),
        STATUS_STOPPED: sum(1 for s in usable if s.state == STATUS_STOPPED),
        "failed": sum(1 for s in scored if s.state == "failed"),
    }
    conditional = [p for p in params if _conditional(p, usable)]
    unconditional = [p for p in params if p not in conditional]
    out: dict[str, Any] = {
        "evaluator": "FanovaImportanceEvaluator(seed=0)",
        "params": params,
        "conditional": conditional,
        "counts": counts,
        "results": {},
        "notes": [],
    }
    variants = [
        ("all trials", True, counts[STATUS_COMPLETED] + counts[STATUS_STOPPED]),
        ("completed only", False, counts[STATUS_COMPLETED]),
    ]
    for label, include, n in variants:
        if n < 2 or not unconditional:
            out["notes"].append(f"{label}: {n} trial(s), {len(unconditional)} parameter(s)")
            continue
        study = build_study(usable, params, include_stopped=include)
        fanova = optuna.importance.FanovaImportanceEvaluator(seed=0)
        try:
            out["results"][f"fANOVA, {label}"] = _importance(study, fanova, unconditional)
        except (ValueError, RuntimeError) as exc:
            out["notes"].append(f"fANOVA, {label}: {exc}")
    n_all = variants[0][2]
    if n_all >= MIN_PED_ANOVA and params:
        study = build_study(usable, params, include_stopped=True)
        try:
            ped = optuna.importance.PedAnovaImportanceEvaluator()
            out["results"]["PED-ANOVA, all trials"] = _importance(study, ped, params)
        except (ValueError, RuntimeError) as exc:
            out["notes"].append(f"PED-ANOVA, all trials: {exc}")
    return out


def pareto_mask(costs: list[float], values: list[float]) -> list[bool]:
    """Whether each point is on the Pareto front (lower cost, higher value)."""
    out = []
    for i, (c, v) in enumerate(zip(costs, values, strict=True)):
        dominated = any(
            c2 <= c and v2 >= v and (c2 < c or v2 > v)
            for j, (c2, v2) in enumerate(zip(costs, values, strict=True))
            if j != i
        )
        out.append(not dominated)
    return out


PARETO_COSTS = (
    (names.M_SPOT_S_PER_HALF, "spotting seconds per validation half"),
    (names.M_N_PARAMS, "parameters"),
)


def pareto(scored: list[Scored], metric: str = "val_average_map") -> dict[str, list[dict]]:
    """Per inference cost: the trials that logged it, their best ``metric`` and whether they
    are on the front (stopped trials have ``n_params`` but no spotting time)."""
    out: dict[str, list[dict]] = {}
    for key, _ in PARETO_COSTS:
        pts = [
            (s, s.trial.metrics[key], s.trial.metrics.get(metric, math.nan))
            for s in scored
            if key in s.trial.metrics and s.state != "failed"
        ]
        pts = [p for p in pts if math.isfinite(p[2])]
        mask = pareto_mask([p[1] for p in pts], [p[2] for p in pts])
        out[key] = [
            {
                "run": s.trial.name,
                "run_id": s.trial.run_id,
                "fusion": s.trial.fusion,
                "pooling": s.trial.pooling_label,
                "cost": cost,
                "value": value,
                "front": front,
            }
            for (s, cost, value), front in zip(pts, mask, strict=True)
        ]
    return out


def _axis_value(dist: Any, text: str | None) -> Any:
    from optuna.distributions import CategoricalDistribution

    if text is None:
        return None
    return text if isinstance(dist, CategoricalDistribution) else float(text)


def figures(
    scored: list[Scored], monitor: str, fig_dir: Path, tag: str = "", max_epochs: int | None = None
) -> dict[str, str]:
    """Parallel coordinates, intermediate values and the Pareto front as PNGs in ``fig_dir``;
    returns {title: file name}."""
    from optuna.distributions import FloatDistribution

    out: dict[str, str] = {}
    usable = [s for s in scored if not math.isnan(s.score)]
    params = searched_params(usable)
    if usable and params:
        dists = {
            p: infer_distribution(p, [s.params[p] for s in usable if p in s.params]) for p in params
        }
        axes = [(p, [_axis_value(dists[p], s.params.get(p)) for s in usable]) for p in params]
        logs = [p for p, d in dists.items() if isinstance(d, FloatDistribution) and d.log]
        path = fig_dir / f"{tag}parallel_coordinates.png"
        plots.parallel_coordinates(
            axes,
            [s.score for s in usable],
            path,
            stopped=[s.state == STATUS_STOPPED for s in usable],
            metric=f"best {monitor}",
            log_axes=logs,
            orders=ORDERS,
        )
        out["Parallel coordinates of the searched parameters"] = path.name
    curves = [
        (
            s.trial.fusion,
            [e for e, _ in s.curve],
            [v for _, v in s.curve],
            s.state != STATUS_COMPLETED,
        )
        for s in sorted(
            scored,
            key=lambda s: (
                list(FUSIONS).index(s.trial.fusion) if s.trial.fusion in FUSIONS else len(FUSIONS)
            ),
        )
        if s.curve
    ]
    if curves:
        path = fig_dir / f"{tag}intermediate_values.png"
        plots.intermediate_values(curves, path, metric=monitor, max_epochs=max_epochs)
        out["Intermediate values: validation metric per epoch of every trial"] = path.name
    front = pareto(scored)
    panels = [
        (
            label,
            [
                (p["cost"], p["value"], f"{p['fusion']}, {p['pooling']}", p["front"])
                for p in front[key]
            ],
        )
        for key, label in PARETO_COSTS
        if front[key]
    ]
    if panels:
        path = fig_dir / f"{tag}pareto_front.png"
        plots.pareto_front(panels, path)
        out["Pareto front: Average-mAP against inference cost"] = path.name
    return out


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
) -> tuple[list[str], dict[str, Any]]:
    """The analysis sections (Markdown lines) and their numbers for ``trials``; figures are
    written to ``fig_dir`` and linked as ``fig_prefix`` + name."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    scored = score_trials(client, trials, monitor)
    imp = param_importance(scored)
    front = pareto(scored)
    table_md, table = fusion_table(trials, parents)
    figs = figures(scored, monitor, fig_dir, tag, max_epochs)
    if imp["results"]:
        path = fig_dir / f"{tag}param_importance.png"
        plots.importance_bars(imp["results"], path)
        figs["Parameter importance"] = path.name

    def fig(title: str) -> list[str]:
        return [f"![{title}]({fig_prefix}{figs[title]})", ""] if title in figs else []

    md = [f"{level} Where should audio join video? Fusion point x modality", "", table_md]
    md += [f"{level} Parameter importance", "", *importance_md(imp, monitor)]
    md += fig("Parameter importance")
    for title in list(figs)[:2]:
        md += [f"{level} {title}", "", *fig(title)]
    title = "Pareto front: Average-mAP against inference cost"
    md += [f"{level} {title}", ""]
    md += fig(title) + pareto_md(front)
    if title not in figs:
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

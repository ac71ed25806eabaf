"""A search's trials as an in-memory Optuna study, rebuilt from MLflow alone.

The trial runs of any search recorded in MLflow (params + per-epoch metric history) become
``optuna.trial.create_trial`` trials, distributions inferred from the logged values, so that
Optuna's own importance evaluators (fANOVA, and PED-ANOVA when there are enough trials) say
which searched parameter mattered and Optuna draws the figures (``reporting.figures``). A
trial's value is its best reported validation value over the epochs it ran.

ASHA-stopped trials (run status KILLED) are handled explicitly: importance is computed twice,
once with them included as COMPLETE at their best value over the epochs they ran (all trials:
more points, but their values are underestimates) and once with them as PRUNED, as the search's
own ``optuna.db`` records them (``tuning.searcher``), i.e. completed trials only; the counts go
with both. FAILED runs are left out of the study. The Pareto front: each trial's Average-mAP
against its inference cost (``spot_s_per_half``, ``n_params``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from avspot.avmodels.fusion_methods import FUSIONS
from avspot.avmodels.pooling import POOLINGS
from avspot.search.reporting.trials import Trial
from avspot.search.tracking import names
from avspot.search.tracking.client import retry

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

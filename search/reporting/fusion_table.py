"""The fusion point x modality table: best validation Average-mAP per fusion method.

Rows are the fusion registry's methods in its order (video-only and audio-only first, then the
seed's merging methods 1-7, with their labels), columns the best over everything and then per
pooling and window. Searches are grouped by space (the data is fixed by the caller); where a
space was searched with several seeds (parent runs record ``seed``), a cell is the median over
seeds of each seed's best trial, with the min-max range.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from avspot.avmodels.fusion_methods import FUSIONS
from avspot.search.reporting.tables import md_table
from avspot.search.reporting.trials import Trial

BEST_COLUMN = "best"
MAX_COLUMNS = 6  # more pooling x window pairs than this: one column per pooling


def _parent_param(t: Trial, parents: Mapping[str, Any], key: str) -> str | None:
    parent = parents.get(t.parent or "")
    return parent.data.params.get(key) if parent is not None else None


def seed_of(t: Trial, parents: Mapping[str, Any]) -> str:
    """The seed of the search a trial belongs to (its parent's param, else its own)."""
    return _parent_param(t, parents, "seed") or t.params.get("seed") or "?"


def space_of(t: Trial, parents: Mapping[str, Any]) -> str:
    return _parent_param(t, parents, "space") or "?"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return _pct(values[0])
    med = statistics.median(values)
    return f"{_pct(med)} ({_pct(min(values))}–{_pct(max(values))})"


def _columns(trials: list[Trial]) -> tuple[list[str], Any]:
    """Column names and the column of a trial (pooling x window, or pooling only if wide)."""
    pairs = sorted(
        {(t.pooling_label, t.window_s) for t in trials},
        key=lambda p: (p[0], -(p[1] if p[1] is not None else math.inf)),
    )
    if len(pairs) <= MAX_COLUMNS:

        def col(t: Trial) -> str:
            w = f", T={t.window_s:g}s" if t.window_s is not None else ""
            return f"{t.pooling_label}{w}"

    else:

        def col(t: Trial) -> str:
            return t.pooling_label

    order = {pair: i for i, pair in enumerate(pairs)}
    names: list[str] = []
    for t in sorted(trials, key=lambda t: order[(t.pooling_label, t.window_s)]):
        if col(t) not in names:
            names.append(col(t))
    return names, col


def fusion_table(
    trials: list[Trial], parents: Mapping[str, Any], metric: str = "val_average_map"
) -> tuple[str, dict[str, Any]]:
    """Markdown (one table per search space) and its numbers: {space: {"seeds": [...],
    "columns": [...], "rows": {fusion: {column: [best per seed]}}}}."""
    by_space: dict[str, list[Trial]] = defaultdict(list)
    for t in trials:
        if not math.isnan(t.metrics.get(metric, math.nan)):
            by_space[space_of(t, parents)].append(t)
    md: list[str] = []
    data: dict[str, Any] = {}
    for space, ts in sorted(by_space.items()):
        seeds = sorted({seed_of(t, parents) for t in ts})
        columns, col = _columns(ts)
        best: dict[tuple[str, str, str], float] = {}  # (fusion, column, seed) -> best
        for t in ts:
            v = t.metrics[metric]
            for c in (BEST_COLUMN, col(t)):
                key = (t.fusion, c, seed_of(t, parents))
                best[key] = max(best.get(key, -math.inf), v)
        extra = sorted({t.fusion for t in ts} - set(FUSIONS))
        rows, numbers = [], {}
        for fusion in [*FUSIONS, *extra]:
            label = FUSIONS[fusion].label if fusion in FUSIONS else fusion
            per_col = {
                c: [best[(fusion, c, s)] for s in seeds if (fusion, c, s) in best]
                for c in (BEST_COLUMN, *columns)
            }
            if not per_col[BEST_COLUMN]:
                continue
            numbers[fusion] = per_col
            rows.append([f"{label} (`{fusion}`)", *(_cell(v) for v in per_col.values())])
        data[space] = {"seeds": seeds, "columns": [BEST_COLUMN, *columns], "rows": numbers}
        how = (
            f"{len(seeds)} seeds ({', '.join(seeds)}): median of each seed's best (min–max)"
            if len(seeds) > 1
            else f"one seed ({seeds[0]})"
        )
        md += [
            f"Space `{space}`, {len(ts)} trials, {how}. Best validation {metric} (%) per fusion "
            "point; `best` is over every pooling and window.",
            "",
            md_table(["Fusion point", "best", *columns], rows),
            "",
        ]
    return "\n".join(md).rstrip() + "\n", data

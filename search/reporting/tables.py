"""The seed study's Tables 1-5 (and a leaderboard) as Markdown, from trial runs."""

from __future__ import annotations

import math
from collections.abc import Iterable

from avspot.avmodels import names as N
from avspot.avmodels.fusion_methods import FUSIONS
from avspot.datasets.labels import V1, LabelSet
from avspot.datasets.manifest import is_synthetic
from avspot.search.reporting.trials import Trial

SINGLE = tuple(name for name, m in FUSIONS.items() if m.single_modality)
METHODS = [("max", "Seg. max"), ("center", "Seg. center"), ("nms", "NMS")]
SEED_ORDER = [3, 0, 1, 2]  # v1 confusion rows/cols: background, cards, subs, goals (seed Table 3)
SEED_LABELS = ["background", "cards", "subs", "goals"]


def vocabulary_of(trials: Iterable[Trial]) -> LabelSet:
    """The label set of a group of trials (one table: one label set); v1 when there is none."""
    return next((t.vocabulary for t in trials), V1)


def _pct(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def md_table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def best_trial(trials: Iterable[Trial], key: str) -> Trial | None:
    cands = [t for t in trials if not math.isnan(t.metrics.get(key, math.nan))]
    return max(cands, key=lambda t: t.metrics[key], default=None)


def windows_of(trials: list[Trial]) -> list[float]:
    return sorted({t.window_s for t in trials if t.window_s is not None}, reverse=True)


def _wlabel(w: float) -> str:
    return f"T = {w:g} s"


def table_fusion(trials: list[Trial]) -> str:
    """Seed Table 1: chunk mAP per fusion method (rows) and window (columns), per pooling."""
    out = []
    windows = windows_of(trials)
    for pool in sorted({t.pooling_label for t in trials}):
        sub = [t for t in trials if t.pooling_label == pool]
        rows = []
        rows_of = [(name, m.label or name) for name, m in FUSIONS.items()]
        extra = sorted({t.fusion for t in sub} - set(FUSIONS))
        for fusion, label in rows_of + [(f, f) for f in extra]:
            cells = []
            for w in windows:
                b = best_trial(
                    [t for t in sub if t.fusion == fusion and t.window_s == w], "val_map"
                )
                cells.append(_pct(b.metrics["val_map"]) if b else "–")
            if any(c != "–" for c in cells):
                rows.append([f"{label} (`{fusion}`)", *cells])
        out.append(f"Pooling **{pool}**\n\n" + md_table(["Model", *map(_wlabel, windows)], rows))
    return "\n\n".join(out)


def best_fusion(trials: list[Trial], key: str = "val_map") -> Trial | None:
    return best_trial([t for t in trials if t.fusion not in SINGLE], key)


def table_per_class(trials: list[Trial]) -> str:
    """Seed Table 2: per-class chunk AP of the best video, audio and audio+video runs."""
    cols = [
        ("Video baseline", best_trial([t for t in trials if t.fusion == "video"], "val_map")),
        ("Audio baseline", best_trial([t for t in trials if t.fusion == "audio"], "val_map")),
    ]
    bf = best_fusion(trials)
    cols.append((f"Best fusion (`{bf.fusion}`)" if bf else "Best fusion", bf))
    rows = []
    vocabulary = vocabulary_of(trials)
    for c in vocabulary.classes:
        label = vocabulary.display_name(c)
        rows.append(
            [f'"{label}"', *[_pct(t.metrics.get(N.val_ap(c))) if t else "–" for _, t in cols]]
        )
    rows.append(["mAP", *[_pct(t.metrics.get("val_map")) if t else "–" for _, t in cols]])
    header = ["Labels", *[f"{n}<br>{describe(t)}" for n, t in cols]]
    return md_table(header, rows)


def describe(t: Trial | None) -> str:
    if t is None:
        return "(no run)"
    w = f", T={t.window_s:g}s" if t.window_s is not None else ""
    return f"{t.pooling_label}{w}"


def table_confusion(matrix: list[list[float]], vocabulary: LabelSet = V1) -> str:
    """Seed Table 3 layout: rows ground truth, columns predicted (background first; v1 with the
    seed's names, another label set in its own class order)."""
    if vocabulary.name == V1.name:
        order, labels = SEED_ORDER, SEED_LABELS
    else:
        order = [vocabulary.background, *range(vocabulary.num_classes)]
        labels = [vocabulary.display_name(o) for o in (vocabulary.outputs[i] for i in order)]
    rows = [
        [label, *[f"{matrix[i][j]:g}" for j in order]]
        for i, label in zip(order, labels, strict=True)
    ]
    return md_table(["truth \\ predicted", *labels], rows)


def table_spotting_per_class(trials: list[Trial], monitor: str) -> str:
    """Average-mAP per class, loose and tight side by side, of the best video, audio and fusion
    trials: the kept epoch scored in full (``full_val_average_map[_tight]_<class>``); for
    SoccerNet-v2 also over visible and over unshown events."""
    picks = [
        ("Video", best_trial([t for t in trials if t.fusion == "video"], monitor)),
        ("Audio", best_trial([t for t in trials if t.fusion == "audio"], monitor)),
        ("Audio + Video", best_fusion(trials, monitor)),
    ]
    picks = [(n, t) for n, t in picks if t is not None]
    loose, tight = N.full(N.VAL_AVERAGE_MAP), N.full(N.VAL_AVERAGE_MAP_TIGHT)
    header = ["Class", *[f"{n} {kind}" for n, _ in picks for kind in ("loose", "tight")]]
    vocabulary = vocabulary_of(trials)
    rows = []
    for c in vocabulary.classes:
        cells = [
            _pct(t.metrics.get(N.of_class(key, c))) for _, t in picks for key in (loose, tight)
        ]
        rows.append([vocabulary.display_name(c), *cells])
    extra = [("Average-mAP", "")]
    if vocabulary.name != V1.name:
        extra += [("visible", "_visible"), ("unshown", "_unshown")]
    for label, suffix in extra:
        cells = [_pct(t.metrics.get(f"{key}{suffix}")) for _, t in picks for key in (loose, tight)]
        rows.append([f"**{label}**", *cells])
    return md_table(header, rows)


def table_pooling(trials: list[Trial]) -> str:
    """Seed Table 4: chunk mAP per pooling x modality (video, audio, best fusion) and window."""
    windows = windows_of(trials)
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
                b = best_trial([t for t in pick(sub) if t.window_s == w], "val_map")
                cells.append(
                    f"{_pct(b.metrics['val_map'])}"
                    + (f" (`{b.fusion}`)" if b and b.fusion not in SINGLE else "")
                    if b
                    else "–"
                )
            if any(c != "–" for c in cells):
                rows.append([f"{name} {pool}", *cells])
    return md_table(["Model", *map(_wlabel, windows)], rows)


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
        for w in windows_of(trials):
            sub = [t for t in trials if t.pooling_label == pool and t.window_s == w]
            if not sub:
                continue
            cells = []
            for _, sel in groups:
                cand = [t for t in sub if sel(t)]
                best = best_trial(cand, monitor) or best_trial(cand, "val_average_map")
                for m, _ in METHODS:
                    v = None
                    if best is not None:
                        v = best.metrics.get(f"val_average_map_{m}")
                        if v is None and best.spot_method == m:
                            v = best.metrics.get("val_average_map")
                    cells.append(_pct(v))
            rows.append([f"{pool}, {w:g}-s chunks", *cells])
    return md_table(header, rows), all_methods


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
    return md_table(header, rows)


def data_heading(source: str, fingerprint: str) -> str:
    if is_synthetic(source):
        what = (
            "**SYNTHETIC data** (generated by `avspot data synth`). These numbers say whether the "
            "pipeline works; they are not SoccerNet results and are not comparable with the seed's."
        )
    elif source.lower().startswith("soccernet"):
        what = "SoccerNet v1 features (`avspot data ingest`)."
    else:
        what = f"data source `{source}` (unknown: not presented as SoccerNet)."
    return f"Data: {what} Table fingerprint `{fingerprint[:16]}`."

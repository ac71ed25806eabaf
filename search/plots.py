"""Figures of the seed study, drawn from logged runs: matplotlib's object API (no pyplot state).

Each function returns a `matplotlib.figure.Figure` and, given `path`, also saves it as PNG.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from avspot.datasets.labels import CLASS_INDEX, CLASSES, DISPLAY_NAMES, OUTPUTS
from avspot.datasets.manifest import source_note

OUTPUT_LABELS = tuple(DISPLAY_NAMES[o] for o in OUTPUTS)  # cards, substitutions, goals, background


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # Agg canvas; safe in threads and without a display

    return Figure(figsize=(width, height), layout="constrained")


# Which data the figures drawn inside ``data_source(...)`` come from (a footnote on each).
_DATA_SOURCE: ContextVar[str | None] = ContextVar("avspot_plots_data_source", default=None)


@contextmanager
def data_source(source: str | None) -> Iterator[None]:
    """Every figure drawn inside carries a footnote naming its data (``source_note``): a
    figure that leaves the report or the run must still say whether it is synthetic."""
    token = _DATA_SOURCE.set(source)
    try:
        yield
    finally:
        _DATA_SOURCE.reset(token)


def add_data_note(fig: Any, source: str) -> None:
    """Footnote ``fig`` with which data it shows (``source_note(source)``), in a strip below
    the axes that the constrained layout keeps free."""
    strip = 12 / 72 / fig.get_figheight()  # 12 points, as a fraction of the height
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):
        engine.set(rect=(0, strip, 1, 1 - strip))
    fig.text(
        0.995, strip / 4, source_note(source), ha="right", va="bottom", fontsize=7, color="0.4"
    )


def _save(fig: Any, path: str | Path | None) -> Any:
    source = _DATA_SOURCE.get()
    if source:
        add_data_note(fig, source)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def tolerance_curve(
    curves: Mapping[str, Mapping[str, Any]], path: str | Path | None = None, *, title: str = ""
) -> Any:
    """mAP as a function of the tolerance delta, one line per model (seed Figure 2).

    ``curves``: {label: ``SpottingResult.to_dict()``} (``deltas``, ``map_per_delta``,
    ``average_map``).
    """
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot()
    for label, info in curves.items():
        tol = list(info["deltas"])
        val = [100.0 * v for v in info["map_per_delta"]]
        amap = info.get("average_map")
        name = f"{label} (Average-mAP {100 * amap:.1f}%)" if amap is not None else label
        ax.plot(tol, val, marker="o", markersize=3, label=name)
    ax.set_xlabel("tolerance δ (s)")
    ax.set_ylabel("mAP (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title or "mAP vs tolerance")
    if curves:
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def lr_decay_epochs(history: Sequence[Mapping[str, Any]]) -> list[float]:
    """Epochs after which a step or plateau schedule divided the learning rate (the trainer's
    ``lr_decayed`` flag); a cosine schedule lowers the rate every epoch and has none."""
    return [float(row.get("epoch", i)) for i, row in enumerate(history) if row.get("lr_decayed")]


def learning_curves(
    history: Sequence[Mapping[str, Any]],
    path: str | Path | None = None,
    *,
    train_key: str = "train_map",
    val_key: str = "val_map",
    title: str = "",
    schedule: str | None = None,
) -> Any:
    """Training and validation mAP per epoch, best validation dotted, learning-rate decays as
    vertical lines between the epochs (seed Figure 3). Without ``train_key`` in the history
    (runs logged before ``train_map`` existed) the training loss is drawn on a second axis.
    ``schedule`` names the rate schedule in the title.
    """
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot()
    epochs = [float(row.get("epoch", i)) for i, row in enumerate(history)]

    def series(key: str) -> tuple[list[float], list[float]]:
        pts = [(e, float(r[key])) for e, r in zip(epochs, history, strict=True) if key in r]
        return [p[0] for p in pts], [p[1] for p in pts]

    x, y = series(train_key)
    if x:
        ax.plot(x, [100 * v for v in y], color="tab:green", label=f"training {train_key}")
    x, y = series(val_key)
    if x:
        ax.plot(x, [100 * v for v in y], color="tab:blue", label=f"validation {val_key}")
        ax.axhline(100 * max(y), color="tab:blue", linestyle=":", label=f"best {100 * max(y):.1f}")
    for i, e in enumerate(
        lr_decay_epochs([{**r, "epoch": ep} for r, ep in zip(history, epochs, strict=True)])
    ):
        ax.axvline(e + 0.5, color="black", linewidth=0.8, label="lr decay" if i == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mAP (%)")
    ax.grid(alpha=0.3)
    x, y = series("train_loss")
    if x and not series(train_key)[0]:
        ax2 = ax.twinx()
        ax2.plot(x, y, color="tab:gray", linestyle="--", label="training loss")
        ax2.set_ylabel("training loss")
        ax2.legend(fontsize=8, loc="lower right")
    ax.legend(fontsize=8, loc="upper left")
    name = title or "learning curves"
    ax.set_title(f"{name} ({schedule} schedule)" if schedule else name)
    return _save(fig, path)


def confusion_matrix(
    matrix: Any,
    path: str | Path | None = None,
    *,
    labels: Sequence[str] = OUTPUT_LABELS,
    title: str = "",
) -> Any:
    """Counts of ground truth (rows) vs predicted (columns) chunk labels (seed Table 3)."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    fig = _figure(4.8, 4.2)
    ax = fig.add_subplot()
    ax.imshow(np.log1p(m), cmap="Blues")
    ticks = range(m.shape[0])
    names = list(labels)[: m.shape[0]]
    ax.set_xticks(list(ticks), names, rotation=30, ha="right")
    ax.set_yticks(list(ticks), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    hi = np.log1p(m).max() if m.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            txt = f"{int(m[i, j])}" if float(m[i, j]).is_integer() else f"{m[i, j]:.2f}"
            white = hi and np.log1p(m[i, j]) > hi * 0.6
            ax.text(j, i, txt, ha="center", va="center", color="white" if white else "black")
    ax.set_title(title or "confusion matrix")
    return _save(fig, path)


def _event_fields(ev: Any) -> tuple[float, str, float]:
    """(seconds, class, confidence) of an Event, a spot dict/row or a tuple."""

    def get(name: str, default: Any = None) -> Any:
        if isinstance(ev, Mapping):
            return ev.get(name, default)
        return getattr(ev, name, default)

    if isinstance(ev, tuple | list):
        sec, label, *rest = ev
        return float(sec), str(label), float(rest[0]) if rest else 1.0
    if get("position_ms") is not None:
        sec = float(get("position_ms")) / 1000.0
    else:
        sec = float(get("frame", 0)) / float(get("fps", 2.0))
    return sec, str(get("label", get("class", ""))), float(get("confidence", 1.0))


def event_timeline(
    games: Sequence[tuple[Any, ...]],
    path: str | Path | None = None,
    *,
    min_confidence: float = 0.0,
) -> Any:
    """Per game half: true events (upper ticks of each class row) vs predicted spots (lower ticks,
    opacity = confidence), minutes on the x axis (seed-style qualitative view).

    `games`: [(title, events, spots[, half_minutes])]; events/spots are Event/Spot objects, dicts
    or (seconds, label[, confidence]) tuples.
    """
    n = max(1, len(games))
    fig = _figure(9.0, 1.6 + 1.4 * n)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    colors = ("tab:orange", "tab:green", "tab:red")
    for ax, game in zip(axes, games, strict=False):
        title, truth, spots = game[:3]
        for ev in truth:
            sec, label, _ = _event_fields(ev)
            c = CLASS_INDEX.get(label, 0)
            ax.plot([sec / 60] * 2, [c + 0.05, c + 0.45], color=colors[c], linewidth=2)
        for ev in spots:
            sec, label, conf = _event_fields(ev)
            if conf < min_confidence or label not in CLASS_INDEX:
                continue
            c = CLASS_INDEX[label]
            alpha = max(0.1, min(1.0, conf))
            ax.plot(
                [sec / 60] * 2, [c - 0.45, c - 0.05], color=colors[c], alpha=alpha, linewidth=1.5
            )
        if len(game) > 3 and game[3]:
            ax.set_xlim(0, float(game[3]))
        ax.set_yticks([0, 1, 2], [DISPLAY_NAMES[c] for c in CLASSES])
        ax.set_ylim(-0.5, 2.5)
        ax.set_title(f"{title}  (upper: truth; lower: predicted, opacity = confidence)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("minute")
    return _save(fig, path)


# ---- search analysis: does the search pay off, and where should audio join video? ------------


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def parallel_coordinates(
    axes: Sequence[tuple[str, Sequence[Any]]],
    scores: Sequence[float],
    path: str | Path | None = None,
    *,
    stopped: Sequence[bool] | None = None,
    metric: str = "score",
    log_axes: Sequence[str] = (),
    orders: Mapping[str, Sequence[str]] | None = None,
    title: str = "",
) -> Any:
    """One line per trial across the searched parameters and its score (last axis), coloured by
        the score. ``axes``: [(name, value per trial)]: numbers give a numeric axis (log scale for
        names in ``log_axes``), anything else a categorical one (ordered by ``orders[name]`` when
        given); a trial's line passes by an axis where it has ``None`` (a conditional parameter it
    did not have). Stopped trials dashed."""
    import math

    import numpy as np
    from matplotlib import cm, colors

    n = len(scores)
    stopped = list(stopped) if stopped is not None else [False] * n
    columns = [*axes, (metric, list(scores))]
    fig = _figure(max(6.4, 1.5 * len(columns) + 1.5), 4.6)
    ax = fig.add_subplot()
    ys = np.full((len(columns), n), np.nan)
    ticks: list[tuple[list[float], list[str]]] = []
    for i, (name, values) in enumerate(columns):
        present = [v for v in values if v is not None]
        if present and all(_is_number(v) for v in present):
            vals = [float(v) for v in present]
            log = name in log_axes and min(vals) > 0
            f = math.log10 if log else float
            lo, hi = f(min(vals)), f(max(vals))
            span = hi - lo or 1.0
            for j, v in enumerate(values):
                if v is not None:
                    ys[i, j] = (f(float(v)) - lo) / span
            pos = [0.0, 0.5, 1.0] if hi > lo else [0.0]
            labels = [f"{(10 ** (lo + p * span) if log else lo + p * span):.3g}" for p in pos]
            ticks.append((pos, labels))
        else:
            order = list((orders or {}).get(name, []))
            cats = [c for c in order if c in {str(v) for v in present}]
            cats += sorted({str(v) for v in present} - set(cats))
            k = max(1, len(cats) - 1)
            for j, v in enumerate(values):
                if v is not None:
                    ys[i, j] = cats.index(str(v)) / k if len(cats) > 1 else 0.5
            ticks.append(([c / k if len(cats) > 1 else 0.5 for c in range(len(cats))], cats))
    finite = [s for s in scores if s is not None and math.isfinite(s)]
    norm = colors.Normalize(min(finite, default=0.0), max(finite, default=1.0))
    cmap = cm.viridis
    x = np.arange(len(columns))
    for j in np.argsort([s if math.isfinite(s) else -1 for s in scores]):
        color = cmap(norm(scores[j])) if math.isfinite(scores[j]) else "lightgray"
        keep = ~np.isnan(ys[:, j])  # a parameter the trial did not have: pass straight by
        ax.plot(
            x[keep],
            ys[keep, j],
            color=color,
            linewidth=1.4,
            alpha=0.85,
            linestyle="--" if stopped[j] else "-",
            marker="o",
            markersize=3,
        )
    for i, (pos, labels) in enumerate(ticks):
        ax.axvline(i, color="black", linewidth=0.8)
        for p, label in zip(pos, labels, strict=True):
            ax.text(
                i + 0.04,
                p,
                label,
                fontsize=7,
                va="center",
                ha="left",
                bbox={"facecolor": "white", "alpha": 0.7, "pad": 1, "linewidth": 0},
            )
    ax.set_xticks(list(x), [name for name, _ in columns], rotation=20)
    ax.set_yticks([])
    ax.set_ylim(-0.08, 1.08)
    ax.set_xlim(-0.2, len(columns) - 0.6)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric, shrink=0.8)
    extra = " (dashed: stopped early)" if any(stopped) else ""
    ax.set_title((title or f"parallel coordinates: {n} trials") + extra)
    return _save(fig, path)


def intermediate_values(
    curves: Sequence[tuple[str, Sequence[float], Sequence[float], bool]],
    path: str | Path | None = None,
    *,
    metric: str = "val_average_map",
    max_epochs: int | None = None,
    title: str = "",
) -> Any:
    """Validation metric per epoch for every trial (Optuna's intermediate values): completed
    trials solid, stopped ones dashed and ending in a cross where the scheduler stopped them.
    ``curves``: [(label, epochs, values, stopped)]; labels sharing a prefix share a colour."""
    fig = _figure(7.2, 4.4)
    ax = fig.add_subplot()
    palette: dict[str, Any] = {}
    for label, epochs, values, stop in curves:
        if not epochs:
            continue
        first = label not in palette
        color = palette.setdefault(label, f"C{len(palette) % 10}")
        ax.plot(
            list(epochs),
            [100 * v for v in values],
            color=color,
            alpha=0.8,
            linestyle="--" if stop else "-",
            marker=".",
            label=label if first else None,
        )
        if stop:
            ax.plot([epochs[-1]], [100 * values[-1]], marker="x", color=color, markersize=8)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if max_epochs:
        ax.axvline(max_epochs, color="gray", linewidth=0.8, linestyle=":")
        ax.set_xlim(0.5, max_epochs + 0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} (%)")
    ax.grid(alpha=0.3)
    if palette:
        ax.legend(fontsize=7, loc="lower right", ncols=2 if len(palette) > 6 else 1)
    ax.set_title(title or "intermediate values (dashed, x: stopped early by ASHA)")
    return _save(fig, path)


def pareto_front(
    panels: Sequence[tuple[str, Sequence[tuple[float, float, str, bool]]]],
    path: str | Path | None = None,
    *,
    metric: str = "best validation Average-mAP (%)",
    title: str = "",
) -> Any:
    """Accuracy against inference cost, one panel per cost: ``panels`` = [(x label, [(cost,
    value, label, on_front)])]; costs on a log axis when they span more than a decade, the
    Pareto front joined and labelled."""
    fig = _figure(5.2 * max(1, len(panels)), 4.2)
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, (xlabel, points) in zip(axes, panels, strict=False):
        rest = [p for p in points if not p[3]]
        front = sorted((p for p in points if p[3]), key=lambda p: p[0])
        xy_rest = ([p[0] for p in rest], [100 * p[1] for p in rest])
        xy_front = ([p[0] for p in front], [100 * p[1] for p in front])
        if rest:
            ax.scatter(*xy_rest, color="lightgray", edgecolor="gray", label="dominated")
        if front:
            ax.step(*xy_front, where="post", color="tab:red", linewidth=1)
            ax.scatter(*xy_front, color="tab:red", zorder=3, label="Pareto front")
            for x, y, label, _ in front:
                ax.annotate(
                    label, (x, 100 * y), fontsize=7, xytext=(4, 4), textcoords="offset points"
                )
        costs = [p[0] for p in points]
        if costs and min(costs) > 0 and max(costs) / min(costs) > 10:  # log only over decades
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if points:
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title or "accuracy vs inference cost")
    return _save(fig, path)


def importance_bars(
    importances: Mapping[str, Mapping[str, float]],
    path: str | Path | None = None,
    *,
    title: str = "",
) -> Any:
    """Horizontal bars of parameter importance, one bar group per parameter and one bar per
    variant (e.g. all trials vs completed only). ``importances``: {variant: {param: value}}."""
    variants = [v for v, imp in importances.items() if imp]
    params: list[str] = []
    for v in variants:
        params += [p for p in importances[v] if p not in params]
    fig = _figure(6.0, 1.2 + 0.45 * max(1, len(params)) * max(1, len(variants)) ** 0.5)
    ax = fig.add_subplot()
    h = 0.8 / max(1, len(variants))
    for i, v in enumerate(variants):
        y = [k + i * h for k in range(len(params))]
        ax.barh(y, [importances[v].get(p, 0.0) for p in params], height=h, label=v)
    ax.set_yticks([k + h * (len(variants) - 1) / 2 for k in range(len(params))], params)
    ax.invert_yaxis()
    ax.set_xlabel("importance (normalized)")
    ax.grid(axis="x", alpha=0.3)
    if variants:
        ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "parameter importance")
    return _save(fig, path)

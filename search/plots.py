"""The figures of one trial, drawn from its history and results: learning curves, confusion
matrix, mAP against the tolerance, event timeline; matplotlib's object API (no pyplot state).

Each function returns a `matplotlib.figure.Figure` and, given `path`, also saves it as PNG. Every
figure carries a footnote naming its data (``add_data_note``): the caller passes the table's
``source`` (``Manifest.source``, e.g. ``synthetic``) explicitly, so a figure that leaves the run or
the report still says whether it is synthetic. The search-level figures (importance, parallel
coordinates, intermediate values, Pareto front) are Optuna's, in ``reporting.figures``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avspot.datasets.labels import V1, LabelSet
from avspot.datasets.manifest import source_note

OUTPUT_LABELS = tuple(V1.display_name(o) for o in V1.outputs)  # v1: cards, ..., background
UNKNOWN_SOURCE = "unknown"  # what a figure says when nobody knows its data


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # Agg canvas; safe in threads and without a display

    return Figure(figsize=(width, height), layout="constrained")


def _plt_colormap(name: str) -> Any:
    from matplotlib import colormaps

    return colormaps[name]


def add_data_note(fig: Any, source: str | None) -> None:
    """Footnote ``fig`` with which data it shows (``source_note(source)``; ``None``: unknown
    data, never presented as SoccerNet). With a constrained or tight layout, in a strip below
    the axes that the layout keeps free; otherwise (pyplot figures, e.g. Optuna's) just below
    everything drawn, where saving with ``bbox_inches="tight"`` (as ``reporting.figures`` and
    MLflow's ``log_figure`` here do) takes it in."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine, TightLayoutEngine

    note = source_note(source or UNKNOWN_SOURCE)
    style = {"fontsize": 7, "color": "0.4", "ha": "right"}
    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine | TightLayoutEngine):
        strip = 12 / 72 / fig.get_figheight()  # 12 points, as a fraction of the height
        engine.set(rect=(0, strip, 1, 1 - strip))
        fig.text(0.995, strip / 4, note, va="bottom", **style)
        return
    box = fig.get_tightbbox()  # inches, tick labels outside the figure included
    width, height = fig.get_size_inches()
    fig.text(box.x1 / width, (box.y0 - 4 / 72) / height, note, va="top", **style)


def _save(fig: Any, path: str | Path | None, source: str | None) -> Any:
    add_data_note(fig, source)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def tolerance_curve(
    curves: Mapping[str, Mapping[str, Any]],
    path: str | Path | None = None,
    *,
    source: str | None,
    title: str = "",
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
    return _save(fig, path, source)


def lr_decay_epochs(history: Sequence[Mapping[str, Any]]) -> list[float]:
    """Epochs after which a step or plateau schedule divided the learning rate (the trainer's
    ``lr_decayed`` flag); a cosine schedule lowers the rate every epoch and has none."""
    return [float(row.get("epoch", i)) for i, row in enumerate(history) if row.get("lr_decayed")]


def learning_curves(
    history: Sequence[Mapping[str, Any]],
    path: str | Path | None = None,
    *,
    source: str | None,
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
    return _save(fig, path, source)


def confusion_matrix(
    matrix: Any,
    path: str | Path | None = None,
    *,
    source: str | None,
    labels: Sequence[str] = OUTPUT_LABELS,
    title: str = "",
) -> Any:
    """Counts of ground truth (rows) vs predicted (columns) chunk labels (seed Table 3)."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    k = m.shape[0]  # 4 for v1, 18 for SoccerNet-v2
    fig = _figure(max(4.8, 0.42 * k + 1.6), max(4.2, 0.4 * k + 1.4))
    small = {"fontsize": 6} if k > 6 else {}
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
            ax.text(
                j, i, txt, ha="center", va="center", color="white" if white else "black", **small
            )
    ax.set_title(title or "confusion matrix")
    return _save(fig, path, source)


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
    source: str | None,
    min_confidence: float = 0.0,
    vocabulary: LabelSet = V1,
) -> Any:
    """Per game half: true events (upper ticks of each class row) vs predicted spots (lower ticks,
    opacity = confidence), minutes on the x axis (seed-style qualitative view); one row per
    class of ``vocabulary``.

    `games`: [(title, events, spots[, half_minutes])]; events/spots are Event/Spot objects, dicts
    or (seconds, label[, confidence]) tuples.
    """
    n = max(1, len(games))
    rows = vocabulary.num_classes
    index = vocabulary.class_index
    fig = _figure(9.0, 1.6 + (0.45 * rows + 0.05) * n)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    cmap = _plt_colormap("tab20" if rows > 10 else "tab10")
    colors = [cmap(i % cmap.N) for i in range(rows)]
    for ax, game in zip(axes, games, strict=False):
        title, truth, spots = game[:3]
        for ev in truth:
            sec, label, _ = _event_fields(ev)
            c = index.get(label, 0)
            ax.plot([sec / 60] * 2, [c + 0.05, c + 0.45], color=colors[c], linewidth=2)
        for ev in spots:
            sec, label, conf = _event_fields(ev)
            if conf < min_confidence or label not in index:
                continue
            c = index[label]
            alpha = max(0.1, min(1.0, conf))
            ax.plot(
                [sec / 60] * 2, [c - 0.45, c - 0.05], color=colors[c], alpha=alpha, linewidth=1.5
            )
        if len(game) > 3 and game[3]:
            ax.set_xlim(0, float(game[3]))
        ax.set_yticks(range(rows), [vocabulary.display_name(c) for c in vocabulary.classes])
        ax.set_ylim(-0.5, rows - 0.5)
        ax.tick_params(axis="y", labelsize=7 if rows > 10 else 9)
        ax.set_title(f"{title}  (upper: truth; lower: predicted, opacity = confidence)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("minute")
    return _save(fig, path, source)

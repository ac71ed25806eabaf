"""Chunk-classification metrics: per-class average precision, their mean and the confusion matrix.

For any label set: the model's outputs are the label set's classes followed by background
(``LabelSet.outputs``), so a v1 model has 4 outputs and a v2 model 18.
"""

from __future__ import annotations

import numpy as np

from avspot.datasets.labels import LABEL_SETS, LabelSet, get_label_set


def resolve_label_set(label_set: LabelSet | str | None, num_classes: int) -> LabelSet:
    """The label set named or given; None: the one label set with ``num_classes`` classes.

    A count no known label set has (or a label set whose count differs) is a ValueError, so that
    class names are never guessed.
    """
    if label_set is None:
        found = [ls for ls in LABEL_SETS.values() if ls.num_classes == num_classes]
        if len(found) != 1:
            raise ValueError(
                f"{num_classes} classes: pass label_set (known: "
                + ", ".join(f"{ls.name} {ls.num_classes}" for ls in LABEL_SETS.values())
                + ")"
            )
        return found[0]
    ls = get_label_set(label_set) if isinstance(label_set, str) else label_set
    if ls.num_classes != num_classes:
        raise ValueError(f"label set {ls.name} has {ls.num_classes} classes, got {num_classes}")
    return ls


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision as sklearn's `average_precision_score` (step-wise, ties grouped).

    `sum_k (R_k - R_{k-1}) P_k` over distinct score thresholds in decreasing order. With no
    positive sample the result is 0.0 (sklearn's value, with a warning there).
    """
    y = np.asarray(y_true).reshape(-1) > 0  # (N,)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)  # (N,)
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} entries but scores has {s.size}")
    n_pos = int(y.sum())
    if n_pos == 0:
        return 0.0
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last].astype(np.float64)
    precision = tps / (last + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def chunk_metrics(
    targets: np.ndarray, probs: np.ndarray, label_set: LabelSet | str | None = None
) -> dict:
    """Per-class AP, their mean over the classes (`map`) and the seed's Table 3 confusion.

    targets, probs: (N, C + 1) in the model's output order (the label set's classes, then
    background); targets multi-hot (background = 1 when the chunk holds no event).
    ``label_set``: None takes the label set with C classes (v1: 4 columns, v2: 18). Confusion:
    (C + 1) x (C + 1), rows the true class, columns the argmax of the outputs, both in output
    order. A chunk with several events counts once in the row of each of its classes (with its
    one predicted column), so row sums are the per-class chunk counts; a chunk with no positive
    target counts as background.
    """
    t = np.asarray(targets, dtype=np.float64)  # (N, C + 1)
    p = np.asarray(probs, dtype=np.float64)  # (N, C + 1)
    if t.ndim != 2 or t.shape != p.shape or t.shape[1] < 2:
        raise ValueError(f"targets and probs must both be (N, C + 1); got {t.shape} and {p.shape}")
    ls = resolve_label_set(label_set, t.shape[1] - 1)
    outputs = ls.outputs
    k = len(outputs)
    per_class = {name: average_precision(t[:, i], p[:, i]) for i, name in enumerate(outputs)}
    truth = t > 0.5  # (N, C + 1)
    truth[:, -1] |= ~truth.any(axis=1)
    pred = np.argmax(p, axis=1)  # (N,)
    confusion = np.zeros((k, k), dtype=np.int64)
    for i in range(k):
        confusion[i] = np.bincount(pred[truth[:, i]], minlength=k)
    return {
        "map": float(np.mean([per_class[c] for c in ls.classes])) if len(t) else 0.0,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "labels": list(outputs),
        "label_set": ls.name,
    }

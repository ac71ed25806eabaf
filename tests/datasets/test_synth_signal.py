"""The synthetic data's contract with the search: fusing audio and video beats either alone.

A linear probe (ridge regression on mean+max pooled 20 s chunks, trained on the train games,
scored on valid+test) stands in for a model: video must lead on cards, audio on goals, and the
fused features must have the best mean AP.
"""

import numpy as np
import pytest

from avspot.datasets.synth import synth_games
from avspot.datasets.windows import chunk_labels, gather_chunks

pytestmark = pytest.mark.slow


def _ap(y: np.ndarray, s: np.ndarray) -> float:
    y = y[np.argsort(-s)]
    tp = np.cumsum(y)
    return float(((tp / np.arange(1, len(y) + 1)) * y).sum() / max(y.sum(), 1))


def test_fusion_beats_each_modality():
    w = 40  # 20 s chunks
    feats: dict[str, list[np.ndarray]] = {"video": [], "audio": []}
    targets, held_out = [], []
    for h in synth_games(24, seed=3, half_minutes=5):
        starts, t = chunk_labels(h, w)
        for m in feats:
            x = gather_chunks(getattr(h, m), starts, w)  # (C, W, 512)
            feats[m].append(np.concatenate([x.mean(1), x.max(1)], 1))  # (C, 1024)
        targets.append(t)
        held_out.append(np.full(len(starts), h.split != "train"))
    y, te = np.concatenate(targets), np.concatenate(held_out)
    video, audio = np.concatenate(feats["video"]), np.concatenate(feats["audio"])
    ap = {}
    for name, x in (
        ("video", video),
        ("audio", audio),
        ("both", np.concatenate([video, audio], 1)),
    ):
        mu, sd = x[~te].mean(0), x[~te].std(0) + 1e-6
        x = np.c_[(x - mu) / sd, np.ones(len(x))]
        a = x[~te]
        coef = np.linalg.solve(a.T @ a + 300 * np.eye(a.shape[1]), a.T @ y[~te])
        scores = x[te] @ coef
        ap[name] = [_ap(y[te][:, k], scores[:, k]) for k in range(3)]  # card, subs, soccer
    card, soccer = 0, 2
    assert ap["video"][card] > ap["audio"][card] + 0.2, ap  # cards vs fouls: mainly video
    assert ap["audio"][soccer] > ap["video"][soccer] + 0.2, ap  # goals vs shots: mainly audio
    means = {k: float(np.mean(v)) for k, v in ap.items()}
    assert means["both"] > max(means["video"], means["audio"]) + 0.05, means

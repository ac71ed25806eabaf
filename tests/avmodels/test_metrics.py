"""Metrics: chunk AP against a brute force, spotting Average-mAP against the official evaluator
(v1's 3 classes and v2's 17, all / visible / unshown, every named metric)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from avspot.avmodels import metrics, results_io
from avspot.avmodels.metrics import (
    METRICS,
    HalfSpots,
    average_map,
    average_precision,
    chunk_metrics,
)
from avspot.datasets.labels import V1, V2

official = pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")

LOOSE = np.arange(12) * 5 + 5
TIGHT = np.arange(5) * 1 + 1
N_SEEDS = int(os.environ.get("AVSPOT_PARITY_SEEDS", "200"))


def official_amap(targets, detections, deltas, framerate=2):
    """The official average_mAP (closests only feed its visible/unshown variants)."""
    closests = [np.zeros_like(t) - 1 for t in targets]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = official.average_mAP(targets, detections, closests, framerate, np.asarray(deltas))
    return out[0], list(out[1])


def assert_same(targets, detections, deltas, **kw):
    ref, ref_pc = official_amap(targets, detections, deltas, kw.get("framerate", 2))
    ours = average_map(targets, detections, deltas=deltas, **kw)
    assert abs(ours.average_map - ref) <= 1e-9, (ours.average_map, ref)
    for a, b in zip(ours.per_class.values(), ref_pc, strict=True):
        assert abs(a - b) <= 1e-9
    return ours, ref


# ---- chunk classification -----------------------------------------------------------------------


def brute_ap(y, s):
    """Mean over positives of the precision at each positive's score (ties grouped)."""
    y = np.asarray(y) > 0
    if not y.any():
        return 0.0
    return float(np.mean([np.sum(y & (s >= t)) / np.sum(s >= t) for t in s[y]]))


@pytest.mark.parametrize("seed", range(60))
def test_average_precision_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    y = (rng.random(n) < rng.random()).astype(int)
    s = rng.random(n) if seed % 3 else rng.integers(0, 4, n) / 4  # ties every third seed
    assert average_precision(y, s) == pytest.approx(brute_ap(y, s), abs=1e-12)


def test_average_precision_known_values():
    assert average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.8333333333)
    assert average_precision([1, 1], [0.5, 0.5]) == 1.0
    assert average_precision([0, 0], [0.5, 0.2]) == 0.0


def test_chunk_metrics_confusion_and_map():
    targets = np.array(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 1]]
    )
    probs = np.array(
        [
            [0.9, 0.1, 0.0, 0.1],
            [0.2, 0.7, 0.1, 0.1],
            [0.1, 0.1, 0.3, 0.5],
            [0.1, 0.1, 0.1, 0.8],
            [0.2, 0.6, 0.1, 0.1],
            [0.1, 0.1, 0.6, 0.2],
        ]
    )
    out = chunk_metrics(targets, probs)
    assert out["labels"] == ["card", "subs", "soccer", "background"]
    conf = np.array(out["confusion"])
    # the card+subs chunk (predicted subs) counts in both the card and the subs rows
    assert conf[0].tolist() == [1, 1, 0, 0]
    assert conf[1].tolist() == [0, 2, 0, 0]
    assert conf[2].tolist() == [0, 0, 0, 1]
    assert conf[3].tolist() == [0, 0, 1, 1]
    for i, name in enumerate(["card", "subs", "soccer", "background"]):
        assert out["per_class"][name] == pytest.approx(brute_ap(targets[:, i], probs[:, i]))
    expected = np.mean([out["per_class"][c] for c in ("card", "subs", "soccer")])
    assert out["map"] == pytest.approx(expected)


def test_chunk_metrics_rejects_bad_shapes():
    with pytest.raises(ValueError):
        chunk_metrics(np.zeros((3, 3)), np.zeros((3, 3)))


# ---- spotting parity on random inputs ---------------------------------------------------------


def random_halves(rng, n_range=(5400, 5900), max_halves=3, nc=3, max_preds=200):
    """Random dense halves with the awkward cases: frame 0 and last frame events, ties,
    predictions on the tolerance edges, empty halves and classes, -1 (not shown) targets."""
    targets, detections = [], []
    all_unshown = int(rng.integers(0, nc)) if rng.random() < 0.5 else -1
    for _ in range(int(rng.integers(1, max_halves + 1))):
        n = int(rng.integers(*n_range))
        t = np.zeros((n, nc))
        d = np.full((n, nc), -1.0)
        empty_half = rng.random() < 0.1
        for c in range(nc):
            if rng.random() < 0.15:
                continue  # class without events in this half
            ev = rng.integers(0, n, int(rng.integers(0, 9)))
            if rng.random() < 0.3:
                ev = np.r_[ev, 0, n - 1]
            if rng.random() < 0.3 and ev.size:  # a cluster: overlapping windows
                ev = np.r_[ev, np.clip(ev[0] + rng.integers(-40, 40, 4), 0, n - 1)]
            t[ev, c] = -1 if c == all_unshown else rng.choice([1, 1, 1, -1], ev.size)
            if empty_half:
                continue
            frames = [rng.integers(0, n, int(rng.integers(0, max_preds)))]
            for e in np.flatnonzero(t[:, c]):
                frames.append(np.clip(e + rng.integers(-70, 71, 5), 0, n - 1))
                edge = int(rng.choice(LOOSE if rng.random() < 0.5 else TIGHT))  # delta*2/2 frames
                frames.append(np.clip(e + np.array([-edge, edge, -edge - 1, edge + 1]), 0, n - 1))
            fr = np.concatenate(frames)
            if rng.random() < 0.4:
                conf = rng.choice([0.0, 0.25, 0.5, 1.0, 0.5025125628140703], fr.size)  # ties
            else:
                conf = rng.random(fr.size)
            if rng.random() < 0.2:
                conf[rng.random(fr.size) < 0.1] = -1.0  # later writes may erase a prediction
            d[fr, c] = conf  # duplicates in a frame: the last write wins, as in the official
        targets.append(t)
        detections.append(d)
    return targets, detections


@pytest.mark.parametrize("seed", range(N_SEEDS))
def test_parity_random_deltas(seed):
    """Many seeds, one or two tolerances each (the official code costs ~80 ms per delta)."""
    rng = np.random.default_rng(seed)
    targets, detections = random_halves(rng)
    pool = LOOSE if seed % 2 else TIGHT
    deltas = np.sort(rng.choice(pool, 1 + int(seed % 4 == 0), replace=False))
    assert_same(targets, detections, deltas)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("metric", ["loose", "tight"])
def test_parity_full_metric(seed, metric):
    rng = np.random.default_rng(1000 + seed)
    targets, detections = random_halves(rng)
    deltas = LOOSE if metric == "loose" else TIGHT
    ref, ref_pc = official_amap(targets, detections, deltas)
    ours = average_map(targets, detections, metric=metric)
    assert ours.metric == metric
    assert ours.average_map == pytest.approx(ref, abs=1e-9)
    assert list(ours.per_class.values()) == pytest.approx(ref_pc, abs=1e-9)
    assert len(ours.map_per_delta) == len(deltas)
    assert ours.seed_average_map == pytest.approx(np.mean(ours.map_per_delta))


@pytest.mark.parametrize("seed", range(60))
def test_parity_dense_clusters(seed):
    """Short halves crowded with events and ties: long greedy chains, collisions, NaN scores."""
    rng = np.random.default_rng(5000 + seed)
    targets, detections = [], []
    for _ in range(int(rng.integers(1, 3))):
        n = int(rng.integers(200, 500))
        t = np.zeros((n, 3))
        d = np.full((n, 3), -1.0)
        for c in range(3):
            centers = rng.integers(0, n, int(rng.integers(0, 4)))
            ev = [
                np.clip(x + rng.integers(-30, 30, int(rng.integers(1, 6))), 0, n - 1)
                for x in centers
            ]
            ev = np.concatenate(ev) if ev else np.zeros(0, dtype=int)
            t[ev, c] = 1
            fr = [np.clip(e + rng.integers(-40, 41, 8), 0, n - 1) for e in ev]
            fr = np.concatenate([*fr, rng.integers(0, n, int(rng.integers(0, 30)))])
            d[fr, c] = rng.choice([0.0, 0.1, 0.5, 1.0, -0.5, np.nan, 0.7], fr.size)
        targets.append(t)
        detections.append(d)
    deltas = np.sort(rng.choice(np.arange(1, 61), int(rng.integers(1, 3)), replace=False))
    assert_same(targets, detections, deltas)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("AVSPOT_SLOW"), reason="set AVSPOT_SLOW=1 (about 8 minutes)")
@pytest.mark.parametrize("seed", range(200))
def test_parity_full_metrics_many_seeds(seed):
    rng = np.random.default_rng(20000 + seed)
    targets, detections = random_halves(rng)
    assert_same(targets, detections, LOOSE)
    assert_same(targets, detections, TIGHT)


# ---- visible / unshown, v2, every named metric ----------------------------------------------------


def official_closests(label):
    """The official `evaluate`'s closest-action loop (ActionSpotting.py, soccernet 0.2.0),
    verbatim: it is inline there, not a function that could be called."""
    closest_numpy = np.zeros(label.shape) - 1
    for c in np.arange(label.shape[-1]):
        indexes = np.where(label[:, c] != 0)[0].tolist()
        if len(indexes) == 0:
            continue
        indexes.insert(0, -indexes[0])
        indexes.append(2 * closest_numpy.shape[0])
        for i in np.arange(len(indexes) - 2) + 1:
            start = max(0, (indexes[i - 1] + indexes[i]) // 2)
            stop = min(closest_numpy.shape[0], (indexes[i] + indexes[i + 1]) // 2)
            closest_numpy[start:stop, c] = label[indexes[i], c]
    return closest_numpy


def official_six(targets, detections, deltas):
    """The official average_mAP's six outputs, closests as the official evaluate builds them."""
    closests = [official_closests(t) for t in targets]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return official.average_mAP(targets, detections, closests, 2, np.asarray(deltas))


def six_differences(ours, ref) -> list[float]:
    """|ours - official| for a_mAP, per class, visible, per class visible, unshown, per class."""
    pairs = [
        ([ours.average_map], [ref[0]]),
        (list(ours.per_class.values()), list(ref[1])),
        ([ours.average_map_visible], [ref[2]]),
        (list(ours.per_class_visible.values()), list(ref[3])),
        ([ours.average_map_unshown], [ref[4]]),
        (list(ours.per_class_unshown.values()), list(ref[5])),
    ]
    out = []
    for a, b in pairs:
        assert len(a) == len(b)
        out += [abs(x - y) for x, y in zip(a, b, strict=True)]
    return out


def assert_six(targets, detections, metric, label_set):
    ref = official_six(targets, detections, METRICS[metric])
    ours = average_map(targets, detections, metric=metric, label_set=label_set)
    assert max(six_differences(ours, ref)) <= 1e-9
    assert list(ours.per_class) == list(label_set.classes)
    return ours, ref


V2_SEEDS = int(os.environ.get("AVSPOT_PARITY_V2_SEEDS", "3"))


@pytest.mark.parametrize("seed", range(V2_SEEDS))
@pytest.mark.parametrize("metric", ["loose", "tight"])
@pytest.mark.parametrize("label_set", [V1, V2], ids=["v1", "v2"])
def test_parity_visible_unshown(seed, metric, label_set):
    """All, visible and unshown Average-mAP (per class too) on random halves with not-shown
    events, a class whose events are all unshown, classes without events, ties."""
    rng = np.random.default_rng(30000 + seed)
    nc = label_set.num_classes
    targets, detections = random_halves(rng, (1500, 1800), 2, nc, max_preds=60)
    ours, ref = assert_six(targets, detections, metric, label_set)
    assert len(ours.map_per_delta_unshown) == len(METRICS[metric])


@pytest.mark.parametrize("metric", ["at1", "at2", "at3", "at4", "at5"])
def test_parity_single_delta_metrics(metric):
    """at1..at5: one delta, its mAP as is (no integral, and no 17/13 rescale of the unshown)."""
    rng = np.random.default_rng(40000 + int(metric[-1]))
    targets, detections = random_halves(rng, (1500, 1800), 2, 17, max_preds=60)
    ours, ref = assert_six(targets, detections, metric, V2)
    assert ours.deltas == (float(metric[-1]),)
    assert ours.average_map_unshown == ours.map_per_delta_unshown[0]


def test_unshown_rescale_and_all_unshown_class():
    """Every event of a class not shown: visible AP 0 for it, unshown = trapezoid * 17 / 13."""
    n = 3000
    t = np.zeros((n, 17))
    d = np.full((n, 17), -1.0)
    t[[100, 900], 2] = -1  # Goal: both not shown
    t[[500, 2000], 9] = 1  # Throw-in: visible
    d[[101, 905, 1500], 2] = [0.9, 0.6, 0.3]
    d[[500, 2003, 40], 9] = [0.8, 0.7, 0.95]
    d[[10, 20], 5] = 0.5  # Shots on target: no events, detections count as "unshown"
    ours, ref = assert_six([t], [d], "loose", V2)
    assert ours.per_class_visible["Goal"] == 0.0
    assert ours.per_class_unshown["Goal"] > 0.0
    assert ours.events_unshown["Goal"] == 2 and ours.events["Goal"] == 2
    unshown = [float(v) for v in ours.map_per_delta_unshown]
    integral = sum((unshown[i] + unshown[i + 1]) / 2 for i in range(len(unshown) - 1))
    assert ours.average_map_unshown == pytest.approx(integral / (len(unshown) - 1) * 17 / 13)


def test_visibility_can_be_skipped():
    rng = np.random.default_rng(8)
    targets, detections = random_halves(rng, (1500, 1800), 2, 17, max_preds=40)
    halves = [HalfSpots.from_dense(t, d) for t, d in zip(targets, detections, strict=True)]
    full = metrics.average_map_spots(halves, label_set=V2)
    bare = metrics.average_map_spots(halves, label_set=V2, visibility=False)
    assert bare.average_map == full.average_map and bare.average_map_visible is None
    assert bare.to_dict()["per_class_unshown"] is None


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("AVSPOT_SLOW"), reason="set AVSPOT_SLOW=1 (about 8 minutes)")
@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("label_set", [V1, V2], ids=["v1", "v2"])
def test_parity_visible_unshown_many_seeds(seed, label_set):
    rng = np.random.default_rng(50000 + seed)
    targets, detections = random_halves(rng, (5400, 5900), 3, label_set.num_classes)
    for metric in ("loose", "tight", f"at{seed % 5 + 1}"):
        assert_six(targets, detections, metric, label_set)


def test_chunk_metrics_v2_confusion():
    """18 outputs: 17 AP values against the brute force, an 18 x 18 confusion, map over 17."""
    rng = np.random.default_rng(2)
    n, k = 300, V2.num_outputs
    targets = np.zeros((n, k))
    cls = rng.integers(0, k, n)
    targets[np.arange(n), cls] = 1
    targets[:20, 3] = 1  # some chunks with two events
    targets[:20, -1] = 0
    probs = rng.random((n, k))
    out = chunk_metrics(targets, probs)
    assert out["labels"] == [*V2.classes, "background"] and out["label_set"] == "v2"
    conf = np.array(out["confusion"])
    assert conf.shape == (18, 18)
    truth = targets > 0.5
    assert conf.sum(axis=1).tolist() == truth.sum(axis=0).tolist()
    pred = probs.argmax(axis=1)
    assert conf[5, 7] == int(np.sum(truth[:, 5] & (pred == 7)))
    for i, name in enumerate(V2.classes):
        assert out["per_class"][name] == pytest.approx(brute_ap(targets[:, i], probs[:, i]))
    assert out["map"] == pytest.approx(np.mean([out["per_class"][c] for c in V2.classes]))
    assert chunk_metrics(targets, probs, label_set="v2") == out
    with pytest.raises(ValueError, match="v1"):
        chunk_metrics(targets, probs, label_set="v1")


# ---- spotting edge cases --------------------------------------------------------------------------


def one_half(n=5400):
    return np.zeros((n, 3)), np.full((n, 3), -1.0)


def test_window_edges_are_inclusive():
    t, d = one_half()
    t[1000, 0] = 1
    d[1005, 0] = 0.9  # exactly delta/2 = 5 frames away at delta = 5 s
    d[994, 0] = 0.95  # 6 frames: outside at 5 s, inside at 10 s
    ours, _ = assert_same([t], [d], np.array([5, 10]))
    assert ours.per_class_per_delta["card"] == (0.5, 1.0)
    t, d = one_half()
    t[1000, 1] = 1
    d[1001, 1] = 0.5  # tight, delta 1 s = 2 frames: |p - g| <= 1
    d[998, 1] = 0.9
    ours, _ = assert_same([t], [d], TIGHT)


def test_classes_without_events_count_as_zero():
    t, d = one_half()
    t[100, 0] = 1
    d[100, 0] = 1.0
    d[200, 2] = 0.3  # soccer: predictions but no events
    ours, _ = assert_same([t], [d], LOOSE)
    assert ours.per_class == {"card": 1.0, "subs": 0.0, "soccer": 0.0}
    assert ours.average_map == pytest.approx(1 / 3)


def test_no_predictions_at_all():
    t, d = one_half()
    t[[0, 5399], 2] = 1
    ours, _ = assert_same([t, np.zeros((5500, 3))], [d, np.full((5500, 3), -1.0)], LOOSE)
    assert ours.average_map == 0.0


def test_confidence_ties_prefer_the_earliest_frame():
    t, d = one_half()
    t[[100, 104], 0] = 1  # windows overlap at 5 s
    d[[99, 101, 103], 0] = 0.5
    assert_same([t], [d], np.array([1, 2, 5, 10]))


def test_single_delta_returns_its_map():
    rng = np.random.default_rng(3)
    targets, detections = random_halves(rng)
    ours, ref = assert_same(targets, detections, np.array([20]))
    assert ours.average_map == ours.map_per_delta[0]


def test_seed_average_map_is_the_plain_mean():
    rng = np.random.default_rng(4)
    targets, detections = random_halves(rng)
    r = average_map(targets, detections)
    assert r.seed_average_map == pytest.approx(np.mean(r.map_per_delta))
    d = r.to_dict()
    assert d["average_map"] == r.average_map and d["metric"] == "loose"
    assert len(d["per_class_per_delta"]["card"]) == 12


def test_unknown_metric():
    t, d = one_half()
    with pytest.raises(ValueError, match="loose"):
        average_map([t], [d], metric="medium")


def test_sparse_and_dense_forms_agree():
    rng = np.random.default_rng(7)
    targets, detections = random_halves(rng)
    halves = [HalfSpots.from_dense(t, d) for t, d in zip(targets, detections, strict=True)]
    for h, t, d in zip(halves, targets, detections, strict=True):
        t2, d2 = h.to_dense()
        np.testing.assert_array_equal(t2 != 0, t != 0)
        np.testing.assert_array_equal(d2 >= 0, d >= 0)
    a = metrics.average_map_spots(halves).average_map
    assert a == average_map(targets, detections).average_map


def test_from_lists_follows_the_official_writing_rules():
    n = 100
    frames = np.array([5, 5, 7, 7, 150, 9])
    classes = np.array([0, 0, 1, 1, 2, 0])
    scores = np.array([0.9, 0.2, 0.8, -1.0, 0.4, np.nan])
    h = HalfSpots.from_lists([0, 0, 250], [1, 1, 2], frames, classes, scores, n)
    dense = metrics.detections_to_dense(zip(frames, classes, scores, strict=True), n)
    ref = HalfSpots.from_dense(metrics.events_to_dense([(0, 1), (0, 1), (250, 2)], n), dense)
    for a, b in zip(
        h.frames + h.scores + h.events, ref.frames + ref.scores + ref.events, strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert h.frames[0].tolist() == [5] and h.scores[0].tolist() == [0.2]  # last write wins
    assert h.frames[1].size == 0  # overwritten by -1: no prediction
    assert h.frames[2].tolist() == [99]  # clipped to the last frame
    assert h.events[1].tolist() == [0] and h.events[2].tolist() == [99]


# ---- conversions against label2vector / predictions2vector ------------------------------------


def random_game_json(rng, n_preds=300, stoppage=True):
    """Labels.json and results_spotting.json dicts with ms positions and stoppage time."""
    raw = ["soccer-ball", "soccer-ball-own", "y-card", "r-card", "yr-card", "substitution-in"]
    max_s = 3000 if stoppage else 2700
    annotations = []
    for _ in range(int(rng.integers(0, 15))):
        half, sec = int(rng.integers(1, 3)), int(rng.integers(0, max_s))
        a = {"gameTime": f"{half} - {sec // 60:02d}:{sec % 60:02d}", "label": str(rng.choice(raw))}
        if rng.random() < 0.3:
            a["position"] = str(sec * 1000 + int(rng.integers(0, 1000)))
        annotations.append(a)
    preds = []
    for _ in range(n_preds):
        half, ms = int(rng.integers(1, 3)), int(rng.integers(0, max_s * 1000))
        if rng.random() < 0.05:
            ms = int(rng.integers(7_200_000, 7_300_000))  # past the official 120 minutes
        preds.append(
            {
                "gameTime": f"{half} - {ms // 60000:02d}:{ms // 1000 % 60:02d}",
                "label": str(rng.choice(["card", "subs", "soccer"])),
                "position": str(ms) if rng.random() < 0.8 else ms,
                "half": str(half) if rng.random() < 0.8 else half,
                "confidence": str(rng.random()) if rng.random() < 0.8 else float(rng.random()),
            }
        )
    return {"annotations": annotations}, {"UrlLocal": "g", "predictions": preds}


@pytest.mark.parametrize("seed", range(20))
def test_dense_conversions_match_official(seed):
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V1

    rng = np.random.default_rng(seed)
    labels, preds = random_game_json(rng)
    ref_l = official.label2vector(
        labels, num_classes=3, version=1, EVENT_DICTIONARY=EVENT_DICTIONARY_V1
    )
    ref_p = official.predictions2vector(
        preds, num_classes=3, version=1, EVENT_DICTIONARY=EVENT_DICTIONARY_V1
    )
    ours_l = results_io.dict_to_dense(labels, "labels")
    ours_p = results_io.dict_to_dense(preds, "predictions")
    for a, b in zip(ours_l + ours_p, ref_l + ref_p, strict=True):
        assert a.shape == b.shape == (14400, 3)
        np.testing.assert_array_equal(a, b)


def random_v2_game_json(rng, n_preds=300):
    """Labels-v2.json and results_spotting.json dicts: ms positions, visibility, stoppage time,
    repeated (frame, class) pairs with different visibilities, predictions past 120 minutes."""
    annotations = []
    for _ in range(int(rng.integers(0, 40))):
        half, ms = int(rng.integers(1, 3)), int(rng.integers(0, 3_000_000))
        a = {
            "gameTime": f"{half} - {ms // 60000:02d}:{ms // 1000 % 60:02d}",
            "label": str(rng.choice(V2.classes)),
            "position": str(ms),
            "team": "home",
            "visibility": str(rng.choice(["visible", "visible", "not shown"])),
        }
        annotations.append(a)
        if rng.random() < 0.2:  # the same frame and class again, the other visibility
            flip = "visible" if a["visibility"] == "not shown" else "not shown"
            annotations.append({**a, "visibility": flip})
    preds = []
    for _ in range(n_preds):
        half, ms = int(rng.integers(1, 3)), int(rng.integers(0, 3_000_000))
        if rng.random() < 0.05:
            ms = int(rng.integers(7_200_000, 7_300_000))
        preds.append(
            {
                "gameTime": "",
                "label": str(rng.choice(V2.classes)),
                "position": str(ms),
                "half": str(half),
                "confidence": str(rng.random()),
            }
        )
    return {"annotations": annotations}, {"UrlLocal": "g", "predictions": preds}


@pytest.mark.parametrize("seed", range(10))
def test_dense_conversions_match_official_v2(seed):
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V2

    rng = np.random.default_rng(seed)
    labels, preds = random_v2_game_json(rng)
    ref_l = official.label2vector(
        labels, num_classes=17, version=2, EVENT_DICTIONARY=EVENT_DICTIONARY_V2
    )
    ref_p = official.predictions2vector(
        preds, num_classes=17, version=2, EVENT_DICTIONARY=EVENT_DICTIONARY_V2
    )
    ours_l = results_io.dict_to_dense(labels, "labels", label_set=V2)
    ours_p = results_io.dict_to_dense(preds, "predictions", label_set=V2)
    for a, b in zip(ours_l + ours_p, ref_l + ref_p, strict=True):
        assert a.shape == b.shape == (14400, 17)
        np.testing.assert_array_equal(a, b)
    # the sparse form built from the file columns holds the same halves
    parsed = results_io.parse_labels(labels, label_set=V2)
    p = results_io.parse_predictions(preds, label_set=V2)
    for half, (t, d) in enumerate(zip(ref_l, ref_p, strict=True), start=1):
        sel, ps = parsed.half == half, p.half == half
        h = HalfSpots.from_lists(
            parsed.frames()[sel], parsed.label[sel], p.frames()[ps], p.label[ps],
            p.confidence[ps], 14400, num_classes=17, event_values=parsed.values()[sel],
        )  # fmt: skip
        t2, d2 = h.to_dense()
        np.testing.assert_array_equal(t2, t)
        np.testing.assert_array_equal(d2, d)

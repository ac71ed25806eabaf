"""Spotting: shared-work sliding window = naive windows, post-processing, results files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avspot.avmodels.config import ModelConfig
from avspot.avmodels.fusion import build_model, combine_trained
from avspot.avmodels.fusion_methods import FUSIONS
from avspot.avmodels.metrics import average_map
from avspot.avmodels.pooling import POOLINGS
from avspot.avmodels.postprocess import (
    POSTPROCESS,
    Spot,
    peaks_center,
    peaks_max,
    peaks_nms,
    postprocess,
    spots_to_detections,
)
from avspot.avmodels.results_io import read_predictions
from avspot.avmodels.spotting import predict_half, predict_half_naive, spot_halves, write_results
from avspot.datasets.errors import DataError
from avspot.datasets.halves import Event, Half
from avspot.datasets.table import iter_halves, write_table

D = 16
PAIRS = ("prob_product", "logit_mean")


def _cfg(fusion: str, pooling: str = "netvlad", window_s: float = 4.0) -> ModelConfig:
    return ModelConfig(
        fusion=fusion,
        pooling=pooling,
        clusters=4,
        window_s=window_s,
        video_dim=D,
        audio_dim=D,
        pool_out=16,
        dropout=0.4,
    )


def _model(cfg: ModelConfig) -> torch.nn.Module:
    torch.manual_seed(0)
    if cfg.fusion in PAIRS:
        video = build_model(ModelConfig.from_dict({**cfg.to_dict(), "fusion": "video"}))
        audio = build_model(ModelConfig.from_dict({**cfg.to_dict(), "fusion": "audio"}))
        return combine_trained(video, audio, cfg.fusion)
    return build_model(cfg)


def _half(n: int = 37, seed: int = 0, game: str = "g", half: int = 1, split: str = "test") -> Half:
    rng = np.random.default_rng(seed)
    video = rng.normal(size=(n, D)).astype(np.float32)
    audio = rng.normal(size=(n, D)).astype(np.float32)
    events = [Event(10, "card", "y-card", 5000), Event(30, "soccer", "soccer-ball", 15000)]
    return Half(game, half, split, 2.0, video, audio, [e for e in events if e.frame < n])


# ---- model -> probabilities ---------------------------------------------------------------------


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_predict_half_equals_naive_for_every_fusion(fusion: str) -> None:
    model = _model(_cfg(fusion))
    model.train()  # predict_half must switch to eval (dropout off) and restore the mode
    half = _half()
    fast = predict_half(model, half)
    slow = predict_half_naive(model, half)
    assert fast.shape == slow.shape == (19, 3)  # ceil(37 / 2) one-second steps
    np.testing.assert_allclose(fast, slow, atol=1e-5, rtol=1e-5)
    assert model.training


@pytest.mark.parametrize("pooling", sorted(POOLINGS))
@pytest.mark.parametrize("window_s", [2.5, 4.0])
def test_predict_half_equals_naive_for_poolings(pooling: str, window_s: float) -> None:
    model = _model(_cfg("before_fc", pooling, window_s))
    half = _half(n=24, seed=1)
    np.testing.assert_allclose(
        predict_half(model, half), predict_half_naive(model, half), atol=1e-5, rtol=1e-5
    )


def test_predict_half_stride_must_be_whole_frames() -> None:
    with pytest.raises(ValueError, match="whole number of frames"):
        predict_half(_model(_cfg("video")), _half(), stride_s=0.75)


# ---- post-processing on hand-made curves ----------------------------------------------------------

CURVE = np.array([0.1, 0.6, 0.9, 0.7, 0.2, 0.55, 0.1, 0.8, 0.8, 0.8, 0.8])


def test_center_is_the_middle_of_each_segment_over_threshold() -> None:
    assert peaks_center(CURVE, 0.5) == [(2, 0.9), (5, 0.55), (8, 0.8)]
    assert peaks_center(CURVE, 0.85) == [(2, 0.9)]
    assert peaks_center(np.zeros(5), 0.5) == []


def test_max_is_the_first_maximum_of_each_segment() -> None:
    assert peaks_max(CURVE, 0.5) == [(2, 0.9), (5, 0.55), (7, 0.8)]
    assert peaks_max(np.array([0.6, 0.7]), 0.5) == [(1, 0.7)]


def test_nms_follows_sn_spotting_greedy_rule() -> None:
    p = np.array([0.1, 0.5, 0.9, 0.4, 0.3, 0.8, 0.2, 0.1])
    # take 0.9 at 2, suppress [0, 4); 0.8 at 5, suppress [3, 7); 0.1 at 7; then only -1 is left
    assert peaks_nms(p, window=4, threshold=0.0) == [(2, 0.9), (5, 0.8), (7, 0.1)]
    assert peaks_nms(p, window=4, threshold=0.5) == [(2, 0.9), (5, 0.8)]
    assert peaks_nms(p, window=20, threshold=0.0) == [(2, 0.9)]
    assert peaks_nms(np.array([0.3, 0.3]), window=1) == [(0, 0.3), (1, 0.3)]


def test_postprocess_positions_classes_and_order() -> None:
    probs = np.zeros((11, 3))
    probs[:, 0] = CURVE
    probs[4, 2] = 0.95
    spots = postprocess(probs, "max", threshold=0.5)
    assert spots == [
        Spot(4, 2000, "card", 0.9),
        Spot(8, 4000, "soccer", 0.95),
        Spot(10, 5000, "card", 0.55),
        Spot(14, 7000, "card", 0.8),
    ]
    nms = postprocess(probs, "nms", window_s=4, threshold=0.5)
    # card: 0.9 at 2 suppresses [0, 4); 0.8 at 7 suppresses [5, 9); 0.8 at 9 is left
    assert [(s.position_ms, s.label) for s in nms] == [
        (2000, "card"),
        (4000, "soccer"),
        (7000, "card"),
        (9000, "card"),
    ]
    half_s = postprocess(probs[:, :], "center", stride_s=0.5, threshold=0.5)
    assert [s.position_ms for s in half_s] == [1000, 2000, 2500, 4000]  # frame = 2 * seconds
    assert [s.frame for s in half_s] == [2, 4, 5, 8]
    with pytest.raises(DataError, match=f"valid methods: {', '.join(POSTPROCESS)}$"):
        postprocess(probs, "argmax")


@pytest.mark.parametrize("method", sorted(POSTPROCESS))
@pytest.mark.parametrize("stride_s", [1.0, 0.5])
def test_every_method_spots_steps_of_the_curve_over_its_threshold(
    method: str, stride_s: float
) -> None:
    """Whatever the method: each spot sits on a step whose probability is at least the
    threshold, carries a probability of its class's curve, at the evaluator's 2 fps frame;
    spots come sorted by time, then class; a lone peak is found where it is, and a curve
    under the threshold gives none."""
    from avspot.datasets.labels import CLASS_INDEX, CLASSES

    rng = np.random.default_rng(3)
    probs = rng.uniform(0.0, 1.0, size=(40, len(CLASSES)))
    spots = postprocess(probs, method, stride_s=stride_s, threshold=0.7)
    assert spots
    for s in spots:
        c = CLASS_INDEX[s.label]
        step = round(s.position_ms / (1000 * stride_s))
        assert probs[step, c] >= 0.7 and s.confidence >= 0.7
        assert s.confidence in probs[:, c]
        assert s.frame == int(2 * s.position_ms / 1000)
    keys = [(s.position_ms, CLASS_INDEX[s.label]) for s in spots]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)

    lone = np.zeros((40, len(CLASSES)))
    lone[17, 1] = 0.9
    assert postprocess(lone, method, stride_s=stride_s, threshold=0.5) == [
        Spot(int(2 * 17 * stride_s), int(round(17 * stride_s * 1000)), CLASSES[1], 0.9)
    ]
    assert postprocess(np.full((40, len(CLASSES)), 0.2), method, threshold=0.5) == []


def test_spots_to_detections_is_the_official_dense_vector() -> None:
    spots = [Spot(4, 2000, "card", 0.9), Spot(8, 4000, "soccer", 0.7), Spot(50, 25000, "subs", 0.2)]
    det = spots_to_detections(spots, 20)  # (20, 3)
    assert det.shape == (20, 3)
    assert det[4, 0] == 0.9 and det[8, 2] == 0.7 and det[19, 1] == 0.2  # clipped like the official
    assert (det == -1).sum() == 57
    target = np.zeros((20, 3))
    target[4, 0] = target[8, 2] = target[19, 1] = 1
    assert average_map([target], [det]).average_map == pytest.approx(1.0)


# ---- files ---------------------------------------------------------------------------------------


def test_results_json_format(tmp_path) -> None:
    game = "england_epl/2014-2015/2015-02-21 - 18-00 Chelsea 1 - 1 Burnley"
    spots = {1: [Spot(1508, 754000, "card", 0.93)], 2: [Spot(8, 4000, "subs", 0.5)]}
    (path,) = write_results({game: spots}, tmp_path)
    assert path == tmp_path / game / "results_spotting.json"
    content = json.loads(path.read_text())
    assert content["UrlLocal"] == game
    assert content["predictions"][0] == {
        "gameTime": "1 - 12:34",
        "label": "card",
        "position": "754000",
        "half": "1",
        "confidence": "0.93",
    }
    assert content["predictions"][1]["gameTime"] == "2 - 00:04"
    parsed = read_predictions(path)
    assert parsed.half.tolist() == [1, 2] and parsed.position_ms.tolist() == [754000, 4000]


def test_spot_halves_writes_one_file_per_game_with_both_halves(tmp_path) -> None:
    halves = [
        _half(n=60, seed=s, game=f"league/season/game{g}", half=h)
        for s, (g, h) in enumerate([(0, 1), (0, 2), (1, 1), (1, 2)])
    ]
    halves.append(_half(n=60, seed=9, game="league/season/train_game", split="train"))
    uri = str(tmp_path / "table")
    write_table(halves, uri, source="test")
    model = _model(_cfg("before_fc"))
    paths = spot_halves(model, iter_halves(uri, "test"), tmp_path / "out", "nms")
    assert sorted(p.parent.name for p in paths) == ["game0", "game1"]
    for p in paths:
        preds = read_predictions(p)
        assert set(preds.half.tolist()) == {1, 2}
        assert preds.confidence.min() >= 0 and preds.confidence.max() <= 1

    from avspot.avmodels.evaluate import evaluate

    result = evaluate(uri, tmp_path / "out", split="test")
    assert 0 <= result["average_map"] <= 1 and result["halves"] == 4
    with pytest.raises(DataError, match="valid methods"):
        spot_halves(model, iter_halves(uri, "test"), tmp_path / "bad", "watershed")
    with pytest.raises(DataError, match="table: no halves to spot"):
        spot_halves(model, [], tmp_path / "empty", source="table")

"""evaluate(): folder trees against the official `evaluate`, tables, the CLI, bad inputs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from avspot.avmodels import metrics, results_io
from avspot.avmodels.evaluate import evaluate, format_result
from avspot.avmodels.metrics import HalfSpots, average_map_spots
from avspot.datasets.errors import DataError
from avspot.datasets.labels import V1, V2
from avspot.search.cli.main import main

official = pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
RAW = ["soccer-ball", "soccer-ball-own", "y-card", "r-card", "yr-card", "substitution-in"]


def write_tree(
    root: Path,
    rng,
    n_games=4,
    prefix="england_epl/2015-2016",
    label_set=V1,
    unshown=0.0,
    edge_cases=False,
):
    """A SoccerNet-layout tree: labels under root/labels, predictions under root/preds.

    v1 writes Labels.json with raw v1 labels, v2 Labels-v2.json with the 17 names and a
    visibility ("not shown" with probability ``unshown``). ``edge_cases``: one game with one half
    only, one with no predictions at all, one class whose events are all not shown, predictions
    past the half's end and past 120 minutes, several on one frame, rounded confidences (ties).
    """
    raw = RAW if label_set is V1 else list(label_set.classes)
    hidden = str(rng.choice(label_set.classes)) if edge_cases else None  # all not shown
    games = []
    for g in range(n_games):
        game = f"{prefix}/2015-08-{10 + g:02d} - 18-00 Team{g} 1 - 0 Other{g}"
        annotations, preds = [], []
        halves = (1,) if edge_cases and g == 0 else (1, 2)
        for half in halves:
            max_s = int(rng.integers(2700, 3000))  # stoppage time
            for _ in range(int(rng.integers(0, 10))):
                sec = int(rng.integers(0, max_s))
                a = {
                    "gameTime": f"{half} - {sec // 60:02d}:{sec % 60:02d}",
                    "label": str(rng.choice(raw)),
                    "team": "home",
                }
                if label_set is not V1 or rng.random() < 0.3:
                    a["position"] = str(sec * 1000 + int(rng.integers(0, 1000)))
                if label_set is not V1:
                    shown = rng.random() >= unshown and a["label"] != hidden
                    a["visibility"] = "visible" if shown else "not shown"
                annotations.append(a)
                for _ in range(3):  # some predictions near each event
                    ms = max(0, sec * 1000 + int(rng.integers(-40_000, 40_000)))
                    preds.append((half, ms, a["label"], float(rng.random())))
            if rng.random() < 0.15:
                continue  # a half with no predictions
            for _ in range(int(rng.integers(0, 150))):
                preds.append((half, int(rng.integers(0, max_s * 1000)), "x", float(rng.random())))
            first = label_set.classes[0]
            preds.append((half, 0, first, 0.5))
            preds.append((half, 0, first, 0.5))  # duplicate in one frame
            if edge_cases:
                preds.append((half, 400, first, 0.9))  # same frame (0), later: it wins
                preds.append((half, (max_s + 30) * 1000, first, 0.7))  # after the half's end
                preds.append((half, 7_300_000, first, 0.6))  # past 120 minutes: clipped
        if edge_cases and g == 1:
            preds = []
        rows = []
        for half, ms, label, conf in preds:
            label = (
                (next(c for c in label_set.classes if c in label) if label_set is V1 else label)
                if label != "x"
                else str(rng.choice(label_set.classes))
            )
            rows.append((half, ms, label, round(conf, 2) if rng.random() < 0.3 else conf))
        (root / "labels" / game).mkdir(parents=True)
        (root / "labels" / game / label_set.labels_file).write_text(
            json.dumps({"annotations": annotations})
        )
        results_io.write_predictions(root / "preds", game, rows, label_set)
        games.append(game)
    return root / "labels", root / "preds", games


def official_evaluate(labels, preds, metric, label_set=V1):
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V1, EVENT_DICTIONARY_V2

    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return official.evaluate(
            str(labels),
            str(preds),
            prediction_file="results_spotting.json",
            split="test",
            version=int(label_set.name[1]),
            metric=metric,
            label_files=label_set.labels_file,
            dataset=None,  # infer the games from the labels tree instead of the official lists
            EVENT_DICTIONARY=EVENT_DICTIONARY_V1 if label_set is V1 else EVENT_DICTIONARY_V2,
        )


def official_differences(ours, ref) -> list[float]:
    """|ours - official| over every value the official evaluate returns (None for None)."""
    diffs = [abs(ours["average_map"] - ref["a_mAP"])]
    diffs += [
        abs(a - b) for a, b in zip(ours["per_class"].values(), ref["a_mAP_per_class"], strict=True)
    ]
    for kind in ("visible", "unshown"):
        if ref[f"a_mAP_{kind}"] is None:
            assert ours[f"average_map_{kind}"] is None and ours[f"per_class_{kind}"] is None
            continue
        diffs.append(abs(ours[f"average_map_{kind}"] - ref[f"a_mAP_{kind}"]))
        ref_pc = list(ref[f"a_mAP_per_class_{kind}"])
        assert len(ref_pc) == len(ours[f"per_class_{kind}"])
        diffs += [
            abs(a - b) for a, b in zip(ours[f"per_class_{kind}"].values(), ref_pc, strict=True)
        ]
    return diffs


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("metric", ["loose", "tight"])
def test_evaluate_tree_equals_official(tmp_path, seed, metric):
    labels, preds, games = write_tree(tmp_path, np.random.default_rng(seed), n_games=3)
    ref = official_evaluate(labels, preds, metric)
    ours = evaluate(labels, preds, metric=metric)
    assert ours["games"] == len(games) and ours["halves"] == 2 * len(games)
    assert ours["average_map"] == pytest.approx(ref["a_mAP"], abs=1e-9)
    assert list(ours["per_class"].values()) == pytest.approx(list(ref["a_mAP_per_class"]), abs=1e-9)
    assert list(ours["per_class"]) == ["card", "subs", "soccer"]
    assert ours["metric"] == metric
    json.dumps(ours)
    text = format_result(ours)
    assert "Average-mAP" in text and "goals" in text and "substitutions" in text


TREE_SEEDS = int(os.environ.get("AVSPOT_PARITY_TREE_SEEDS", "2"))


@pytest.mark.parametrize("seed", range(TREE_SEEDS))
@pytest.mark.parametrize("metric", ["loose", "tight"])
@pytest.mark.parametrize("label_set", [V1, V2], ids=["v1", "v2"])
def test_evaluate_edge_cases_equal_official(tmp_path, seed, metric, label_set):
    """Both label sets against the official evaluate (version 1 with Labels.json, version 2),
    every value it returns, on trees with the edge cases: a one-half game, a game with no
    predictions, a class all not shown, predictions past the end, one frame written twice."""
    rng = np.random.default_rng(100 + seed)
    labels, preds, games = write_tree(
        tmp_path, rng, n_games=3, label_set=label_set, unshown=0.3, edge_cases=True
    )
    ref = official_evaluate(labels, preds, metric, label_set)
    ours = evaluate(labels, preds, metric=metric)
    assert ours["label_set"] == label_set.name
    assert max(official_differences(ours, ref)) <= 1e-9
    assert list(ours["per_class"]) == list(label_set.classes)
    assert ours["games"] == 3 and ours["halves"] == 6
    json.dumps(ours)
    text = format_result(ours)
    assert ("unshown" in text) == (label_set is V2)


@pytest.mark.parametrize("metric", ["at1", "at2", "at3", "at4", "at5"])
def test_single_delta_metrics_equal_official(tmp_path, metric):
    labels, preds, _ = write_tree(
        tmp_path, np.random.default_rng(7), n_games=2, label_set=V2, unshown=0.3
    )
    ref = official_evaluate(labels, preds, metric, V2)
    ours = evaluate(labels, preds, metric=metric, label_set="v2")
    assert ours["metric"] == metric and ours["deltas"] == [float(metric[-1])]
    assert max(official_differences(ours, ref)) <= 1e-9


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("AVSPOT_SLOW"), reason="set AVSPOT_SLOW=1 (about 3 minutes)")
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("label_set", [V1, V2], ids=["v1", "v2"])
def test_evaluate_equals_official_many_seeds(tmp_path, seed, label_set):
    labels, preds, _ = write_tree(
        tmp_path,
        np.random.default_rng(200 + seed),
        n_games=6,
        label_set=label_set,
        unshown=0.2,
        edge_cases=seed % 2 == 0,
    )
    for metric in ("loose", "tight", f"at{seed % 5 + 1}"):
        ref = official_evaluate(labels, preds, metric, label_set)
        assert max(official_differences(evaluate(labels, preds, metric=metric), ref)) <= 1e-9


def test_cli_json_contract(tmp_path, capsys):
    labels, preds, _ = write_tree(tmp_path, np.random.default_rng(11), n_games=2)
    rc = main(
        [
            "evaluate",
            "--labels",
            str(labels),
            "--predictions",
            str(preds),
            "--json",
            "--metric",
            "tight",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"average_map", "per_class", "metric"}
    assert set(out["per_class"]) == {"card", "subs", "soccer"}
    assert out["metric"] == "tight"
    assert out["average_map"] == pytest.approx(
        evaluate(labels, preds, metric="tight")["average_map"]
    )
    rc = main(["evaluate", "--labels", str(labels), "--predictions", str(preds)])
    assert rc == 0 and "Average-mAP (loose" in capsys.readouterr().out


def test_official_split_filter(tmp_path):
    from avspot.datasets.layout import official_games

    test_games = sorted(official_games("test"))
    assert len(test_games) == 100
    rng = np.random.default_rng(0)
    labels, preds, games = write_tree(tmp_path, rng, n_games=2)
    # a game of the official test split, with labels and predictions
    game = test_games[0]
    (labels / game).mkdir(parents=True)
    (labels / game / "Labels.json").write_text(
        json.dumps({"annotations": [{"gameTime": "1 - 01:00", "label": "y-card"}]})
    )
    results_io.write_predictions(preds, game, [(1, 61_000, "card", 0.9)])
    out = evaluate(labels, preds, split="test")
    assert out["games"] == 1
    assert out["per_class"]["card"] == 1.0
    with pytest.raises(DataError, match="split"):
        evaluate(labels, preds, split="nope")


# ---- bad input -------------------------------------------------------------------------------------


def cli_error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("avspot: error:") and "\n" not in err
    return err


def test_bad_inputs_exit_2(tmp_path, capsys):
    labels, preds, games = write_tree(tmp_path, np.random.default_rng(1), n_games=2)
    base = ["evaluate", "--labels", str(labels), "--predictions", str(preds)]
    f = preds / games[0] / "results_spotting.json"
    good = f.read_text()

    f.write_text(good[:-20])
    assert str(f) in cli_error(capsys, base)

    content = json.loads(good)
    content["predictions"].append(
        {"label": "goal", "position": "1000", "half": "1", "confidence": "0.5"}
    )
    f.write_text(json.dumps(content))
    err = cli_error(capsys, base)
    assert "goal" in err and str(f) in err

    for bad_entry, word in [
        ({"label": "card", "position": "1000", "half": "3", "confidence": "0.5"}, "half"),
        ({"label": "card", "position": "-5000", "half": "1", "confidence": "0.5"}, "negative"),
        ({"label": "card", "position": "1000", "half": "1", "confidence": "high"}, "confidence"),
        ({"label": "card", "half": "1", "confidence": "0.5"}, "position"),
    ]:
        content = json.loads(good)
        content["predictions"].append(bad_entry)
        f.write_text(json.dumps(content))
        assert word in cli_error(capsys, base)
    f.write_text(json.dumps({"UrlLocal": "x"}))
    assert "predictions" in cli_error(capsys, base)
    f.write_text(good)

    assert "no such folder" in cli_error(
        capsys, ["evaluate", "--labels", str(tmp_path / "nope"), "--predictions", str(preds)]
    )
    assert "no such folder" in cli_error(
        capsys, ["evaluate", "--labels", str(labels), "--predictions", str(tmp_path / "nope")]
    )

    lab = labels / games[1] / "Labels.json"
    lab_good = lab.read_text()
    lab.write_text(json.dumps({"annotations": [{"gameTime": "1 - 01:00", "label": "offside"}]}))
    assert "offside" in cli_error(capsys, base)
    lab.write_text(json.dumps({"annotations": [{"gameTime": "1 : 01:00", "label": "y-card"}]}))
    assert "gameTime" in cli_error(capsys, base)
    lab.write_text(lab_good)

    # predictions for a game the labels do not know; labels with no predictions
    results_io.write_predictions(preds, "x/y/unknown game", [(1, 1000, "card", 0.5)])
    assert "unknown game" in cli_error(capsys, base)
    (preds / "x/y/unknown game/results_spotting.json").unlink()
    f.unlink()
    assert "no results_spotting.json" in cli_error(capsys, base)


def test_never_scores_on_the_wrong_vocabulary(tmp_path, capsys):
    """v2 label files with --label-set v1 (the official trap: version=1 on Labels-v2.json keeps
    only the cards), both kinds without --label-set, predictions of the other label set: exit 2,
    one line naming the file."""
    labels, preds, games = write_tree(tmp_path / "a", np.random.default_rng(3), 2, label_set=V2)
    base = ["evaluate", "--labels", str(labels), "--predictions", str(preds)]
    err = cli_error(capsys, [*base, "--label-set", "v1"])
    assert "Labels-v2.json" in err and "v1" in err and str(labels) in err
    assert main([*base, "--json", "--label-set", "v2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["label_set"] == "v2" and len(out["per_class"]) == 17
    assert set(out) >= {
        "average_map", "per_class", "metric", "label_set", "average_map_visible",
        "average_map_unshown", "per_class_visible", "per_class_unshown",
    }  # fmt: skip
    assert out["average_map_visible"] is not None and out["average_map_unshown"] is not None

    # a v1 Labels.json next to a Labels-v2.json: which one is meant must be said
    (labels / games[0] / "Labels.json").write_text(
        json.dumps({"annotations": [{"gameTime": "1 - 01:00", "label": "y-card"}]})
    )
    err = cli_error(capsys, base)
    assert "--label-set" in err and "Labels.json" in err
    assert main([*base, "--label-set", "v2"]) == 0
    capsys.readouterr()
    # only one game has Labels.json: --label-set v1 names a game that has only the v2 file
    err = cli_error(capsys, [*base, "--label-set", "v1"])
    assert str(labels / games[1] / "Labels-v2.json") in err

    # v1 predictions against v2 labels, and v2 predictions against v1 labels
    (labels / games[0] / "Labels.json").unlink()
    f = preds / games[0] / "results_spotting.json"
    good = f.read_text()
    content = json.loads(good)
    content["predictions"].append(
        {"label": "card", "position": "1000", "half": "1", "confidence": "0.5"}
    )
    f.write_text(json.dumps(content))
    err = cli_error(capsys, base)
    assert str(f) in err and "'card'" in err and "v2" in err
    f.write_text(good)
    v1_labels, v1_preds, v1_games = write_tree(tmp_path / "b", np.random.default_rng(4), 2)
    g = v1_preds / v1_games[1] / "results_spotting.json"
    content = json.loads(g.read_text())
    content["predictions"].append(
        {"label": "Yellow card", "position": "1000", "half": "1", "confidence": "0.5"}
    )
    g.write_text(json.dumps(content))
    err = cli_error(
        capsys, ["evaluate", "--labels", str(v1_labels), "--predictions", str(v1_preds)]
    )
    assert str(g) in err and "Yellow card" in err and "label of v2" in err
    # a v1 label inside a Labels-v2.json, a visibility the official does not know
    lab = labels / games[1] / "Labels-v2.json"
    lab.write_text(json.dumps({"annotations": [{"gameTime": "1 - 01:00", "label": "y-card"}]}))
    assert str(lab) in cli_error(capsys, base)
    lab.write_text(
        json.dumps(
            {"annotations": [{"gameTime": "1 - 01:00", "label": "Goal", "visibility": "maybe"}]}
        )
    )
    err = cli_error(capsys, base)
    assert str(lab) in err and "visibility" in err


def test_read_labels_refuses_the_other_label_file(tmp_path):
    path = tmp_path / "Labels-v2.json"
    path.write_text(json.dumps({"annotations": [{"gameTime": "1 - 01:00", "label": "Goal"}]}))
    with pytest.raises(DataError, match="Labels-v2.json"):
        results_io.read_labels(path)  # v1 by default: the official version=1 trap
    assert results_io.read_labels(path, "v2").label.tolist() == [2]


def test_lenient_reading_of_official_writers(tmp_path):
    """Numbers instead of strings, decimal positions, extra keys: read as the official does."""
    content = {
        "UrlLocal": "g",
        "predictions": [
            {
                "gameTime": "1 - 00:01",
                "label": "card",
                "position": 1500,
                "half": 1,
                "confidence": 0.25,
                "extra": 1,
            },
            {"label": "subs", "position": "2500.0", "half": "2", "confidence": "1"},
            {"label": "soccer", "position": 3999.9, "half": "1", "confidence": 1},
        ],
    }
    p = results_io.parse_predictions(content)
    assert p.half.tolist() == [1, 2, 1]
    assert p.position_ms.tolist() == [1500, 2500, 3999]
    assert p.frames().tolist() == [3, 5, 7]
    assert p.confidence.tolist() == [0.25, 1.0, 1.0]


def test_written_predictions_round_trip(tmp_path):
    rows = [(1, 754_000, "card", 0.9), (2, 1, "soccer", 1e-9)]
    path = results_io.write_predictions(tmp_path, "a/b/c", rows)
    content = json.loads(path.read_text())
    assert content["UrlLocal"] == "a/b/c"
    assert content["predictions"][0] == {
        "gameTime": "1 - 12:34",
        "label": "card",
        "position": "754000",
        "half": "1",
        "confidence": "0.9",
    }
    p = results_io.read_predictions(path)
    assert p.confidence.tolist() == [0.9, 1e-9]
    assert list(path.parent.iterdir()) == [path]  # no temporary left behind


# ---- feature table ----------------------------------------------------------------------------------


def test_evaluate_table(tmp_path):
    from avspot.datasets import synth, table

    uri = str(tmp_path / "table")
    synth.synthesize(uri, games=3, seed=5, half_minutes=3.0)
    halves = table.read_halves(uri, "test") or table.read_halves(uri)
    split = halves[0].split
    halves = [h for h in halves if h.split == split]
    rng = np.random.default_rng(0)
    by_game: dict[str, list] = {}
    expected = []
    for h in halves:
        n = len(h.video)
        rows = [
            (
                h.half,
                int(e.position_ms) + int(rng.integers(-3000, 3000)),
                e.label,
                float(rng.random()),
            )
            for e in h.events
        ]
        rows += [
            (
                h.half,
                int(rng.integers(0, n * 500)),
                str(rng.choice(["card", "subs", "soccer"])),
                float(rng.random()),
            )
            for _ in range(20)
        ]
        rows = [(hh, max(0, ms), lab, c) for hh, ms, lab, c in rows]
        rows.append((h.half, n * 500 + 4000, "card", 0.99))  # past the features' end
        by_game.setdefault(h.game, []).extend(rows)
        ev_f = [int(2 * e.position_ms / 1000) for e in h.events]
        ev_c = [["card", "subs", "soccer"].index(e.label) for e in h.events]
        fr = [int(2 * (ms / 1000)) for _, ms, _, _ in rows]
        cl = [["card", "subs", "soccer"].index(lab) for _, _, lab, _ in rows]
        # densified to the official 120 minutes, whatever the half's length
        expected.append(HalfSpots.from_lists(ev_f, ev_c, fr, cl, [r[3] for r in rows], 14400))
        assert expected[-1].frames[0].max() >= n
        dense_target = metrics.events_to_dense(h.events, 14400)  # table Events straight to dense
        np.testing.assert_array_equal(dense_target != 0, expected[-1].to_dense()[0] != 0)
    preds = tmp_path / "preds"
    for game, rows in by_game.items():
        results_io.write_predictions(preds, game, rows)
    out = evaluate(uri, preds, split=split)
    assert out["games"] == len(by_game) and out["halves"] == len(halves)
    assert out["average_map"] == average_map_spots(expected).average_map
    # the same halves through the official dense path
    dense = [e.to_dense() for e in expected]
    ref = official.average_mAP(
        [d[0] for d in dense],
        [d[1] for d in dense],
        [d[0] * 0 - 1 for d in dense],
        2,
        np.arange(12) * 5 + 5,
    )
    assert out["average_map"] == pytest.approx(ref[0], abs=1e-9)
    if len({h.split for h in table.read_halves(uri)}) > 1:
        with pytest.raises(DataError, match="evaluate one split") as err:
            evaluate(uri, preds)
        assert err.value.field == "split"  # the command line shows it as --split
    assert out["label_set"] == "v1" and out["average_map_visible"] is None
    with pytest.raises(DataError, match="manifest.json.*v1.*not v2"):
        evaluate(uri, preds, split=split, label_set="v2")


def test_evaluate_v2_table(tmp_path, monkeypatch):
    """A table whose manifest says v2 and whose events carry a visibility (the table format
    being extended elsewhere: read here with getattr defaults) equals the official evaluate on
    the same events written as Labels-v2.json."""
    from dataclasses import dataclass

    from avspot.datasets import manifest as manifest_mod
    from avspot.datasets import synth, table

    uri = str(tmp_path / "table")
    synth.synthesize(uri, games=2, seed=6, half_minutes=2.0)
    rng = np.random.default_rng(1)

    @dataclass
    class V2Event:
        frame: int
        label: str
        raw_label: str
        position_ms: int
        visibility: str

    halves = []
    for h in table.read_halves(uri):
        h.events = [
            V2Event(0, str(lab), str(lab), ms, str(vis))
            for lab, ms, vis in zip(
                rng.choice(V2.classes, 12),
                rng.integers(0, h.n_frames * 500, 12),
                rng.choice(["visible", "visible", "not shown"], 12),
                strict=True,
            )
        ]
        halves.append(h)
    real = manifest_mod.read_manifest(uri)
    monkeypatch.setattr(table, "iter_halves", lambda *a, **k: iter(halves))
    monkeypatch.setattr(manifest_mod, "read_manifest", lambda *a: _with(real, label_set="v2"))
    labels, preds = tmp_path / "labels", tmp_path / "preds"
    by_game: dict[str, list] = {}
    for h in halves:
        by_game.setdefault(h.game, [])
        for e in h.events:
            by_game[h.game] += [
                (h.half, max(0, e.position_ms + int(rng.integers(-9000, 9000))), e.label, float(c))
                for c in rng.random(2)
            ]
        by_game[h.game] += [
            (h.half, int(ms), str(lab), float(c))
            for ms, lab, c in zip(
                rng.integers(0, 130_000, 30), rng.choice(V2.classes, 30), rng.random(30),
                strict=True,
            )
        ]  # fmt: skip
    for game in by_game:
        ann = [
            {
                "gameTime": f"{h.half} - {e.position_ms // 60000:02d}:{e.position_ms // 1000 % 60:02d}",
                "label": e.label,
                "position": str(e.position_ms),
                "visibility": e.visibility,
            }
            for h in halves
            if h.game == game
            for e in h.events
        ]
        (labels / game).mkdir(parents=True)
        (labels / game / "Labels-v2.json").write_text(json.dumps({"annotations": ann}))
        results_io.write_predictions(preds, game, by_game[game], V2)
    ours = evaluate(uri, preds, metric="tight")
    assert ours["label_set"] == "v2" and ours["halves"] == len(halves)
    assert ours["events_unshown"] and sum(ours["events_unshown"].values()) > 0
    ref = official_evaluate(labels, preds, "tight", V2)
    assert max(official_differences(ours, ref)) <= 1e-9
    with pytest.raises(DataError, match="label set is v2"):
        evaluate(uri, preds, label_set="v1")


def _with(manifest, **changes):
    """The manifest with some fields changed (the events were rewritten as v2's)."""
    import dataclasses

    return dataclasses.replace(manifest, **changes)


def test_imports_stay_light():
    """metrics, results_io and evaluate import numpy and the stdlib only (no torch, no pyarrow)."""
    import subprocess
    import sys

    code = (
        "import sys; import avspot.avmodels.evaluate, avspot.avmodels.results_io; "
        "print(sorted(m for m in ('torch', 'pyarrow', 'ray', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

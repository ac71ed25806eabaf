"""evaluate(): folder trees against the official `evaluate`, tables, the CLI, bad inputs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from avspot.avmodels import metrics, results_io
from avspot.avmodels.evaluate import evaluate, format_result
from avspot.avmodels.metrics import HalfSpots, average_map_spots
from avspot.datasets.errors import DataError
from avspot.search.cli.main import main

official = pytest.importorskip("SoccerNet.Evaluation.ActionSpotting")
RAW = ["soccer-ball", "soccer-ball-own", "y-card", "r-card", "yr-card", "substitution-in"]


def write_tree(root: Path, rng, n_games=4, prefix="england_epl/2015-2016"):
    """A SoccerNet-layout tree: labels under root/labels, predictions under root/preds."""
    games = []
    for g in range(n_games):
        game = f"{prefix}/2015-08-{10 + g:02d} - 18-00 Team{g} 1 - 0 Other{g}"
        annotations, preds = [], []
        for half in (1, 2):
            max_s = int(rng.integers(2700, 3000))  # stoppage time
            for _ in range(int(rng.integers(0, 10))):
                sec = int(rng.integers(0, max_s))
                a = {
                    "gameTime": f"{half} - {sec // 60:02d}:{sec % 60:02d}",
                    "label": str(rng.choice(RAW)),
                    "team": "home",
                }
                if rng.random() < 0.3:
                    a["position"] = str(sec * 1000 + int(rng.integers(0, 1000)))
                annotations.append(a)
                for _ in range(3):  # some predictions near each event
                    ms = max(0, sec * 1000 + int(rng.integers(-40_000, 40_000)))
                    preds.append((half, ms, a["label"], float(rng.random())))
            if rng.random() < 0.15:
                continue  # a half with no predictions
            for _ in range(int(rng.integers(0, 150))):
                preds.append((half, int(rng.integers(0, max_s * 1000)), "x", float(rng.random())))
            preds.append((half, 0, "card", 0.5))
            preds.append((half, 0, "card", 0.5))  # duplicate in one frame
        rows = []
        for half, ms, label, conf in preds:
            label = (
                next(c for c in ("card", "subs", "soccer") if c in label)
                if label != "x"
                else str(rng.choice(["card", "subs", "soccer"]))
            )
            rows.append((half, ms, label, round(conf, 2) if rng.random() < 0.3 else conf))
        (root / "labels" / game).mkdir(parents=True)
        (root / "labels" / game / "Labels.json").write_text(
            json.dumps({"annotations": annotations})
        )
        results_io.write_predictions(root / "preds", game, rows)
        games.append(game)
    return root / "labels", root / "preds", games


def official_evaluate(labels, preds, metric):
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return official.evaluate(
            str(labels),
            str(preds),
            prediction_file="results_spotting.json",
            split="test",
            version=1,
            metric=metric,
            label_files="Labels.json",
            dataset=None,  # infer the games from the labels tree instead of the official lists
            EVENT_DICTIONARY=EVENT_DICTIONARY_V1,
        )


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
        by_game.setdefault(h.game, []).extend(rows)
        ev_f = [e.frame for e in h.events]
        ev_c = [["card", "subs", "soccer"].index(e.label) for e in h.events]
        fr = [int(2 * (ms / 1000)) for _, ms, _, _ in rows]
        cl = [["card", "subs", "soccer"].index(lab) for _, _, lab, _ in rows]
        expected.append(HalfSpots.from_lists(ev_f, ev_c, fr, cl, [r[3] for r in rows], n))
        dense_target = metrics.events_to_dense(h.events, n)  # table Events straight to dense
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
        with pytest.raises(DataError, match="--split"):
            evaluate(uri, preds)


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

"""SoccerNet-v2 through the whole loop, as a user types it: a synthetic v2 table (17 classes,
some events not shown), a search, promotion, spotting and tight/loose evaluation, which agrees
with the official evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avspot.datasets.labels import V2
from avspot.search.cli.main import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_v2_table_goes_through_search_promote_spot_and_evaluate(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    table = str(tmp_path / "v2")
    args = [
        "data",
        "synth",
        "--out",
        table,
        "--labels",
        "v2",
        "--games",
        "6",
        "--half-minutes",
        "4",
    ]
    assert main([*args, "--quiet"]) == 0
    search = ["search", "--data", table, "--space", "smoke", "--trials", "2", "--max-epochs", "2"]
    assert main([*search, "--experiment", "v2", "--storage", "rr", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "registered avspot-spotter version 1 as @challenger" in out, out[-2000:]
    assert main(["promote", "--experiment", "v2"]) == 0
    spot = ["spot", "--model", "models:/avspot-spotter@champion", "--data", table]
    assert main([*spot, "--split", "test", "--out", "preds", "--quiet"]) == 0
    files = list(Path("preds").rglob("results_spotting.json"))
    assert files
    labels = {p["label"] for f in files for p in json.loads(f.read_text())["predictions"]}
    assert labels <= set(V2.classes) and len(labels) > 3  # v2's names, as the official reads them
    capsys.readouterr()
    for metric in ("tight", "loose"):
        ev = ["evaluate", "--labels", table, "--predictions", "preds", "--split", "test"]
        assert main([*ev, "--metric", metric, "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got["label_set"] == "v2" and got["metric"] == metric
        assert set(got["per_class"]) == set(V2.classes)
        assert 0.0 <= got["average_map"] <= 1.0 and got["average_map_visible"] is not None
    assert main(["report", "--experiment", "v2", "--out", "report"]) == 0
    text = Path("report/report.md").read_text()
    assert "Table 6" in text and "Ball out of play" in text and "unshown" in text

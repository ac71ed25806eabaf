"""Model registry: challenger registration, guarded promotion with aliases, loading spotters
from models:/, runs:/, directories and files, and the pyfunc model's predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avspot.datasets.errors import DataError
from avspot.search.cli.main import main as cli_main
from avspot.search.tracking.client import get_client
from avspot.search.tracking.names import (
    MODEL_NAME,
    V_FINGERPRINT,
    V_METRIC,
    V_METRIC_SOURCE,
    V_METRIC_VALUE,
    V_SEARCH,
)
from avspot.search.tracking.registry import _download, load_spotter, promote, register_challenger
from avspot.search.tracking.runs import finish_search_run, start_search_run
from avspot.search.tracking.trial import TrialRun
from tests.support import testing as F

FP = "a" * 64


def _search(
    experiment: str, quality: float, fingerprint: str = FP, seed: int = 0, **extra_metrics: float
):
    """A finished one-trial search registered as challenger; returns (parent, run id, version)."""
    params = {"space": "smoke"}
    manifest = F.tiny_manifest(fingerprint)
    parent = start_search_run(experiment, params, data_uri="/data/t", manifest=manifest)
    cfg = F.tiny_train_config()
    cb = TrialRun(parent, cfg.to_dict(), "trial")
    F.run_fake_trial(cb, cfg, quality=quality, seed=seed)
    metrics = {**get_client().get_run(cb.run_id).data.metrics, **extra_metrics}
    mv = register_challenger(experiment, cb.run_id, metrics, fingerprint, parent)
    finish_search_run(parent)
    return parent, cb.run_id, mv


def test_register_challenger_sets_alias_and_tags(store: str) -> None:
    parent, run_id, mv = _search("exp", 0.5)
    client = get_client()
    got = client.get_model_version_by_alias(MODEL_NAME, "challenger")
    assert got.version == mv.version and got.run_id == run_id
    assert got.tags[V_FINGERPRINT] == FP
    assert got.tags[V_SEARCH] == parent
    assert got.tags[V_METRIC] == "val_average_map"
    assert float(got.tags[V_METRIC_VALUE]) == pytest.approx(
        client.get_run(run_id).data.metrics["best_val_average_map"]
    )
    assert got.tags[V_METRIC_SOURCE] == "best_val_average_map"  # no full_ metric in a fake trial


def test_registry_ranks_by_the_full_score_and_says_so(store: str, capsys) -> None:
    """A search validates epochs cheaply and scores the kept one in full: that value is
    compared, and the messages name it."""
    _, _, mv = _search("exp", 0.5, full_val_average_map=0.61)
    assert mv.tags[V_METRIC_SOURCE] == "full_val_average_map"
    assert float(mv.tags[V_METRIC_VALUE]) == 0.61
    assert cli_main(["promote", "--experiment", "exp"]) == 0
    assert "(full_val_average_map=0.6100)" in capsys.readouterr().out


def test_promote_only_when_better_on_same_data(store: str, capsys) -> None:
    _search("exp", 0.5)
    assert cli_main(["promote", "--experiment", "exp"]) == 0  # first champion
    assert "first holder" in capsys.readouterr().out
    client = get_client()
    v1 = client.get_model_version_by_alias(MODEL_NAME, "champion").version
    assert cli_main(["promote", "--experiment", "exp"]) == 0  # already champion

    _search("exp", 0.3, seed=1)  # worse
    assert cli_main(["promote", "--experiment", "exp"]) == 1
    assert "does not beat" in capsys.readouterr().err
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == v1

    _, _, better = _search("exp", 0.9, seed=2)
    res = promote("exp")
    assert res.promoted and res.previous == str(v1)
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == better.version

    _search("exp", 0.99, fingerprint="b" * 64, seed=3)  # better, but other data
    res = promote("exp")
    assert not res.promoted and "not comparable" in res.message
    forced = promote("exp", force=True)
    assert forced.promoted and "[forced]" in forced.message
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").tags["avspot.forced"]


def test_promote_bad_input(store: str) -> None:
    with pytest.raises(DataError, match="not found"):
        promote("nope")
    start_search_run("empty", {"space": "smoke"})
    with pytest.raises(DataError, match="no registered challenger"):
        promote("empty")


def test_load_spotter_from_every_kind_of_uri(store: str, tmp_path: Path) -> None:
    _, run_id, mv = _search("exp", 0.5)
    promote("exp")
    uris = [
        "models:/avspot-spotter@champion",
        f"models:/avspot-spotter/{mv.version}",
        f"runs:/{run_id}/model",
        mv.source,  # models:/<model_id>
    ]
    for uri in uris:
        model, cfg = load_spotter(uri)
        assert model.config == cfg and not model.training, uri
    local = _download("models:/avspot-spotter@champion")
    assert load_spotter(str(local))[1] == cfg
    assert load_spotter(str(local / "artifacts" / "checkpoint"))[1] == cfg
    for bad in (
        "models:/avspot-spotter@nobody",
        "runs:/0123456789abcdef/model",
        str(tmp_path / "missing"),
    ):
        with pytest.raises(DataError, match=r"^model ") as err:
            load_spotter(bad)
        assert err.value.field == "model"  # the command line shows it as --model


def test_pyfunc_predicts_spots_for_a_half(store: str) -> None:
    import mlflow.pyfunc

    _search("exp", 0.5)
    promote("exp")
    pm = mlflow.pyfunc.load_model("models:/avspot-spotter@champion")
    half = F.tiny_halves(1)[0]
    out = pm.predict({"video": half.video, "audio": half.audio}, params={"method": "max"})
    assert list(out.columns) == ["frame", "position_ms", "label", "confidence"]
    assert set(out["label"]) <= {"card", "subs", "soccer"}
    assert (out["frame"] == (out["position_ms"] * 2 // 1000)).all()
    # the torch model gives the same spots
    from avspot.avmodels.spotting import spot_half

    model, _ = load_spotter("models:/avspot-spotter@champion")
    ref = spot_half(model, half, "max")
    assert [(s.frame, s.label) for s in ref] == list(zip(out["frame"], out["label"], strict=True))
    assert np.allclose([s.confidence for s in ref], out["confidence"])
    sig = pm.metadata.signature
    assert sig.inputs.input_names() == ["video", "audio"]

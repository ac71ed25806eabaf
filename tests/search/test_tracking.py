"""MLflow tracking on a sqlite store in a temp dir: parent/child runs, metrics per epoch,
artifacts, the logged model, run statuses, fast failure on an unreachable server, no secrets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from avspot.datasets.errors import DataError
from avspot.search.tracking import client as tracking_client
from avspot.search.tracking.client import get_client, tracking_uri
from avspot.search.tracking.names import TAG_DATA_SOURCE, TAG_MODEL_URI, TAG_ROLE, TAG_TRIAL_ID
from avspot.search.tracking.runs import (
    child_runs,
    end_trial_runs,
    finish_search_run,
    search_parent_run,
    start_search_run,
)
from avspot.search.tracking.scrub import scrub
from avspot.search.tracking.trial import TrialRun
from tests.support import testing as F
from tests.support.s3server import free_port

PARAMS = {
    "space": "smoke",
    "data_uri": "/data/table",
    "data_source": "synthetic",
    "data_fingerprint": "f" * 64,
    "trials": 4,
    "metric": "val_average_map",
}


def _trial(parent: str, fusion: str = "before_fc", **kw) -> TrialRun:
    cfg = F.tiny_train_config(fusion)
    return TrialRun(parent, cfg.to_dict(), f"trial_{fusion}", **kw)


def test_tracking_uri_defaults_to_absolute_sqlite(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert tracking_uri("sqlite:///rel/x.db") == f"sqlite:///{tmp_path.resolve() / 'rel/x.db'}"
    with pytest.raises(DataError, match="file stores"):
        tracking_uri("file:///tmp/mlruns")
    with pytest.raises(DataError, match="file stores"):
        tracking_uri("/tmp/mlruns")


def test_parent_and_nested_child_run(store: str) -> None:
    manifest = F.tiny_manifest()
    parent = start_search_run("exp", PARAMS, {"owner": "tests"}, data_uri="/t", manifest=manifest)
    cb = _trial(parent, trial_id="abc_00001", data_uri="/t", manifest=manifest)
    F.run_fake_trial(cb, F.tiny_train_config(), epochs=4)
    client = get_client()
    prun, run = client.get_run(parent), client.get_run(cb.run_id)

    assert prun.data.params["data_source"] == "synthetic"
    assert prun.data.tags["avspot.code_version"]
    assert prun.data.tags[TAG_ROLE] == "search"
    # MLflow's own idioms: context tags, and the table as a dataset input of both runs
    assert prun.data.tags["mlflow.user"] and prun.data.tags["mlflow.source.type"]
    checkout = Path(tracking_client.__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True)
    if head.returncode == 0:  # run from a checkout: the UI's source version is its commit
        assert prun.data.tags["mlflow.source.git.commit"] == head.stdout.decode().strip()
    for r in (prun, run):
        (inp,) = r.inputs.dataset_inputs
        assert inp.dataset.name == "synthetic" and inp.dataset.digest == "f" * 32
        assert inp.dataset.source_type == "local" and "/t" in inp.dataset.source
        assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "train+valid"
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags[TAG_TRIAL_ID] == "abc_00001"
    assert run.data.tags[TAG_DATA_SOURCE] == "synthetic"
    assert run.info.status == "FINISHED" and cb.status == "FINISHED"
    assert run.info.experiment_id == prun.info.experiment_id
    # the trial config, flattened
    assert run.data.params["model.fusion"] == "before_fc"
    assert run.data.params["lr"] == "0.001"
    # per-epoch metrics with step = epoch; best-epoch summary
    hist = client.get_metric_history(cb.run_id, "val_map")
    assert [h.step for h in hist] == [1, 2, 3, 4]
    for key in ("train_loss", "train_map", "val_average_map", "lr", "val_ap_card"):
        assert len(client.get_metric_history(cb.run_id, key)) == 4
    m = run.data.metrics
    for key in (
        "best_val_map",
        "best_val_average_map",
        "best_val_average_map_tight",
        "best_val_ap_card",
        "best_val_ap_subs",
        "best_val_ap_soccer",
        "best_epoch",
    ):
        assert key in m
    arts = {a.path for a in client.list_artifacts(cb.run_id, "plots")}
    assert {"plots/learning_curves.png", "plots/val_confusion.png"} <= arts
    assert {a.path for a in client.list_artifacts(cb.run_id, "metrics")} >= {
        "metrics/val_confusion.json",
        "metrics/history.json",
    }
    # the model: a LoggedModel of the run, reachable as runs:/<id>/model
    assert cb.model_uri and cb.model_uri.startswith("models:/")
    assert run.data.tags[TAG_MODEL_URI] == cb.model_uri
    from avspot.search.tracking.registry import load_spotter

    model, cfg = load_spotter(f"runs:/{cb.run_id}/model")
    assert cfg.fusion == "before_fc" and model.config == cfg
    (logged,) = client.search_logged_models([run.info.experiment_id])
    assert logged.source_run_id == cb.run_id and logged.status.name == "READY"
    assert logged.model_id == cb.model_uri.removeprefix("models:/")
    assert {m.key for m in logged.metrics} >= {"val_average_map", "best_val_average_map"}

    finish_search_run(parent, "FINISHED", {"trials": 1}, tags={"done": "yes"})
    prun = client.get_run(parent)
    assert prun.info.status == "FINISHED" and prun.data.metrics["trials"] == 1


def test_child_run_statuses_never_left_running(store: str) -> None:
    parent = start_search_run("exp", PARAMS)
    client = get_client()

    with pytest.raises(RuntimeError), _trial(parent, log_model=False) as failing:
        failing.log_epoch(1, {"val_map": 0.1, "lr": 1e-3})
        raise RuntimeError("boom")
    run = client.get_run(failing.run_id)
    assert run.info.status == "FAILED"
    assert "boom" in run.data.tags["avspot.error"]

    stopped = _trial(parent, log_model=False)
    F.run_fake_trial(stopped, F.tiny_train_config(), stop_after=2)
    stopped.close("KILLED")
    stopped.close("FINISHED")  # idempotent
    assert client.get_run(stopped.run_id).info.status == "KILLED"

    # a trial whose process died: the driver's callback logic and finish_search_run end it
    orphan = _trial(parent, trial_id="t_orphan", log_model=False)
    orphan.log_epoch(1, {"val_map": 0.2})
    assert end_trial_runs("t_orphan", "KILLED", parent) == 1
    orphan.close("FINISHED")  # a late close does not overwrite the driver's status
    assert client.get_run(orphan.run_id).info.status == "KILLED"

    lost = _trial(parent, log_model=False)
    finish_search_run(parent)
    assert client.get_run(lost.run_id).info.status == "KILLED"
    assert {r.info.status for r in child_runs(client, parent)} <= {"FAILED", "KILLED"}
    with pytest.raises(ValueError, match="status"):
        finish_search_run(parent, "DONE")


def test_search_parent_run_resume_reopens_latest(store: str) -> None:
    first, exp_id = search_parent_run("exp", PARAMS)
    finish_search_run(first, "KILLED")
    again, exp_id2 = search_parent_run("exp", PARAMS, resume=True)
    assert (again, exp_id2) == (first, exp_id)
    assert get_client().get_run(first).info.status == "RUNNING"
    new, _ = search_parent_run("exp", PARAMS)
    assert new != first


def test_kept_epoch_scored_per_method_with_timelines(store: str, tmp_path: Path) -> None:
    from avspot.datasets.table import iter_halves, write_table

    table = str(tmp_path / "table")
    halves = F.tiny_halves(2, split="valid") + F.tiny_halves(2, split="test", seed=1)
    halves += F.tiny_halves(2, split="train", seed=2)
    write_table(halves, table, source="synthetic", seed=0)
    parent = start_search_run("exp", PARAMS)
    cb = _trial(parent)
    F.run_fake_trial(cb, F.tiny_train_config(), valid_halves=iter_halves(table, "valid"))
    client = get_client()
    m = client.get_run(cb.run_id).data.metrics
    from avspot.avmodels.postprocess import POSTPROCESS

    for method in POSTPROCESS:
        assert 0.0 <= m[f"val_average_map_{method}"] <= 1.0
    # the kept epoch scored in full with the trainer's method: what the registry compares
    assert m["full_val_average_map"] == m["val_average_map_nms"]
    arts = {a.path for a in client.list_artifacts(cb.run_id, "plots")}
    assert {"plots/val_map_vs_tolerance.png", "plots/timeline.png"} <= arts
    assert "avspot.eval_error" not in client.get_run(cb.run_id).data.tags


def test_unreachable_server_fails_within_seconds(
    fake_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search refused at once: one probe of /health with its short timeout, no retry (the
    health check's error is not taken for an outage to wait through)."""
    import urllib.request

    probes: list[float] = []
    real = urllib.request.urlopen

    def probe(url, timeout):  # noqa: ANN001, ANN202
        probes.append(timeout)
        return real(url, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", probe)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:pw@127.0.0.1:{free_port()}")
    with pytest.raises(DataError, match="is unreachable") as exc:
        start_search_run("exp", PARAMS)
    assert probes == [tracking_client._HEALTH_TIMEOUT_S] and fake_clock.sleeps == []
    assert "pw" not in str(exc.value)


def test_scrub_drops_secret_keys_and_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-xyz")
    out = scrub(
        {
            "aws_secret_access_key": "x",
            "api_token": "y",
            "uri": "s3://AK:s3cr3t-value-xyz@bucket/p",
            "note": "key s3cr3t-value-xyz here",
            "nested": {"a": 1},
        }
    )
    assert set(out) == {"uri", "note", "nested"}
    assert "s3cr3t" not in "".join(out.values())
    assert out["uri"] == "s3://***@bucket/p"

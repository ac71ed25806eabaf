"""The report: seed-style tables from trial runs, data provenance, atomic output, logged to the
parent run; and the secrets scan over everything a tracked search leaves in MLflow."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from avspot.datasets.errors import DataError
from avspot.search.cli.main import main as cli_main
from avspot.search.reporting.report import build_report
from avspot.search.tracking.client import get_client
from avspot.search.tracking.names import MODEL_NAME
from avspot.search.tracking.registry import _download, promote, register_challenger
from avspot.search.tracking.runs import finish_search_run, start_search_run
from avspot.search.tracking.trial import TrialRun
from tests.support import testing as F

SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEKEYID7777",
    "AWS_SECRET_ACCESS_KEY": "fakeSecretKey/abc+9999",
    "MLFLOW_TRACKING_PASSWORD": "hunter2-tracking-pw",
}

URL_SIGNATURE = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
SIGNED_URL = (
    "https://b.s3.amazonaws.com/t/part-00000.parquet?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential=AKIASIGNEDURL0001%2F20260101%2Fus-east-1%2Fs3&X-Amz-Signature={URL_SIGNATURE}"
)


def _search(experiment: str, source: str, fingerprint: str, grid, log_model: bool = False):
    parent = start_search_run(
        experiment,
        {"space": "paper", "data_uri": "/d", "metric": "val_average_map"},
        data_uri="/d",
        manifest=F.tiny_manifest(fingerprint, source),
    )
    for i, (fusion, window, quality) in enumerate(grid):
        cfg = F.tiny_train_config(fusion, window_s=window)
        cb = TrialRun(parent, cfg.to_dict(), f"t{i}", log_model=log_model, log_plots=False)
        F.run_fake_trial(cb, cfg, quality=quality, seed=i)
    return parent


GRID = [
    ("video", 4.0, 0.5),
    ("audio", 4.0, 0.4),
    ("before_fc", 4.0, 0.7),
    ("early_512", 4.0, 0.45),
    ("video", 8.0, 0.55),
    ("audio", 8.0, 0.35),
    ("before_fc", 8.0, 0.75),
]


def test_report_tables_figures_and_provenance(store: str, tmp_path: Path) -> None:
    parent = _search("exp", "synthetic", "c" * 64, GRID)
    cfg = F.tiny_train_config("logit_mean")
    stopped = TrialRun(parent, cfg.to_dict(), "stopped", log_model=False)
    F.run_fake_trial(stopped, cfg, quality=0.6, stop_after=2)
    stopped.close("KILLED")
    finish_search_run(parent)

    out = tmp_path / "report"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    assert cli_main(["report", "--experiment", "exp", "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert not (out / "stale.txt").exists()  # replaced as a whole
    assert "SYNTHETIC data" in md and "not SoccerNet results" in md
    code = get_client().get_run(parent).data.tags["avspot.code_version"]
    assert f"| {code} |" in md  # the searches table names the code that ran
    for title in ("Table 1", "Table 2", "Table 3", "Table 4", "Table 5", "Figure 3"):
        assert title in md, title
    assert "Merging method 4 (before the FC layer) (`before_fc`)" in md
    assert "Merging method 2 (mean of logits) (`logit_mean`)" in md  # ASHA-stopped still counts
    assert "| T = 8 s | T = 4 s |" in md
    assert (out / "figures" / "learning_curves.png").is_file()
    assert (out / "figures" / "confusion.png").is_file()
    assert not list(tmp_path.glob(".report.*"))  # no temp dirs left behind
    client = get_client()
    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert "report/report.md" in logged


def test_report_keeps_datasets_apart(store: str, tmp_path: Path) -> None:
    _search("exp", "synthetic", "c" * 64, GRID[:2])
    _search("exp", "soccernet", "d" * 64, GRID[2:3])
    out = build_report("exp", tmp_path / "r", log_to_parent=False)
    md = (out / "report.md").read_text()
    assert "## Results on soccernet data `dddddddddddd`" in md
    assert "## Results on synthetic data `cccccccccccc`" in md
    synth = md.split("## Results on synthetic")[1]
    assert "before_fc" not in synth.split("## Results on")[0]


def test_report_unknown_experiment_writes_nothing(store: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        build_report("nope", tmp_path / "r")
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob(".r.*"))


def test_no_secret_reaches_mlflow(store: str, tmp_path: Path, monkeypatch) -> None:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    params = {
        "space": "smoke",
        "data_uri": f"s3://{SECRETS['AWS_ACCESS_KEY_ID']}:{SECRETS['AWS_SECRET_ACCESS_KEY']}@b/t",
        "aws_secret_access_key": SECRETS["AWS_SECRET_ACCESS_KEY"],
        "endpoint": f"http://u:{SECRETS['MLFLOW_TRACKING_PASSWORD']}@127.0.0.1:9000",
    }
    parent = start_search_run(
        "exp",
        params,
        {"note": SECRETS["MLFLOW_TRACKING_PASSWORD"]},
        data_uri=params["data_uri"],
        manifest=F.tiny_manifest("e" * 64),
    )
    cfg = F.tiny_train_config()
    trial_config = {**cfg.to_dict(), "password": SECRETS["MLFLOW_TRACKING_PASSWORD"]}
    cb = TrialRun(parent, trial_config, "t0")
    F.run_fake_trial(cb, cfg)
    failing = TrialRun(parent, cfg.to_dict(), "t1", log_model=False)
    failing.close(  # failure paths quote signed URLs and URIs with passwords (scrubbed too)
        "FAILED",
        RuntimeError(
            f"cannot reach s3 with {SECRETS['AWS_SECRET_ACCESS_KEY']}: GET {SIGNED_URL}; "
            f"tracking http://avspot:{SECRETS['MLFLOW_TRACKING_PASSWORD']}@mlflow:5000"
        ),
    )
    metrics = get_client().get_run(cb.run_id).data.metrics
    register_challenger("exp", cb.run_id, metrics, "e" * 64, parent)
    promote("exp")
    finish_search_run(parent)
    build_report("exp", tmp_path / "report")

    client = get_client()
    exp = client.get_experiment_by_name("exp")
    texts: list[str] = []
    for run in client.search_runs([exp.experiment_id]):
        texts += [f"{k}={v}" for k, v in run.data.params.items()]
        texts += [f"{k}={v}" for k, v in run.data.tags.items()]
        texts += list(run.data.metrics)
        texts += [d.dataset.source + d.dataset.name for d in run.inputs.dataset_inputs]
        with tempfile.TemporaryDirectory() as d:
            local = Path(client.download_artifacts(run.info.run_id, "", d))
            texts += _texts(local)
    for mv in client.search_model_versions(f"name = '{MODEL_NAME}'"):
        texts += [f"{k}={v}" for k, v in mv.tags.items()] + [mv.description or "", mv.source]
        with tempfile.TemporaryDirectory() as d:
            texts += _texts(_download(f"models:/{MODEL_NAME}/{mv.version}"))
    blob = "\n".join(texts)
    assert "report/report.md" in blob or "avspot report" in blob  # artifacts were scanned
    assert "MLmodel" in blob  # the model files were scanned
    for name, value in SECRETS.items():
        assert value not in blob, name
    assert URL_SIGNATURE not in blob and "AKIASIGNEDURL0001" not in blob


def _texts(root: Path) -> list[str]:
    out = []
    for p in root.rglob("*"):
        if p.is_file():
            out.append(str(p.relative_to(root)))
            try:
                out.append(p.read_text())
            except UnicodeDecodeError:
                out.append(p.read_bytes().decode("latin-1"))
    return out

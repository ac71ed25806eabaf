"""Against a real `mlflow server` on 127.0.0.1 (sqlite + proxied artifacts): tracking, artifacts,
registry aliases and model loading over HTTP; then `mlflow models serve` answers a spotting
request for a 2-minute half. Servers are started in their own process group and stopped by pid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from avspot.search.tracking.client import get_client
from avspot.search.tracking.registry import load_spotter, promote, register_challenger
from avspot.search.tracking.runs import finish_search_run, start_search_run
from avspot.search.tracking.trial import TrialRun
from tests.support import testing as F
from tests.support.s3server import free_port
from tests.support.testing import stop_group

pytestmark = pytest.mark.integration
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def _env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    # `mlflow models serve` execs `uvicorn` by name: the venv's bin must be on PATH
    env["PATH"] = os.pathsep.join([str(Path(MLFLOW).parent), env.get("PATH", "")])
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    cmd = F.mlflow_server_cmd(port, store, str(tmp / "artifacts"))
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(
        cmd, env=_env(tmp), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        F.wait_http(f"http://127.0.0.1:{port}/health", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(proc)
        log.close()


def test_tracking_registry_and_serving_over_http(server: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.chdir(tmp_path)
    parent = start_search_run(
        "http-exp", {"space": "smoke"}, data_uri="/t", manifest=F.tiny_manifest("9" * 64)
    )
    cfg = F.tiny_train_config()
    cb = TrialRun(parent, cfg.to_dict(), "trial_0", trial_id="t0")
    F.run_fake_trial(cb, cfg)
    client = get_client()
    run = client.get_run(cb.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied through the server
    assert "plots/learning_curves.png" in {
        a.path for a in client.list_artifacts(cb.run_id, "plots")
    }

    mv = register_challenger("http-exp", cb.run_id, run.data.metrics, "9" * 64, parent)
    assert promote("http-exp").promoted
    finish_search_run(parent)
    model, mcfg = load_spotter("models:/avspot-spotter@champion")
    assert mcfg.window_frames == cfg.model.window_frames

    from avspot.search.reporting.report import build_report

    build_report("http-exp", tmp_path / "report")
    assert "report/report.md" in {a.path for a in client.list_artifacts(parent, "report")}

    # mlflow models serve answers a spotting request (2-minute half, 240 frames at 2 fps)
    port = free_port()
    env = {**_env(tmp_path), "MLFLOW_TRACKING_URI": server}
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    serve = subprocess.Popen(
        [
            MLFLOW,
            "models",
            "serve",
            "-m",
            f"models:/avspot-spotter/{mv.version}",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        F.wait_http(f"http://127.0.0.1:{port}/ping", serve)
        half = F.tiny_halves(1, n_frames=240)[0]
        body = {
            "inputs": {"video": half.video.tolist(), "audio": half.audio.tolist()},
            "params": {"method": "nms"},
        }
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            preds = json.loads(r.read())["predictions"]
    finally:
        stop_group(serve)
        log.close()
    assert preds and set(preds[0]) == {"frame", "position_ms", "label", "confidence"}
    from avspot.avmodels.spotting import spot_half

    ref = spot_half(model, half, "nms")
    assert [(p["frame"], p["label"]) for p in preds] == [(s.frame, s.label) for s in ref]

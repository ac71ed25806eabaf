"""Faults injected into running searches (`avspot search` processes on a real local Ray):

- a trial's worker process killed mid-epoch: the trial resumes from its last checkpoint, every
  trial is accounted for, no (trial, epoch) is logged twice in MLflow;
- the MLflow server stopped for 30 s (plus its restart) mid-search: no trial fails, every run
  ends with all of its epochs' metrics;
- the S3 server stopped for 20 s while the table is read and checkpoints are written to S3;
- two searches at once on one sqlite store and one experiment name.

Each takes minutes: they run with AVSPOT_FAULTS=1 (RELIABILITY.md). Measurements are printed
(run with -s to see them).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from avspot.datasets.synth import synthesize

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]
EPOCH_METRICS = ("train_loss", "train_map", "val_loss", "val_map", "val_average_map", "lr")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = str(tmp_path_factory.mktemp("faults") / "table")
    synthesize(uri, games=4, seed=5, half_minutes=2)
    return uri


def _search_args(data: str, experiment: str, storage: str, *extra: str) -> list[str]:
    return [
        "search", "--data", data, "--space", "smoke", "--trials", "2", "--max-concurrent", "1",
        "--experiment", experiment, "--storage", storage, *extra,
    ]  # fmt: skip


def _tune_rows(exp: Path) -> list[dict]:
    rows = []
    for f in exp.glob("train_trial_*/result.json"):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def _check_runs(uri: str, experiment: str, epochs: dict[str, int] | None = None) -> dict:
    """Every run ended, one child run per trial, each trial's epoch metrics logged once per step
    for every epoch it ran (``epochs``: trial id -> epochs Tune saw, when known)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert runs and all(r.info.status in ("FINISHED", "KILLED") for r in runs), [
        (r.info.run_name, r.info.status) for r in runs
    ]
    parents = [r for r in runs if r.data.tags.get("avspot.role") == "search"]
    children = [r for r in runs if r.data.tags.get("avspot.role") == "trial"]
    assert parents and all(p.info.status == "FINISHED" for p in parents)
    trial_ids = [r.data.tags["avspot.trial_id"] for r in children]
    assert len(trial_ids) == len(set(trial_ids)) == 2 * len(parents), trial_ids
    report = {}
    for r in children:
        tid = r.data.tags["avspot.trial_id"]
        want = (epochs or {}).get(tid)
        for key in EPOCH_METRICS:
            steps = [m.step for m in client.get_metric_history(r.info.run_id, key)]
            assert len(steps) == len(set(steps)), (tid, key, steps)  # one value per step
            assert sorted(steps) == list(range(1, len(steps) + 1)), (tid, key, steps)
            if want is not None:
                assert len(steps) == want, (tid, key, steps, want)
        report[tid] = {
            "status": r.info.status,
            "epochs": len(client.get_metric_history(r.info.run_id, "val_loss")),
            "outage_s": r.data.tags.get("avspot.tracking_outage_s"),
            "buffered": r.data.tags.get("avspot.tracking_buffered_max"),
        }
    return report


def test_worker_killed_mid_epoch_resumes_from_its_checkpoint(kit, table, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = kit.quiet_env(MLFLOW_TRACKING_URI=store)
    storage = tmp_path / "rr"
    search = kit.start_avspot(
        _search_args(table, "kill", str(storage), "--max-epochs", "4"), env, tmp_path
    )
    killed: list[int] = []
    try:
        search.wait_for(" epoch 1:", timeout=400)
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for pid in kit.descendants(search.proc.pid):
                if "ray::ImplicitFunc" in kit.cmdline(pid):  # the trainable's worker
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
            time.sleep(0.2)
        t_kill = time.monotonic()
        assert killed, "no trial worker found"
        rc = search.finish(timeout=600)
    finally:
        kit.stop_group(search.proc)
    assert rc == 0, search.text[-5000:]
    assert "(error)" not in search.text and "FAILED" not in search.text, search.text[-3000:]
    rows = _tune_rows(storage / "kill")
    restored = [r for r in rows if r["iterations_since_restore"] < r["training_iteration"]]
    assert restored, "no trial resumed from a checkpoint"
    seen = [(r["trial_id"], r["training_iteration"]) for r in rows]
    assert len(seen) == len(set(seen)), seen  # Tune saw each epoch once too
    epochs = {}
    for r in rows:
        epochs[r["trial_id"]] = max(epochs.get(r["trial_id"], 0), r["training_iteration"])
    report = _check_runs(store, "kill", epochs)
    print(
        f"\nkilled worker {killed[0]}; trial {restored[0]['trial_id']} resumed at epoch "
        f"{restored[0]['training_iteration']}; search finished {time.monotonic() - t_kill:.0f}s "
        f"after the kill; runs {report}"
    )


def test_mlflow_server_down_30s_mid_search(kit, table, tmp_path: Path) -> None:
    server = kit.MlflowServer(tmp_path / "mlflow").start()
    env = kit.quiet_env(MLFLOW_TRACKING_URI=server.uri)
    search = kit.start_avspot(
        _search_args(table, "outage", str(tmp_path / "rr"), "--max-epochs", "6"), env, tmp_path
    )
    try:
        search.wait_for(" epoch 1:", timeout=400)
        t_down = time.monotonic()
        server.stop()
        time.sleep(30)
        server.start()
        down_s = time.monotonic() - t_down
        rc = search.finish(timeout=900)
        assert rc == 0, search.text[-5000:]
        assert "(error)" not in search.text and "FAILED" not in search.text
        report = _check_runs(server.uri, "outage")
    finally:
        kit.stop_group(search.proc)
        server.stop()
    assert any(r["outage_s"] for r in report.values()), report  # a trial waited through it
    print(f"\nMLflow down {down_s:.0f}s (30 s stopped + restart); runs {report}")


def test_s3_down_20s_while_reading_and_checkpointing(kit, tmp_path: Path, monkeypatch) -> None:
    from avspot.datasets.storage import resolve
    from tests.support.s3server import S3Server

    s3 = S3Server(tmp_path / "s3", bucket="avspot").start()
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    try:
        data = "s3://avspot/table"
        synthesize(data, games=4, seed=5, half_minutes=2, endpoint=s3.endpoint)
        store = f"sqlite:///{tmp_path / 'mlflow.db'}"
        env = kit.quiet_env(MLFLOW_TRACKING_URI=store, **s3.env)
        args = _search_args(data, "s3out", "s3://avspot/rr", "--max-epochs", "5")
        search = kit.start_avspot([*args, "--endpoint-url", s3.endpoint], env, tmp_path)
        try:
            search.wait_for(" epoch 1:", timeout=400)
            t_down = time.monotonic()
            s3.stop()
            time.sleep(20)
            s3.start()
            down_s = time.monotonic() - t_down
            rc = search.finish(timeout=900)
        finally:
            kit.stop_group(search.proc)
        assert rc == 0, search.text[-5000:]
        assert "(error)" not in search.text and "FAILED" not in search.text
        report = _check_runs(store, "s3out")
        fs, root = resolve("s3://avspot/rr/s3out", endpoint=s3.endpoint)
        import pyarrow.fs as pafs

        files = fs.get_file_info(pafs.FileSelector(root, recursive=True))
        ckpts = {f.path.split("/checkpoint_")[0] for f in files if "/checkpoint_" in f.path}
        assert len(ckpts) == 2, sorted(f.path for f in files)[:20]  # both trials checkpointed
    finally:
        s3.stop()
    slowest = max(int(t) for t in re.findall(r" epoch \d+: .* (\d+)s$", search.text, re.M))
    print(f"\nS3 down {down_s:.0f}s (20 s stopped + restart); slowest epoch {slowest}s; {report}")


def test_two_searches_at_once_on_one_sqlite_store(kit, table, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"  # new: both create its schema at once
    env = kit.quiet_env(MLFLOW_TRACKING_URI=store)
    t0 = time.monotonic()
    searches = [
        kit.start_avspot(
            _search_args(table, "shared", str(tmp_path / f"rr{i}"), "--max-epochs", "1"),
            env,
            tmp_path,
        )
        for i in (1, 2)
    ]
    try:
        rcs = [s.finish(timeout=900) for s in searches]
    finally:
        for s in searches:
            kit.stop_group(s.proc)
    for s, rc in zip(searches, rcs, strict=True):
        assert rc == 0, s.text[-5000:]
        assert "database is locked" not in s.text.lower(), s.text[-5000:]
    report = _check_runs(store, "shared")
    assert len(report) == 4
    print(f"\ntwo searches at once: both exit 0 in {time.monotonic() - t0:.0f}s; runs {report}")

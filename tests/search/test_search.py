"""`avspot search` on a real local Ray, with the table on the SeaweedFS S3 fixture and MLflow on sqlite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.synth import synthesize
from avspot.search.cli.main import main
from avspot.search.tuning.tuner import SearchOptions, run_search

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ray_local(s3):
    """One small real Ray per module, started with the S3 keys in its workers' environment."""
    import ray

    saved = {k: os.environ.get(k) for k in s3.env}
    os.environ.update(s3.env)
    ray.init(
        address="local", num_cpus=2, object_store_memory=300 * 1024 * 1024, include_dashboard=False
    )
    yield
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def s3_table(s3, ray_local):
    uri = s3.uri("search-table")
    synthesize(uri, games=5, seed=3, half_minutes=3, endpoint=s3.endpoint)
    return uri


def test_smoke_search_streams_from_s3_and_tracks_every_trial(tmp_path, s3, s3_table, monkeypatch):
    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    lines: list[str] = []
    result = run_search(
        SearchOptions(
            data=s3_table,
            space="smoke",
            trials=3,
            max_epochs=2,
            experiment="it-smoke",
            storage=str(tmp_path / "ray_results"),
            endpoint=s3.endpoint,
        ),
        log=lines.append,
    )
    text = "\n".join(lines)
    assert result.trials == 3
    assert result.best is not None and 0.0 <= result.best["best"] <= 1.0
    assert text.count("trial ") >= 3 and "val_average_map" in text, text
    assert "rank" in text  # the leaderboard
    assert 3 <= result.trial_epochs <= 6

    client = MlflowClient(store)
    exp = client.get_experiment_by_name("it-smoke")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.parent_run_id]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.params["data_uri"] == s3_table
    assert len(children) == 3
    assert all(r.info.status in ("FINISHED", "KILLED") for r in children)
    assert all("val_average_map" in r.data.metrics for r in children)
    # --max-epochs 2 is every trial's max_epochs (resolved once, over the space's default of 3):
    # trials end themselves at epoch 2 instead of being cut there by ASHA, so models are logged
    assert sum(r.info.status == "FINISHED" for r in children) >= 1
    mv = client.get_model_version_by_alias("avspot-spotter", "challenger")
    assert str(mv.version) == result.model_version


def test_search_refuses_bad_input(tmp_path, s3_table, s3, capsys):
    args = ["search", "--data", s3_table, "--endpoint-url", s3.endpoint]
    with pytest.raises(SystemExit) as exit_info:  # argparse's choices: exit 2, valid ones named
        main([*args, "--space", "nope"])
    assert exit_info.value.code == 2
    assert "choose from 'fusion', 'paper', 'smoke'" in capsys.readouterr().err
    assert main([*args, "--space", "smoke", "--set", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    storage = str(tmp_path / "rr")
    assert main([*args, "--space", "smoke", "--resume", "--storage", storage]) == 2
    assert "no search to resume" in capsys.readouterr().err


def test_empty_valid_split_is_refused(tmp_path):
    from avspot.datasets.synth import synth_games
    from avspot.datasets.table import write_table

    halves = [h for h in synth_games(3, seed=1, half_minutes=1) if h.split != "valid"]
    uri = str(tmp_path / "novalid")
    write_table(halves, uri, source="synthetic")
    with pytest.raises(DataError, match="valid"):
        run_search(SearchOptions(data=uri, space="smoke", tracking=False))


def _trial_dirs(exp: Path) -> list[Path]:
    return sorted(p for p in exp.glob("train_trial_*") if p.is_dir())


def _results(exp: Path) -> list[dict]:
    rows = []
    for d in _trial_dirs(exp):
        f = d / "result.json"
        if f.exists():
            rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def test_killed_search_resumes_without_rerunning_trials(tmp_path, ray_local):
    table = str(tmp_path / "table")
    synthesize(table, games=4, seed=5, half_minutes=2)
    storage = tmp_path / "rr"
    # Relative paths, as a user types them: trials run in their own directories.
    cmd = [
        sys.executable, "-m", "avspot", "search", "--data", "table", "--space", "smoke",
        "--trials", "4", "--max-concurrent", "1", "--max-epochs", "2",
        "--experiment", "killme", "--storage", "rr",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=tmp_path)  # fmt: skip
    exp = storage / "killme"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and not _results(exp):
            time.sleep(1.0)
        assert _results(exp), "no trial reported within 4 minutes"
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the driver dies without any cleanup
        proc.wait(timeout=30)
    first = {r["trial_id"] for r in _results(exp)}
    assert first and len(_trial_dirs(exp)) < 4 or len(first) < 4

    out = subprocess.run(
        [*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "resuming" in out.stdout
    dirs = _trial_dirs(exp)
    ids = [d.name.split("_")[2] for d in dirs]
    assert len(dirs) == 4 and len(set(ids)) == 4, [d.name for d in dirs]
    # A trial that had finished before the kill did not run again: its iterations are unique.
    rows = _results(exp)
    seen = [(r["trial_id"], r["training_iteration"]) for r in rows]
    assert len(seen) == len(set(seen)), seen


def test_two_trials_on_one_machine_read_the_split_from_s3_once(s3, s3_table, ray_local, tmp_path):
    """Two concurrent trial-like Ray tasks build their feeds from the S3 table: one reads the
    split from S3 into the machine's node cache, the other waits and reads none; both hand out
    every chunk window of the split, and forced streaming holds the same windows."""
    import ray

    from avspot.datasets.manifest import read_manifest
    from avspot.datasets.table import iter_halves
    from avspot.datasets.windows import chunk_labels

    w = 20
    expected = sum(
        len(chunk_labels(h, w)[0]) for h in iter_halves(s3_table, "train", endpoint=s3.endpoint)
    )
    manifest = read_manifest(s3_table, s3.endpoint)
    split = sum(f["bytes"] for f in manifest.files if f["split"] == "train")
    table, endpoint = s3_table, s3.endpoint  # plain values: the task must not capture fixtures
    cache = str(tmp_path / "node-cache")  # this machine's cache, empty at the start

    @ray.remote(num_cpus=0.5)
    def trial(budget: str | None):
        import os

        from avspot.search.tuning.feed import train_feed

        saved = dict(os.environ)  # the worker process is reused: leave its environment as found
        os.environ["AVSPOT_CACHE_DIR"] = cache
        if budget is not None:
            os.environ["AVSPOT_FEED_MEMORY_BYTES"] = budget
        try:
            spec = {"window_frames": w, "batch_size": 16, "seed": 0, "endpoint": endpoint}
            feed = train_feed(table, manifest, **spec)
            feed.start(1)
            choice = feed.wait()
            n = [sum(len(b["targets"]) for b in feed(epoch)) for epoch in (1, 2)]
            feed.close()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return choice.kind, choice.filled, choice.table_bytes_read, n

    results = ray.get([trial.remote(None), trial.remote(None)])
    assert sorted(r[1] for r in results) == [False, True]  # one filled the cache
    assert sum(r[2] for r in results) == split  # the split came from S3 once
    assert all(r[0] == "memory" and r[3] == [expected, expected] for r in results)
    kind, filled, read, n = ray.get(trial.remote("1"))  # forced streaming, cache already full
    assert (kind, filled, read, n) == ("stream", False, 0, [expected, expected])


def test_a_node_running_another_build_is_refused(ray_local):
    from avspot.search.tracking.wheel import build_id
    from avspot.search.tuning.resources import check_builds

    check_builds(build_id())  # every node (here: one) runs the driver's code
    with pytest.raises(DataError, match=r"node .* runs avspot build .*make cluster-dist"):
        check_builds("0" * 64)

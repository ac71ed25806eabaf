"""Two promotions at once: exactly one champion results, and the guard holds (only a better
model on the same data fingerprint and metric takes @champion), in threads and in processes."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from pathlib import Path

import pytest

from avspot.search.tracking import registry
from avspot.search.tracking.client import get_client
from avspot.search.tracking.names import MODEL_NAME, PROMOTE_LOCK_SUFFIX
from avspot.search.tracking.registry import promote, register_challenger
from avspot.search.tracking.runs import finish_search_run, start_search_run
from avspot.search.tracking.trial import TrialRun
from tests.support import testing as F


def _challenger(experiment: str, quality: float, fingerprint: str = "a" * 64) -> str:
    """A search in ``experiment`` whose best trial is registered as @challenger."""
    parent = start_search_run(experiment, {"space": "smoke"}, data_uri="/d",
                              manifest=F.tiny_manifest(fingerprint))  # fmt: skip
    cfg = F.tiny_train_config()
    cb = TrialRun(parent, cfg.to_dict(), "t0", log_plots=False)
    F.run_fake_trial(cb, cfg, quality=quality)
    metrics = get_client().get_run(cb.run_id).data.metrics
    mv = register_challenger(experiment, cb.run_id, metrics, fingerprint, parent)
    finish_search_run(parent)
    return str(mv.version)


@pytest.fixture(scope="module")
def challengers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A store with three experiments' challengers: worse, better, and one on other data."""
    import os

    tmp = tmp_path_factory.mktemp("promote")
    store = F.sqlite_store(tmp)
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = store
    try:
        versions = {
            "worse": _challenger("worse", 0.3),
            "better": _challenger("better", 0.9),
            "other-data": _challenger("other-data", 0.99, fingerprint="b" * 64),
        }
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return tmp / "mlflow.db", versions


@pytest.fixture()
def store(challengers, tmp_path: Path, monkeypatch) -> tuple[str, dict[str, str]]:
    """A fresh copy of the module's store (no champion yet) for each test."""
    import shutil

    db, versions = challengers
    shutil.copyfile(db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri, versions


def _champion() -> str:
    return str(get_client().get_model_version_by_alias(MODEL_NAME, "champion").version)


def _no_lock_left() -> None:
    names = {m.name for m in get_client().search_registered_models()}
    assert not [n for n in names if n.endswith(PROMOTE_LOCK_SUFFIX)], names


def test_concurrent_promotions_are_serialized(store, monkeypatch) -> None:
    """Both promotions reach the comparison at once without the lock (a barrier makes sure of
    that); with it, one waits for the other, and the better model ends as champion."""
    uri, versions = store
    inside = {"now": 0, "max": 0}
    barrier = threading.Barrier(2)
    real = registry._alias_version

    def slow_read(client, model_name, alias):
        inside["now"] += 1
        inside["max"] = max(inside["max"], inside["now"])
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=2)  # with the lock the other never arrives: times out
        try:
            return real(client, model_name, alias)
        finally:
            inside["now"] -= 1

    monkeypatch.setattr(registry, "_alias_version", slow_read)
    results: dict[str, registry.PromotionResult] = {}

    def run(experiment: str) -> None:
        results[experiment] = promote(experiment, uri=uri)

    threads = [threading.Thread(target=run, args=(e,)) for e in ("worse", "better")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert inside["max"] == 1  # never two comparisons at once
    assert _champion() == versions["better"]
    assert results["better"].promoted
    _no_lock_left()


@pytest.mark.integration
def test_two_promote_processes_at_once(store, kit, tmp_path: Path) -> None:
    """`avspot promote` twice at once, in both orders: one champion, the better one; the model
    measured on other data is refused against it."""
    uri, versions = store
    env = kit.quiet_env(MLFLOW_TRACKING_URI=uri)
    for order in (("worse", "better"), ("better", "worse")):
        procs = [
            subprocess.Popen([*kit.AVSPOT, "promote", "--experiment", e], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for e in order
        ]  # fmt: skip
        outs = {e: p.communicate(timeout=180) for e, p in zip(order, procs, strict=True)}
        codes = {e: p.returncode for e, p in zip(order, procs, strict=True)}
        assert codes["better"] == 0, outs
        assert codes["worse"] in (0, 1), outs  # promoted before "better", or refused after
        assert _champion() == versions["better"], outs
        _no_lock_left()
    other = subprocess.run([*kit.AVSPOT, "promote", "--experiment", "other-data"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert other.returncode == 1 and "not comparable" in other.stderr
    assert "another promote" not in other.stderr  # refused on its merits, no lock waited for
    assert _champion() == versions["better"]
    _no_lock_left()


def test_a_stale_lock_is_taken_over(store, fake_clock) -> None:
    """A promotion lock left by a process that died is removed once it is older than the
    stale limit; a fresh one held by someone else makes promote wait, then fail clearly."""
    from avspot.datasets.errors import DataError

    uri, versions = store
    client = get_client(uri)
    lock = f"{MODEL_NAME}.champion{PROMOTE_LOCK_SUFFIX}"
    client.create_registered_model(lock)
    with (
        pytest.raises(DataError, match="another promote"),
        registry.promotion_lock(client, MODEL_NAME, "champion", wait_s=1.0),
    ):
        pass
    # it waited, polling, until the deadline on the clock the lock reads, and then gave up
    assert fake_clock.elapsed > 1.0 and len(fake_clock.sleeps) >= 3
    assert all(0.1 <= s <= 0.4 for s in fake_clock.sleeps)
    waits = len(fake_clock.sleeps)
    with registry.promotion_lock(client, MODEL_NAME, "champion", wait_s=5.0, stale_s=0.0):
        pass
    assert len(fake_clock.sleeps) == waits  # a stale lock is taken over without waiting
    _no_lock_left()
    assert promote("better", uri=uri).promoted

"""Tracking-server outages: metrics and params wait in a bounded outbox, are sent oldest first
when the server answers again, and a trial fails with one clear line only after a bounded wait;
a server that is down when a command starts still fails the health check within seconds."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from avspot.datasets.errors import DataError
from avspot.search.tracking.client import (
    TrackingUnavailable,
    flush_logs,
    get_client,
    log_metrics,
    log_params,
    outbox,
    retry,
)
from avspot.search.tracking.names import TAG_TRACKING_BUFFERED, TAG_TRACKING_OUTAGE_S

DOWN = (
    "API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed with exception "
    "HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded with url: "
    "/api/2.0/mlflow/runs/log-batch (Caused by NewConnectionError(... [Errno 111] Connection "
    "refused))"
)


class FakeServer:
    """An MlflowClient stand-in whose server can be taken down; records what arrives."""

    tracking_uri = "http://user:hunter2@127.0.0.1:5000"

    def __init__(self) -> None:
        self.down = False
        self.batches: list[tuple[str, list, list]] = []
        self.tags: dict[tuple[str, str], str] = {}
        self.calls = 0

    def log_batch(self, run_id: str, metrics=(), params=(), synchronous=True) -> None:
        self.calls += 1
        if self.down:
            from mlflow.exceptions import MlflowException

            raise MlflowException(DOWN)
        self.batches.append((run_id, list(metrics), list(params)))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.tags[(run_id, key)] = value

    def steps(self, key: str) -> list[int]:
        return [m.step for _, ms, _ in self.batches for m in ms if m.key == key]


def test_entries_wait_in_order_while_the_server_is_down(fake_clock) -> None:
    server = FakeServer()
    log_params(server, "r1", {"lr": 0.1})
    server.down = True
    for epoch in range(1, 6):
        log_metrics(server, "r1", {"val_loss": 1 / epoch, "val_map": 0.1 * epoch}, step=epoch)
    # the trainer is not held up by each call: no wait, and one try until the backoff allows
    assert fake_clock.sleeps == [] and server.calls == 2
    box = outbox(server)
    assert box.entries == 10 and server.steps("val_loss") == []
    server.down = False
    assert flush_logs(server)
    assert fake_clock.sleeps == [1.0]  # the flush waited for the backoff's next try
    assert server.steps("val_loss") == [1, 2, 3, 4, 5] == server.steps("val_map")
    assert box.entries == 0
    assert float(server.tags[("r1", TAG_TRACKING_OUTAGE_S)]) == 1.0
    assert int(server.tags[("r1", TAG_TRACKING_BUFFERED)]) >= 10


def test_flush_waits_for_the_server_with_backoff(fake_clock) -> None:
    server = FakeServer()
    server.down = True
    log_metrics(server, "r1", {"train_loss": 0.5}, step=1)
    fake_clock.at(3.0, lambda: setattr(server, "down", False))  # back after 3 s
    assert flush_logs(server, wait=True)
    assert server.steps("train_loss") == [1]
    # backoff, not a busy loop: 1 s, then 2 s, then sent at the first try after the outage
    assert fake_clock.sleeps == [1.0, 2.0] and server.calls == 3


def test_a_long_outage_fails_the_trial_with_one_line(fake_clock, monkeypatch) -> None:
    monkeypatch.setenv("AVSPOT_MLFLOW_OUTAGE_S", "2")
    server = FakeServer()
    server.down = True
    log_metrics(server, "r1", {"train_loss": 0.5}, step=1)
    with pytest.raises(TrackingUnavailable) as info:
        flush_logs(server, wait=True)
    msg = str(info.value)
    assert "unreachable for 3s" in msg and "AVSPOT_MLFLOW_OUTAGE_S=2" in msg and "\n" not in msg
    assert "hunter2" not in msg  # the URI's password is scrubbed
    # bounded: the first try after the budget is the last one (tries at 0, 1 and 3 s)
    assert fake_clock.sleeps == [1.0, 2.0] and server.calls == 3


def test_the_outbox_is_bounded(monkeypatch) -> None:
    monkeypatch.setenv("AVSPOT_MLFLOW_BUFFER_MAX", "10")
    server = FakeServer()
    server.down = True
    log_metrics(server, "r1", {f"m{i}": i for i in range(8)}, step=1)
    with pytest.raises(TrackingUnavailable, match=r"outbox full .*\$AVSPOT_MLFLOW_BUFFER_MAX=10"):
        log_metrics(server, "r1", {f"m{i}": i for i in range(8)}, step=2)
    assert outbox(server).entries == 8  # what was accepted is kept, in order
    server.down = False
    assert flush_logs(server) and server.steps("m0") == [1]


def test_a_refused_batch_is_reported_and_does_not_block_the_others() -> None:
    from mlflow.exceptions import MlflowException

    server = FakeServer()
    server.down = True
    log_metrics(server, "r1", {"a": 1.0}, step=1)
    log_metrics(server, "r2", {"b": 2.0}, step=1)
    server.down = False
    real = server.log_batch

    def refuse_r1(run_id: str, **kw) -> None:
        if run_id == "r1":
            raise MlflowException("Run 'r1' not found")
        real(run_id, **kw)

    server.log_batch = refuse_r1  # type: ignore[method-assign]
    with pytest.raises(MlflowException, match="not found"):
        flush_logs(server)
    assert flush_logs(server) and server.steps("b") == [1]


def test_retry_waits_for_an_unreachable_server_and_not_for_other_errors(
    fake_clock, monkeypatch
) -> None:
    from mlflow.exceptions import MlflowException

    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise MlflowException(DOWN)
        return "ok"

    assert retry(flaky) == "ok" and len(calls) == 3
    assert fake_clock.sleeps == [1.0, 2.0]  # backoff: 1 s, doubling
    with pytest.raises(MlflowException, match="INVALID"):
        retry(lambda: (_ for _ in ()).throw(MlflowException("INVALID_PARAMETER_VALUE")))
    assert fake_clock.sleeps == [1.0, 2.0]  # not waited for
    monkeypatch.setenv("AVSPOT_MLFLOW_OUTAGE_S", "1")
    with pytest.raises(TrackingUnavailable, match="unreachable for 1s"):
        retry(lambda: (_ for _ in ()).throw(MlflowException(DOWN)))
    assert fake_clock.sleeps == [1.0, 2.0, 1.0]


def test_retry_waits_out_a_locked_sqlite_file_a_bounded_number_of_times(fake_clock) -> None:
    from mlflow.exceptions import MlflowException

    calls = []

    def locked() -> None:
        calls.append(1)
        raise MlflowException("(sqlite3.OperationalError) database is locked")

    with pytest.raises(MlflowException, match="locked"):
        retry(locked, attempts=4)
    assert len(calls) == 4 and fake_clock.sleeps == pytest.approx([0.2, 0.4, 0.8])


def test_down_from_the_start_fails_within_seconds(fake_clock, monkeypatch) -> None:
    """One probe of /health with its short timeout, no retry, no wait."""
    import urllib.request

    from avspot.search.tracking import client
    from tests.support.s3server import free_port

    probes: list[tuple[str, float]] = []
    real = urllib.request.urlopen

    def probe(url, timeout):  # noqa: ANN001, ANN202
        probes.append((url, timeout))
        return real(url, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", probe)
    port = free_port()
    with pytest.raises(DataError, match="is unreachable"):
        get_client(f"http://127.0.0.1:{port}")
    assert probes == [(f"http://127.0.0.1:{port}/health", client._HEALTH_TIMEOUT_S)]
    assert client._HEALTH_TIMEOUT_S <= 5 and fake_clock.sleeps == []


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.faults
def test_a_real_server_stopped_for_30s_loses_nothing(kit, tmp_path: Path, monkeypatch) -> None:
    """Against `mlflow server`: a trial's epochs logged while the server is down for 30 s (plus
    its restart) all arrive, once per step; the trial waited at its flush, not before."""
    from avspot.search.tracking.runs import start_search_run
    from avspot.search.tracking.trial import TrialRun
    from tests.support import testing as F
    from tests.support.clock import RecordingClock, install

    clock = RecordingClock()  # real time, each wait recorded
    install(monkeypatch, clock)

    server = kit.MlflowServer(tmp_path / "mlflow").start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
        parent = start_search_run("outage", {"space": "smoke"})
        cfg = F.tiny_train_config()
        cb = TrialRun(parent, cfg.to_dict(), "t0", trial_id="t0", log_model=False)
        history = F.fake_history(6)
        for row in history[:2]:
            cb.log_epoch(int(row["epoch"]), dict(row))
        server.stop()
        t_down = time.monotonic()
        waits_before = len(clock.sleeps)
        for row in history[2:]:  # buffered: the trainer keeps going
            log_metrics(cb.client, cb.run_id, row, step=int(row["epoch"]))
        assert clock.sleeps[waits_before:] == []  # nothing waited before the flush
        buffered = outbox(cb.client).entries
        assert buffered > 0
        waited: dict[str, float] = {}

        def flush() -> None:
            t0 = time.monotonic()
            flush_logs(cb.client)
            waited["s"] = time.monotonic() - t0

        flusher = threading.Thread(target=flush)
        flusher.start()
        time.sleep(max(0.0, 30 - (time.monotonic() - t_down)))
        server.start()
        flusher.join(timeout=300)
        assert not flusher.is_alive()
        assert clock.sleeps[waits_before:], "the flush did not wait for the server"
        down_s = time.monotonic() - t_down
        cb.close("FINISHED")
        client = get_client()
        for key in ("train_loss", "val_map", "val_average_map"):
            steps = [m.step for m in client.get_metric_history(cb.run_id, key)]
            assert sorted(steps) == [1, 2, 3, 4, 5, 6], (key, steps)
        run = client.get_run(cb.run_id)
        assert run.info.status == "FINISHED"
        print(
            f"\nMLflow outage {down_s:.0f}s (30 s stopped + restart); flush waited "
            f"{waited['s']:.0f}s; {buffered} metrics buffered; outage tag "
            f"{run.data.tags.get(TAG_TRACKING_OUTAGE_S)}s"
        )
    finally:
        server.stop()

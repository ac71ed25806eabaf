"""S3 outages: a store that is unreachable from the start fails within seconds; one that drops
while a table is read or a checkpoint written is retried with backoff and the work completes;
a longer outage fails clearly (DataError naming the URI) after a bounded time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.storage import call_with_backoff, is_transient, patient
from avspot.datasets.synth import synthesize
from avspot.datasets.table import iter_halves, read_halves
from tests.support.s3server import S3Server

REFUSED = OSError(
    "When reading information for key 'k' in bucket 'b': AWS Error NETWORK_CONNECTION during "
    "HeadObject operation: curlCode: 7, Could not connect to server"
)


def test_transient_errors_are_told_apart() -> None:
    assert is_transient(REFUSED)
    assert not is_transient(FileNotFoundError("no such key"))
    assert not is_transient(OSError("AWS Error ACCESS_DENIED during GetObject operation"))
    assert not is_transient(ValueError("Connection refused"))  # not a storage error


def test_backoff_retries_until_the_store_answers(fake_clock) -> None:
    calls = []

    def flaky() -> str:
        calls.append(fake_clock.elapsed)
        if len(calls) < 4:
            raise REFUSED
        return "ok"

    assert call_with_backoff(flaky, "s3://b/t", "reading", budget_s=30) == "ok"
    assert calls == [0.0, 0.5, 1.5, 3.5]  # exponential backoff: 0.5 s, doubling
    assert fake_clock.sleeps == [0.5, 1.0, 2.0]


def test_backoff_is_bounded_and_names_the_uri(fake_clock, monkeypatch) -> None:
    monkeypatch.setenv("AVSPOT_STORAGE_OUTAGE_S", "1.5")
    calls = []

    def down() -> None:
        calls.append(fake_clock.elapsed)
        raise REFUSED

    with pytest.raises(DataError, match=r"s3://b/t: reading failed: storage unreachable for 2s"):
        call_with_backoff(down, "s3://b/t", "reading")
    # the last wait is cut to the budget; the attempt at the deadline is the last one
    assert fake_clock.sleeps == [0.5, 1.0] and calls == [0.0, 0.5, 1.5]


def test_backoff_waits_at_most_8s_apart(fake_clock) -> None:
    with pytest.raises(DataError, match=r"unreachable for 60s \(\$AVSPOT_STORAGE_OUTAGE_S=60\)"):
        call_with_backoff(lambda: (_ for _ in ()).throw(REFUSED), "s3://b/t", "x", budget_s=60)
    assert fake_clock.sleeps == [0.5, 1, 2, 4, 8, 8, 8, 8, 8, 8, 4.5]
    assert fake_clock.elapsed == 60


def test_other_errors_are_not_retried(fake_clock) -> None:
    calls = []

    def denied() -> None:
        calls.append(1)
        raise OSError("AWS Error ACCESS_DENIED")

    with pytest.raises(DataError, match="ACCESS_DENIED"):
        call_with_backoff(denied, "s3://b/t", "x")
    assert calls == [1] and fake_clock.sleeps == []


@pytest.fixture()
def own_s3(tmp_path: Path, monkeypatch):
    """A SeaweedFS of this test's own, which the test may stop and restart (same ports, same
    data directory), with its keys in the environment."""
    server = S3Server(tmp_path / "s3", bucket="avspot").start()
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)
    yield server
    server.stop()


@pytest.mark.integration
def test_unreachable_from_the_start_fails_within_seconds(own_s3, fake_clock, monkeypatch) -> None:
    """Not waited for: no backoff at all (the S3 client's own short timeouts and 2 attempts,
    ``storage.resolve``, bound the one try), although a drop later would be waited for."""
    uri = "s3://avspot/start"
    synthesize(uri, games=2, seed=1, half_minutes=0.5)
    own_s3.stop()
    monkeypatch.setenv("AVSPOT_STORAGE_OUTAGE_S", "120")
    with pytest.raises(DataError, match="s3://avspot/start: reading the manifest failed") as e:
        next(iter_halves(uri))
    assert fake_clock.sleeps == [] and "unreachable for" not in str(e.value)
    own_s3.start()


@pytest.mark.integration
def test_a_long_outage_fails_clearly_after_a_bounded_time(own_s3, fake_clock, monkeypatch):
    uri = "s3://avspot/long"
    synthesize(uri, games=2, seed=1, half_minutes=0.5)
    monkeypatch.setenv("AVSPOT_STORAGE_OUTAGE_S", "3")
    halves = iter_halves(uri)
    next(halves)
    own_s3.stop()
    with pytest.raises(DataError, match=r"s3://avspot/long: reading .*unreachable for 3s"):
        list(halves)
    # retried with backoff until the budget, on the clock the retries read, then given up
    assert fake_clock.sleeps == [0.5, 1.0, 1.5] and fake_clock.elapsed == 3.0
    own_s3.start()


@pytest.mark.integration
def test_checkpoint_writes_wait_through_an_outage(own_s3, fake_clock, tmp_path: Path) -> None:
    """Tune's storage filesystem (`storage.patient`): a write and a copy during a 6 s outage
    (6 s on the clock the retries read: S3 comes back during the wait that passes 6 s)
    complete when S3 is back; a missing file is still FileNotFoundError."""
    import pyarrow.fs as pafs

    store, root = patient("s3://avspot/ck")
    own_s3.stop()
    fake_clock.at(6.0, own_s3.start)
    with store.open_output_stream(f"{root}/checkpoint_000001/trainer.pt") as f:
        f.write(b"x" * 100_000)
    # the upload waited with backoff through the outage and succeeded at the first try after it
    assert fake_clock.sleeps == [0.5, 1.0, 2.0, 4.0], fake_clock.sleeps
    info = store.get_file_info(f"{root}/checkpoint_000001/trainer.pt")
    assert info.size == 100_000
    with pytest.raises(FileNotFoundError):
        store.open_input_stream(f"{root}/nope")
    (tmp_path / "dl").mkdir()
    pafs.copy_files(f"{root}/checkpoint_000001", str(tmp_path / "dl"), source_filesystem=store)
    assert (tmp_path / "dl" / "trainer.pt").stat().st_size == 100_000  # Tune's restore path


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.faults
def test_reads_resume_after_a_20s_outage(own_s3, tmp_path: Path) -> None:
    """`iter_halves` over S3 while S3 is down for 20 s: every half arrives, identical to a read
    without an outage, in the same order."""
    uri = "s3://avspot/outage"
    synthesize(uri, games=4, seed=3, half_minutes=0.5)
    expected = read_halves(uri)
    got: list = []
    errors: list[BaseException] = []
    halves = iter_halves(uri)
    got.append(next(halves))

    def read() -> None:
        try:
            got.extend(halves)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    own_s3.stop()
    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(20)
    own_s3.start()
    reader.join(timeout=180)
    assert not errors, errors
    assert [(h.game, h.half) for h in got] == [(h.game, h.half) for h in expected]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.video, b.video)

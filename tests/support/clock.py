"""Clocks for tests of bounded waits (outage retries, backoff, lock waits), put in the place of
``avspot.datasets.storage.CLOCK``: the tests assert what was waited, never how long a call took.

``FakeClock``: time moves only when the code under test sleeps; each wait is recorded and
returns at once, and ``at(t, fn)`` runs ``fn`` (a server coming back, say) when the clock
reaches ``t`` seconds. ``RecordingClock``: the real time and real sleeps, each wait recorded
(for tests against a real server that is really down for a while)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from avspot.datasets import storage


class FakeClock:
    """A monotonic clock that moves only when someone sleeps on it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.start = self.now = start
        self.sleeps: list[float] = []
        self._due: list[tuple[float, Callable[[], object]]] = []
        self._lock = threading.RLock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(0.0, seconds)
            due = [fn for t, fn in self._due if t <= self.now]
            self._due = [(t, fn) for t, fn in self._due if t > self.now]
        for fn in due:
            fn()

    def at(self, seconds: float, fn: Callable[[], object]) -> None:
        """Run ``fn`` when the clock has moved ``seconds`` past its start."""
        with self._lock:
            self._due.append((self.start + seconds, fn))

    @property
    def elapsed(self) -> float:
        """Seconds this clock has moved (the sum of the waits)."""
        return self.now - self.start


class RecordingClock:
    """The real clock, with every wait recorded (``sleeps``) before it is slept."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)


def install(monkeypatch: pytest.MonkeyPatch, clock: FakeClock | RecordingClock) -> None:
    """Make ``clock`` the one every bounded wait in avspot reads, until the test ends."""
    monkeypatch.setattr(storage.CLOCK, "monotonic", clock.monotonic)
    monkeypatch.setattr(storage.CLOCK, "sleep", clock.sleep)


@contextlib.contextmanager
def installed(clock: FakeClock | RecordingClock) -> Iterator[None]:
    """``install`` without pytest (scripts that run the tests' cases): until the block ends."""
    saved = storage.CLOCK.monotonic, storage.CLOCK.sleep
    storage.CLOCK.monotonic, storage.CLOCK.sleep = clock.monotonic, clock.sleep
    try:
        yield
    finally:
        storage.CLOCK.monotonic, storage.CLOCK.sleep = saved


# ``python -c RECORDING_MAIN WAITS_FILE ARGS...``: ``python -m avspot ARGS...`` with every wait
# recorded (a JSON list of seconds, written to WAITS_FILE when the process exits).
RECORDING_MAIN = """\
import atexit, json, sys
from avspot.datasets.storage import CLOCK
waits, out, real = [], sys.argv.pop(1), CLOCK.sleep
def sleep(seconds):
    waits.append(seconds)
    real(seconds)
CLOCK.sleep = sleep
def dump():
    with open(out, "w") as f:
        json.dump(waits, f)
atexit.register(dump)
from avspot.search.cli.main import main
sys.exit(main())
"""

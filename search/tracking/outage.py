"""Tracking-server outages: retries with backoff, bounded, and the outbox of metrics and params.

A server that drops while a search runs is waited for (docs/contracts.md, Services): calls go
through ``retry``; ``log_metrics`` and ``log_params`` (``tracking.client``) queue their entries
in the client's ``Outbox``, bounded in memory and sent oldest first. After
$AVSPOT_MLFLOW_OUTAGE_S seconds of outage (default 300), or with more than
$AVSPOT_MLFLOW_BUFFER_MAX entries waiting (default 100,000), ``TrackingUnavailable`` says so in
one line. Re-sending a batch is idempotent (each metric keeps its timestamp; MLflow ignores exact
duplicates), so a batch whose answer was lost is simply sent again.
"""

from __future__ import annotations

import re
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from avspot.datasets.errors import DataError, one_line
from avspot.datasets.storage import CLOCK, env_number
from avspot.search.tracking.names import TAG_TRACKING_BUFFERED, TAG_TRACKING_OUTAGE_S
from avspot.search.tracking.scrub import scrub_text

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

OUTAGE_ENV, DEFAULT_OUTAGE_S = "AVSPOT_MLFLOW_OUTAGE_S", 300.0
BUFFER_ENV, DEFAULT_BUFFER_MAX = "AVSPOT_MLFLOW_BUFFER_MAX", 100_000
# A server that is down, restarting or overloaded (requests/urllib3 through MlflowException).
_UNREACHABLE = re.compile(
    r"Max retries exceeded|Connection refused|Connection reset|Connection aborted"
    r"|Failed to establish|RemoteDisconnected|timed out|too many 50[0234] error responses"
    r"|HTTP 50[234]|BadStatusLine|IncompleteRead|is unreachable",
    re.I,
)
T = TypeVar("T")


class TrackingUnavailable(DataError):
    """The tracking server was unreachable for longer than allowed, or the outbox is full."""


def outage_budget_s() -> float:
    """Seconds an unreachable tracking server is waited for ($AVSPOT_MLFLOW_OUTAGE_S)."""
    return env_number(OUTAGE_ENV, DEFAULT_OUTAGE_S)


def _locked(exc: BaseException) -> bool:
    return "locked" in str(exc).lower()  # sqlite: concurrent writers on one file


def unreachable(exc: BaseException) -> bool:
    """True for errors of a tracking server that is down, restarting or overloaded."""
    if isinstance(exc, TrackingUnavailable):  # the health check's, not an exhausted wait's
        return "is unreachable" in str(exc)
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    names = {c.__name__ for c in type(exc).__mro__}
    if names & {"ConnectionError", "Timeout", "ChunkedEncodingError"}:  # requests' own
        return True
    return bool(_UNREACHABLE.search(str(exc)))


def retry(fn: Callable[..., T], *args: Any, attempts: int = 6, **kwargs: Any) -> T:
    """Call ``fn``, retrying sqlite 'database is locked' errors (concurrent writers on one file,
    ``attempts`` times) and an unreachable server (with backoff, for at most
    $AVSPOT_MLFLOW_OUTAGE_S seconds; then ``TrackingUnavailable``)."""
    down_since: float | None = None
    delay = 1.0
    for i in range(10**6):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if _locked(exc) and i < attempts - 1:
                CLOCK.sleep(0.2 * 2 ** min(i, 6))
                continue
            if not unreachable(exc):
                raise
            now = CLOCK.monotonic()
            down_since = now if down_since is None else down_since
            if now - down_since >= outage_budget_s():
                raise TrackingUnavailable(
                    f"MLflow tracking server unreachable for {now - down_since:.0f}s "
                    f"(${OUTAGE_ENV}={outage_budget_s():g}): {one_line(exc)}"
                ) from None
            CLOCK.sleep(delay)
            delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")  # pragma: no cover


class Outbox:
    """Metrics and params on their way to one client's server, oldest first, bounded.

    ``put`` queues a batch (``TrackingUnavailable`` when more than $AVSPOT_MLFLOW_BUFFER_MAX
    entries would wait); ``flush`` sends batches in order: without ``wait`` it tries when the
    backoff allows and returns, with ``wait`` it retries until the outbox is empty or the outage
    has lasted $AVSPOT_MLFLOW_OUTAGE_S seconds. After an outage the runs whose entries waited get
    the tags ``avspot.tracking_outage_s`` (seconds waited) and ``avspot.tracking_buffered_max``.
    """

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self.queue: deque[tuple[str, list[Any], list[Any]]] = deque()
        self.entries = 0
        self.max_entries = int(env_number(BUFFER_ENV, DEFAULT_BUFFER_MAX))
        self.down_since: float | None = None
        self.next_try = 0.0
        self.delay = 1.0
        self.buffered_max = 0
        self.waited_s: dict[str, float] = {}  # run id -> seconds its entries waited in outages
        self.lock = threading.RLock()

    def put(self, run_id: str, metrics: list[Any], params: list[Any]) -> None:
        """Queue entries for ``run_id`` (batches of at most 900 metrics or 100 params)."""
        n = len(metrics) + len(params)
        with self.lock:
            if self.entries + n > self.max_entries:
                down = CLOCK.monotonic() - (self.down_since or CLOCK.monotonic())
                raise TrackingUnavailable(
                    f"MLflow tracking server {scrub_text(self.client.tracking_uri)}: outbox full "
                    f"({self.entries} metrics and params waiting, {down:.0f}s unreachable; "
                    f"${BUFFER_ENV}={self.max_entries})"
                )
            for i in range(0, len(metrics), 900):  # MLflow caps a batch at 1000 metrics
                self.queue.append((run_id, metrics[i : i + 900], []))
            for i in range(0, len(params), 100):  # ... and at 100 params
                self.queue.append((run_id, [], params[i : i + 100]))
            self.entries += n
            self.buffered_max = max(self.buffered_max, self.entries)

    def flush(self, wait: bool = False) -> bool:
        """Send what waits, oldest first; True when the outbox is empty."""
        with self.lock:
            while self.queue:
                now = CLOCK.monotonic()
                if now < self.next_try:
                    if not wait:
                        return False
                    CLOCK.sleep(self.next_try - now)
                run_id, metrics, params = self.queue[0]
                try:
                    self.client.log_batch(run_id, metrics=metrics, params=params, synchronous=True)
                except Exception as exc:
                    if not (unreachable(exc) or _locked(exc)):
                        self.queue.popleft()  # a refused batch must not block the others
                        self.entries -= len(metrics) + len(params)
                        raise
                    self._failed(exc)
                    continue
                self.queue.popleft()
                self.entries -= len(metrics) + len(params)
                if self.down_since is not None:
                    self._recovered(run_id)
            return True

    def _failed(self, exc: BaseException) -> None:
        now = CLOCK.monotonic()
        self.down_since = now if self.down_since is None else self.down_since
        if now - self.down_since >= outage_budget_s():
            raise TrackingUnavailable(
                f"MLflow tracking server {scrub_text(self.client.tracking_uri)} unreachable for "
                f"{now - self.down_since:.0f}s (${OUTAGE_ENV}={outage_budget_s():g}); "
                f"{self.entries} metrics and params not logged: {one_line(exc)}"
            )
        self.next_try = now + self.delay
        self.delay = min(self.delay * 2, 10.0)

    def _recovered(self, run_id: str) -> None:
        assert self.down_since is not None
        waited = CLOCK.monotonic() - self.down_since
        runs = {r for r, _, _ in self.queue} | {run_id}
        for r in runs:
            self.waited_s[r] = self.waited_s.get(r, 0.0) + waited
        self.down_since, self.next_try, self.delay = None, 0.0, 1.0
        print(
            f"avspot: MLflow tracking server reachable again after {waited:.1f}s; "
            f"{self.buffered_max} metrics and params were buffered",
            file=sys.stderr,
            flush=True,
        )
        for r in runs:
            tags = {
                TAG_TRACKING_OUTAGE_S: f"{self.waited_s[r]:.1f}",
                TAG_TRACKING_BUFFERED: str(self.buffered_max),
            }
            for key, value in tags.items():
                retry(self.client.set_tag, r, key, value)


_OUTBOXES: weakref.WeakKeyDictionary[Any, Outbox] = weakref.WeakKeyDictionary()
_OUTBOXES_LOCK = threading.Lock()


def outbox(client: MlflowClient) -> Outbox:
    """The outbox of ``client`` (one per client object)."""
    with _OUTBOXES_LOCK:
        box = _OUTBOXES.get(client)
        if box is None:
            box = _OUTBOXES[client] = Outbox(client)
        return box


def flush_logs(client: MlflowClient, wait: bool = True) -> bool:
    """Send ``client``'s waiting metrics and params; with ``wait``, until none is left (bounded
    by $AVSPOT_MLFLOW_OUTAGE_S). Call it before anything that may end the process (a Tune
    report after which the scheduler may stop the trial) and before ending a run."""
    return outbox(client).flush(wait=wait)

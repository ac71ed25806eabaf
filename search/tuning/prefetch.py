"""Items of an iterator produced ahead by one background thread into a bounded queue: the
trial feed reads its next group of halves while the trainer consumes the current one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Prefetch"]


@dataclass(frozen=True)
class _End:
    """Marks the end of a prefetched stream (or carries the error that ended it)."""

    error: BaseException | None = None


class Prefetch:
    """Items of ``source`` produced by a background thread (named ``name``) into a bounded
    queue of ``depth``."""

    def __init__(self, source: Iterator[Any], depth: int, name: str = "avspot-prefetch") -> None:
        self._source = source
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_End())
        except BaseException as exc:  # handed to the consumer, raised in its thread
            self._put(_End(exc))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=10)

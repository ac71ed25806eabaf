"""Progress bars for long work (synth, ingest, spot, evaluate): tqdm on stderr.

A bar shows only when stderr is a terminal (tqdm's ``disable=None``) and the caller did not ask
for quiet; logs and CI output stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def progress_bar(
    *, total: int | None, desc: str = "", enabled: bool = True, unit: str = "it"
) -> Any:
    """A tqdm bar to ``update`` by hand (a context manager), on the same terms as ``progress``."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=None if enabled else True,
        leave=False,
        dynamic_ncols=True,
    )


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool = True,
    unit: str = "it",
) -> Iterator[T]:
    """``items`` wrapped in a tqdm bar on stderr (no bar when not a terminal or not enabled)."""
    with progress_bar(total=total, desc=desc, enabled=enabled, unit=unit) as bar:
        for item in items:
            yield item
            bar.update(1)

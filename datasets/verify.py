"""Verified tables: every part the manifest lists is there, whole, and decodes.

``check_table`` (cheap: one listing and one footer read per part) runs before any work starts in
``avspot train``, ``search`` and ``spot`` and by default in ``avspot data inspect``: each part
has the size the manifest records and a Parquet footer with one row group per half listed.
``deep=True`` (``inspect --verify``) also recomputes each part's sha256 (schema v2 manifests
record it) and decodes every row group, comparing games, halves and content digests with the
manifest. The first bad part is named in a DataError (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from avspot.datasets.checksums import file_sha256
from avspot.datasets.errors import DataError, one_line
from avspot.datasets.manifest import Manifest, half_digest, load_manifest, table_fingerprint
from avspot.datasets.storage import call_with_backoff, is_transient, join, resolve, storage_errors
from avspot.datasets.table import halves_from_arrow


def check_table(
    uri: str,
    endpoint: str | None = None,
    *,
    deep: bool = False,
    on_part: Callable[[str], Any] | None = None,
) -> Manifest:
    """The table's manifest, after checking its parts (see the module doc); DataError naming
    the first bad part. ``on_part(path)`` is called after each part (progress)."""
    fs, root = resolve(uri, endpoint)
    with storage_errors(uri, "reading the manifest"):
        m = load_manifest(fs, root, uri)
    paths = [join(root, f["path"]) for f in m.files]
    with storage_errors(uri, "listing data files"):
        infos = fs.get_file_info(paths) if paths else []
    for f, info in zip(m.files, infos, strict=True):
        where = f"{uri}: part {f['path']}"
        if info.type == pafs.FileType.NotFound:
            raise DataError(f"{where} is missing (the manifest lists it)")
        if info.size != f["bytes"]:
            raise DataError(
                f"{where} has {info.size} bytes, the manifest records {f['bytes']}: "
                "truncated or replaced"
            )
    digests: list[tuple[str, str, int, str]] = []
    for f, path in zip(m.files, paths, strict=True):
        where = f"{uri}: part {f['path']}"
        _check_footer(fs, path, f, where, uri)
        if deep:
            _check_bytes(fs, path, f, where, uri)
            digests += _check_rows(fs, path, f, where, uri)
        if on_part is not None:
            on_part(f["path"])
    if deep and table_fingerprint(digests) != m.fingerprint:
        raise DataError(f"{uri}: the halves' content does not match the manifest's fingerprint")
    return m


def _read(fn: Callable[[], Any], where: str, uri: str, what: str) -> Any:
    """``fn()`` with outages retried; a part that cannot be decoded is named as corrupt."""

    def attempt() -> Any:
        try:
            return fn()
        except DataError:
            raise
        except (OSError, pa.ArrowException, ValueError, KeyError, TypeError) as exc:
            if is_transient(exc):
                raise
            raise DataError(f"{where}: {what}: {one_line(exc)}") from None

    return call_with_backoff(attempt, uri, what)


def _check_footer(
    fs: pafs.FileSystem, path: str, entry: dict[str, Any], where: str, uri: str
) -> None:
    def footer() -> pq.FileMetaData:
        with fs.open_input_file(path) as fh:
            return pq.ParquetFile(fh).metadata

    md = _read(footer, where, uri, "unreadable Parquet footer")
    listed = len(entry["halves"])
    if md.num_row_groups != listed or md.num_rows != listed:
        raise DataError(
            f"{where} has {md.num_row_groups} row groups and {md.num_rows} rows, the manifest "
            f"lists {listed} halves"
        )


def _check_bytes(
    fs: pafs.FileSystem, path: str, entry: dict[str, Any], where: str, uri: str
) -> None:
    expected = entry.get("sha256")
    if not expected:  # a schema v1 table: sizes, footers and content digests still checked
        return
    digest, _ = _read(lambda: file_sha256(fs, path), where, uri, "unreadable")
    if digest != expected:
        raise DataError(f"{where}: sha256 {digest[:12]}... differs from the manifest's")


def _check_rows(
    fs: pafs.FileSystem, path: str, entry: dict[str, Any], where: str, uri: str
) -> list[tuple[str, str, int, str]]:
    """Decode every row group; the (game, half, frames, events) the manifest lists must match."""

    def decode() -> list[tuple[str, str, int, str]]:
        out = []
        with fs.open_input_file(path) as fh:
            pf = pq.ParquetFile(fh)
            for i, listed in enumerate(entry["halves"]):
                (h,) = halves_from_arrow(pf.read_row_group(i), copy=False)
                got = [h.game, int(h.half), h.n_frames, len(h.events)]
                if got != list(listed):
                    raise DataError(f"{where}: row group {i} holds {got}, the manifest {listed}")
                out.append((h.split, h.game, h.half, half_digest(h)))
        return out

    return _read(decode, where, uri, "cannot decode")

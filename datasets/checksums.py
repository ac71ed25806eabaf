"""Checksums of table parts: sha256 of a file's bytes, computed while it is written
(``HashingSink``) and recomputed by ``avspot data inspect --verify`` (``file_sha256``)."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow.fs as pafs

CHUNK_BYTES = 8 << 20


class HashingSink:
    """A write-only file object between a writer and a storage stream: it counts and
    sha256-hashes every byte on the way, so a part's size and checksum are known when it is
    closed, without reading it back (on S3 too). Wrap it in ``pyarrow.PythonFile(sink, "w")``."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha256.update(view)
        self.size += view.nbytes
        self.stream.write(view)
        return view.nbytes

    def flush(self) -> None:
        self.stream.flush()

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True  # the storage stream is closed by its owner


def file_sha256(fs: pafs.FileSystem, path: str) -> tuple[str, int]:
    """(sha256 hex digest, size) of a file's bytes, streamed in 8 MiB chunks (flat memory)."""
    digest = hashlib.sha256()
    size = 0
    with fs.open_input_stream(path) as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size

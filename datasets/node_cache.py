"""One decoded copy of a table's split per machine: read from object storage once, shared.

The first process on a machine that needs a split (a search trial) reads it from the table (S3
or a local path) and writes it, decoded, to ``$AVSPOT_CACHE_DIR/<fingerprint>/<split>/``
(default: ``<tmp>/avspot-cache``); every later process on that machine, concurrent trials of
the same search included, reads the local copy. An exclusive file lock per entry makes the
others wait while it is written (a dead writer's lock is released by the kernel); the entry
appears by an atomic rename, so a half-written copy is never read. The fingerprint keys the
entry, so a changed table is never served from an old copy.

An entry holds the split end to end in the table's dtype (float32, or float16 for a
half-precision table), one raw C-order file per modality, and ``index.json`` (every half's game,
number, frame offset, length and events, and what the fill read). ``CachedSplit.arrays()`` maps
the files read-only (pages shared by every process of the machine); ``map_block`` maps a run of
consecutive halves only, until it is closed (a streaming reader's memory stays one block).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import mmap
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avspot.datasets.errors import DataError
from avspot.datasets.halves import Event, Half
from avspot.datasets.manifest import Manifest

CACHE_ENV = "AVSPOT_CACHE_DIR"
INDEX = "index.json"
MODALITIES = ("video", "audio")


def cache_root() -> Path:
    """Where this machine's decoded splits live: $AVSPOT_CACHE_DIR, else <tmp>/avspot-cache."""
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "avspot-cache")


@dataclass(frozen=True)
class CachedHalf:
    """Where one half lies in an entry's files, and its events."""

    game: str
    half: int
    offset: int  # first frame in the entry's arrays
    n_frames: int
    events: list[Event]


@dataclass(frozen=True)
class CachedSplit:
    """A split on this machine's disk: its halves' layout, dtype and widths."""

    path: Path
    split: str
    fps: float
    dtype: str
    dims: dict[str, int]  # {"video": Dv, "audio": Da}
    halves: list[CachedHalf]
    fill: dict[str, Any]  # what filling it read: bytes, seconds, by which process
    label_set: str = "v1"  # the vocabulary of the halves' events

    @property
    def frames(self) -> int:
        return sum(h.n_frames for h in self.halves)

    @property
    def nbytes(self) -> int:
        """Bytes of features (both modalities) in the entry."""
        item = np.dtype(self.dtype).itemsize
        return self.frames * item * sum(self.dims.values())

    def arrays(self) -> dict[str, np.ndarray]:
        """{modality: (N_total, D)} read-only maps of the entry's files (shared pages)."""
        out = {}
        for m in MODALITIES:
            shape = (self.frames, self.dims[m])
            if self.frames * self.dims[m] == 0:
                out[m] = np.zeros(shape, self.dtype)
            else:
                out[m] = np.memmap(self.path / f"{m}.bin", self.dtype, "r", shape=shape)
        return out

    def as_halves(self, arrays: dict[str, np.ndarray], split: str | None = None) -> list[Half]:
        """The halves as ``Half`` objects whose features are views into ``arrays`` (no copy)."""
        return [
            Half(
                game=h.game,
                half=h.half,
                split=split or self.split,
                fps=self.fps,
                video=arrays["video"][h.offset : h.offset + h.n_frames],
                audio=arrays["audio"][h.offset : h.offset + h.n_frames],
                events=list(h.events),
                label_set=self.label_set,
            )
            for h in self.halves
        ]

    def map_block(self, first: int, count: int) -> MappedBlock:
        """Halves ``first`` .. ``first + count - 1`` (consecutive in the files) mapped, not
        copied: their pages are the machine's page cache, populated at once. ``close()`` unmaps
        them, so a streaming reader's memory is a block, however large the split."""
        chosen = self.halves[first : first + count]
        start, frames = chosen[0].offset, sum(h.n_frames for h in chosen)
        item = np.dtype(self.dtype).itemsize
        block = MappedBlock()
        try:
            for m in MODALITIES:
                row = self.dims[m] * item
                if row == 0 or frames == 0:
                    block.arrays[m] = np.zeros((frames, self.dims[m]), self.dtype)
                    continue
                lo = start * row
                aligned = lo - lo % mmap.ALLOCATIONGRANULARITY
                length = lo - aligned + frames * row
                with open(self.path / f"{m}.bin", "rb") as f:
                    mm = mmap.mmap(
                        f.fileno(),
                        length,
                        flags=mmap.MAP_SHARED,
                        prot=mmap.PROT_READ,
                        offset=aligned,
                    )
                block.maps.append(mm)
                _populate(mm, length)
                flat = np.frombuffer(mm, self.dtype, frames * self.dims[m], lo - aligned)
                block.arrays[m] = flat.reshape(frames, self.dims[m])
            layout = [dataclasses.replace(h, offset=h.offset - start) for h in chosen]
            block.halves = dataclasses.replace(self, halves=layout).as_halves(block.arrays)
        except BaseException:
            block.close()
            raise
        return block


# MADV_POPULATE_READ (Linux >= 5.14; not in Python 3.11's mmap module): fault a mapping's pages
# in at once. Called through ctypes, which releases the GIL for the call. mmap(MAP_POPULATE) does
# the same work holding the GIL (6-9 ms per 128 MB here), and so stopped the thread cutting the
# batches while the next block was mapped.
_MADV_POPULATE_READ = 22


def _populate(mm: mmap.mmap, length: int) -> None:
    """Fault in the pages of ``mm`` (``length`` bytes) without holding the GIL; where the kernel
    cannot (EINVAL: before 5.14), only start their read-ahead and let the first reads fault."""
    view = np.frombuffer(mm, np.uint8, length)
    try:
        madvise = _libc_madvise()
        done = madvise is not None and madvise(view.ctypes.data, length, _MADV_POPULATE_READ) == 0
    finally:
        del view  # no export of the mapping outlives this call
    if not done:
        with contextlib.suppress(OSError, AttributeError, ValueError):
            mm.madvise(mmap.MADV_WILLNEED)


@functools.cache
def _libc_madvise() -> Any:
    """libc's madvise through ctypes (None where there is none to call)."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):  # not a libc platform
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return fn


class MappedBlock:
    """A run of a split's halves mapped read-only (``CachedSplit.map_block``). Views of its
    arrays must be dropped before ``close`` (gathered batches are copies: they may stay)."""

    def __init__(self) -> None:
        self.maps: list[mmap.mmap] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.halves: list[Half] = []

    def close(self) -> None:
        self.arrays.clear()
        self.halves = []
        for mm in self.maps:
            # a view still held elsewhere (a thread about to drop it): the mapping then goes
            # with the last view, when it is freed
            with contextlib.suppress(BufferError):
                mm.close()
        self.maps = []


def ensure_split(
    uri: str,
    manifest: Manifest,
    split: str,
    *,
    endpoint: str | None = None,
    root: Path | None = None,
) -> tuple[CachedSplit, bool]:
    """(the split on this machine's disk, whether this call filled it): read from the table at
    most once per machine; concurrent callers wait for the one that fills it."""
    root = root or cache_root()
    entry = root / manifest.fingerprint / split
    entry.parent.mkdir(parents=True, exist_ok=True)
    with _locked(entry.parent / f"{split}.lock"):
        if (entry / INDEX).exists():
            return _load(entry), False
        _check_room(entry.parent, manifest, split)
        _fill(uri, manifest, split, endpoint, entry)
        return _load(entry), True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released by the kernel if this process dies
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def split_nbytes(manifest: Manifest, split: str) -> int:
    """Bytes of a split's features decoded (both modalities, the table's dtype)."""
    per = manifest.counts.get("per_split", {}).get(split, {})
    frames = int(per.get("frames", manifest.frames))
    item = np.dtype(manifest.dtype).itemsize
    return frames * item * sum(manifest.feature_dims.values())


def _check_room(where: Path, manifest: Manifest, split: str) -> None:
    need = split_nbytes(manifest, split)
    free = shutil.disk_usage(where).free
    if need > free:
        raise DataError(
            f"node cache {where}: the {split} split needs {need / 1e9:.2f} GB decoded, "
            f"{free / 1e9:.2f} GB are free: point ${CACHE_ENV} at a larger disk"
        )


def _fill(uri: str, manifest: Manifest, split: str, endpoint: str | None, entry: Path) -> None:
    """Stream the split's halves from the table into a staging directory, then rename it."""
    from avspot.datasets.table import iter_halves

    t0 = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=f".{split}.fill-", dir=entry.parent))
    try:
        files = {m: open(staging / f"{m}.bin", "wb") for m in MODALITIES}  # noqa: SIM115
        halves, offset, dims, dtype, fps = [], 0, {}, None, None
        try:
            # patient: work under way (a trial) waits through an outage of the store (bounded)
            for h in iter_halves(uri, split, endpoint=endpoint, copy=False, patient=True):
                for m in MODALITIES:
                    x = np.ascontiguousarray(getattr(h, m))
                    dims.setdefault(m, int(x.shape[1]))
                    dtype = dtype or x.dtype.name
                    if x.size:  # a table without audio has (N, 0) audio: nothing to write
                        files[m].write(memoryview(x).cast("B"))
                halves.append(
                    {
                        "game": h.game,
                        "half": h.half,
                        "offset": offset,
                        "n_frames": h.n_frames,
                        "events": [dataclasses.asdict(e) for e in h.events],
                    }
                )
                offset += h.n_frames
                fps = fps or h.fps
        finally:
            for f in files.values():
                f.close()
        read = sum(int(f.get("bytes", 0)) for f in manifest.files if f.get("split") == split)
        index = {
            "fingerprint": manifest.fingerprint,
            "split": split,
            "fps": fps or manifest.fps,
            "dtype": dtype or "float32",
            "label_set": manifest.label_set,
            "dims": dims or dict(manifest.feature_dims),
            "halves": halves,
            "fill": {
                "table_bytes_read": read,
                "seconds": round(time.perf_counter() - t0, 3),
                "host": os.uname().nodename,
                "pid": os.getpid(),
                "filled": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        }
        (staging / INDEX).write_text(json.dumps(index))
        os.replace(staging, entry)  # the entry appears whole
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _load(entry: Path) -> CachedSplit:
    doc = json.loads((entry / INDEX).read_text())
    halves = [
        CachedHalf(
            game=h["game"],
            half=int(h["half"]),
            offset=int(h["offset"]),
            n_frames=int(h["n_frames"]),
            events=[Event(**e) for e in h["events"]],
        )
        for h in doc["halves"]
    ]
    return CachedSplit(
        path=entry,
        split=doc["split"],
        fps=float(doc["fps"]),
        dtype=doc["dtype"],
        dims={k: int(v) for k, v in doc["dims"].items()},
        halves=halves,
        fill=doc["fill"],
        label_set=doc.get("label_set", "v1"),
    )

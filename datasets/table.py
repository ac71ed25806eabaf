"""Parquet feature tables: one row per game half, partitioned by split, committed by a manifest.

Layout of a table at ``URI`` (a local directory or ``s3://bucket/prefix``)::

    URI/manifest.json                                   commit marker, lists every data file
    URI/<version>/split=train/part-00000.parquet        (S3: <version> = v-<timestamp>-<token>)
    URI/split=train/part-00000.parquet                  (local: the staging dir is renamed)

Readers read only the files that ``manifest.json`` lists, so a write that fails before the
manifest leaves nothing readable (and an older table, when overwriting, stays intact).

Arrow encoding, one row per half, one Parquet row group per row (readers stream one half at a
time)::

    game: string   half: int8   split: string   fps: float64   n_frames: int32
    video: list<fixed_size_list<float32, Dv>>    # (N, Dv): one fixed-size list per frame
    audio: list<fixed_size_list<float32, Da>>    # (N, Da)
    events: list<struct<frame: int32, label: string, raw_label: string, position_ms: int64>>

The frames of a half are one contiguous float32 buffer inside Arrow, so ``(N, D)`` comes back
as a zero-copy numpy view of the decoded column (``copy=False``), and the list offsets count
frames, not floats (no 2**31 overflow when Ray concatenates many halves). Parquet settings:
zstd level 1 with BYTE_STREAM_SPLIT on the float columns, dictionary encoding on strings only.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from avspot.datasets.checksums import HashingSink
from avspot.datasets.errors import DataError
from avspot.datasets.halves import SPLITS, Event, Half
from avspot.datasets.labels import CLASSES, RAW_LABELS
from avspot.datasets.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Counter,
    Manifest,
    half_digest,
    load_manifest,
    read_manifest,
    table_fingerprint,
)
from avspot.datasets.storage import call_with_backoff, is_s3, join, resolve, storage_errors

if TYPE_CHECKING:  # pragma: no cover
    import ray.data

HALVES_PER_FILE = 16  # about 350 MB of 45-min halves per file: Ray reads files in parallel


EVENT_TYPE = pa.struct(
    [
        ("frame", pa.int32()),
        ("label", pa.string()),
        ("raw_label", pa.string()),
        ("position_ms", pa.int64()),
    ]
)


# ---- Arrow conversion -----------------------------------------------------------------------------


def table_schema(video_dim: int = 512, audio_dim: int = 512) -> pa.Schema:
    """Arrow schema of a feature table's rows."""
    return pa.schema(
        [
            ("game", pa.string()),
            ("half", pa.int8()),
            ("split", pa.string()),
            ("fps", pa.float64()),
            ("n_frames", pa.int32()),
            ("video", pa.list_(pa.list_(pa.float32(), video_dim))),
            ("audio", pa.list_(pa.list_(pa.float32(), audio_dim))),
            ("events", pa.list_(EVENT_TYPE)),
        ]
    )


def _matrix_column(x: np.ndarray) -> pa.Array:
    """(N, D) float32 -> one-row list<fixed_size_list<float32, D>> array, sharing x's buffer."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    flat = pa.array(x.reshape(-1))  # zero-copy for a contiguous float32 array
    inner = pa.FixedSizeListArray.from_arrays(flat, x.shape[1])
    return pa.ListArray.from_arrays(pa.array([0, x.shape[0]], pa.int32()), inner)


def _matrix_from_scalar(value: pa.ListScalar, copy: bool) -> np.ndarray:
    frames = value.values  # FixedSizeListArray of this row's frames
    width = frames.type.list_size
    flat = frames.flatten().to_numpy(zero_copy_only=True)  # (N * D,)
    out = flat.reshape(-1, width)  # (N, D)
    return out.copy() if copy else out


def _check_half(h: Half) -> None:
    where = f"game {h.game!r} half {h.half}"
    if h.split not in SPLITS:
        raise DataError(f"{where}: unknown split {h.split!r} (expected one of {', '.join(SPLITS)})")
    if h.half not in (1, 2):
        raise DataError(f"{where}: half must be 1 or 2")
    for name, x in (("video", h.video), ("audio", h.audio)):
        if not isinstance(x, np.ndarray) or x.ndim != 2:
            raise DataError(f"{where}: {name} must be a 2-D array (N, D)")
    if h.video.shape[0] != h.audio.shape[0]:
        raise DataError(
            f"{where}: video has {h.video.shape[0]} frames but audio has {h.audio.shape[0]}"
        )
    n = h.video.shape[0]
    for e in h.events:
        if e.label not in CLASSES or e.raw_label not in RAW_LABELS:
            raise DataError(f"{where}: event label {e.raw_label!r}/{e.label!r} is not a v1 label")
        if not 0 <= e.frame < n:
            raise DataError(f"{where}: event frame {e.frame} outside the half's {n} frames")


def half_to_table(h: Half) -> pa.Table:
    """One half as a one-row Arrow table in the feature-table schema."""
    _check_half(h)
    events = pa.array(
        [
            [
                {
                    "frame": e.frame,
                    "label": e.label,
                    "raw_label": e.raw_label,
                    "position_ms": e.position_ms,
                }
                for e in h.events
            ]
        ],
        pa.list_(EVENT_TYPE),
    )
    schema = table_schema(h.video.shape[1], h.audio.shape[1])
    return pa.Table.from_arrays(
        [
            pa.array([h.game], pa.string()),
            pa.array([h.half], pa.int8()),
            pa.array([h.split], pa.string()),
            pa.array([float(h.fps)], pa.float64()),
            pa.array([h.n_frames], pa.int32()),
            _matrix_column(h.video),
            _matrix_column(h.audio),
            events,
        ],
        schema=schema,
    )


def halves_from_arrow(data: pa.Table | pa.RecordBatch, *, copy: bool = True) -> list[Half]:
    """Rows of a feature-table Arrow table/batch (e.g. a Ray ``batch_format="pyarrow"`` batch).

    With ``copy=False`` the arrays are read-only zero-copy views of the Arrow buffers.
    """
    batches = data.to_batches() if isinstance(data, pa.Table) else [data]
    out: list[Half] = []
    for b in batches:
        cols = {name: b.column(name) for name in b.schema.names}
        for i in range(b.num_rows):
            out.append(
                Half(
                    game=cols["game"][i].as_py(),
                    half=int(cols["half"][i].as_py()),
                    split=cols["split"][i].as_py(),
                    fps=float(cols["fps"][i].as_py()),
                    video=_matrix_from_scalar(cols["video"][i], copy),
                    audio=_matrix_from_scalar(cols["audio"][i], copy),
                    events=[Event(**e) for e in (cols["events"][i].as_py() or [])],
                )
            )
    return out


def _as_matrix(value: Any) -> np.ndarray:
    """A row's feature cell in any form Ray or Arrow hands out -> a fresh (N, D) float32 array."""
    if isinstance(value, pa.Scalar):
        return _matrix_from_scalar(value, copy=True)
    if isinstance(value, np.ndarray) and value.dtype != object:
        return np.array(value, dtype=np.float32, copy=True)
    if isinstance(value, np.ndarray | list | tuple):
        if len(value) == 0:
            return np.zeros((0, 0), np.float32)
        first = value[0]
        if isinstance(first, np.ndarray) and first.dtype != object:
            return np.stack(value).astype(np.float32, copy=True)  # (N, D), a new array
        return np.asarray([np.asarray(r, dtype=np.float32) for r in value], dtype=np.float32)
    raise DataError(f"cannot read a feature matrix from a {type(value).__name__}")


def half_from_row(row: Mapping[str, Any]) -> Half:
    """A Ray Data / Arrow row (dict) back into a Half, with fresh writable arrays.

    Ray hands out read-only arrays from its object store (or Python lists from ``iter_rows``);
    both are copied here. For speed, iterate Ray batches with ``batch_format="pyarrow"`` and use
    ``halves_from_arrow``.
    """
    events_raw = row.get("events")
    if isinstance(events_raw, pa.Scalar):
        events_raw = events_raw.as_py()
    events = [
        Event(
            frame=int(e["frame"]),
            label=str(e["label"]),
            raw_label=str(e["raw_label"]),
            position_ms=int(e["position_ms"]),
        )
        for e in (list(events_raw) if events_raw is not None else [])
    ]

    def scalar(v: Any) -> Any:
        return v.as_py() if isinstance(v, pa.Scalar) else v

    return Half(
        game=str(scalar(row["game"])),
        half=int(scalar(row["half"])),
        split=str(scalar(row["split"])),
        fps=float(scalar(row["fps"])),
        video=_as_matrix(row["video"]),
        audio=_as_matrix(row["audio"]),
        events=events,
    )


# ---- writing -------------------------------------------------------------------------------------

_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": [
        "game",
        "split",
        "events.list.element.label",
        "events.list.element.raw_label",
    ],
    "use_byte_stream_split": ["video.list.element.list.element", "audio.list.element.list.element"],
    "write_statistics": ["game", "half", "split", "n_frames"],
}


class _Staging:
    """Where a write goes before it is committed, and how it is committed or thrown away."""

    def __init__(self, fs: pafs.FileSystem, root: str, uri: str, overwrite: bool) -> None:
        self.fs, self.root, self.uri = fs, root, uri
        token = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        self.s3 = is_s3(fs)
        self.old_manifest: Manifest | None = None
        info = fs.get_file_info(root)
        manifest_info = fs.get_file_info(join(root, MANIFEST_NAME))
        exists = manifest_info.type == pafs.FileType.File
        if self.s3:
            bucket = root.split("/", 1)[0]
            if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                raise DataError(f"{uri}: bucket {bucket!r} does not exist")
        else:
            if info.type == pafs.FileType.File:
                raise DataError(f"{uri}: exists and is a file, not a table directory")
            if (
                info.type == pafs.FileType.Directory
                and not exists
                and fs.get_file_info(pafs.FileSelector(root, recursive=False))
            ):
                raise DataError(
                    f"{uri}: directory exists and is not an avspot table (no {MANIFEST_NAME}); "
                    "refusing to write into it"
                )
        if exists and not overwrite:
            raise DataError(
                f"{uri}: a table already exists (pass --overwrite / overwrite=True to replace it)"
            )
        if exists:
            with contextlib.suppress(DataError, KeyError, ValueError):
                self.old_manifest = load_manifest(fs, root, uri)
        if self.s3:
            self.prefix = f"v-{token}/"  # data files live under URI/v-<token>/...
            self.data_root = root
            self.dir = join(root, self.prefix.rstrip("/"))
        else:
            parent, name = os.path.split(root.rstrip("/"))
            fs.create_dir(parent, recursive=True)
            self.prefix = ""
            self.dir = os.path.join(parent, f".{name}.tmp-{token}")
            self.data_root = self.dir
            fs.create_dir(self.dir, recursive=True)
            self.old_dir = os.path.join(parent, f".{name}.old-{token}")

    def path(self, rel: str) -> str:
        """Absolute path where a relative data file is written."""
        return join(self.data_root, self.prefix + rel)

    def commit(self, manifest: Manifest) -> None:
        payload = json.dumps(manifest.to_dict(), indent=1).encode()
        if self.s3:
            # The manifest is the commit marker: one PUT, after every data file is complete.
            with self.fs.open_output_stream(join(self.root, MANIFEST_NAME)) as f:
                f.write(payload)
            if self.old_manifest is not None:
                self._delete_files(self.root, self.old_manifest)
            return
        with self.fs.open_output_stream(os.path.join(self.dir, MANIFEST_NAME)) as f:
            f.write(payload)
        if self.fs.get_file_info(self.root).type != pafs.FileType.NotFound:
            self.fs.move(self.root, self.old_dir)  # an empty dir or the table being replaced
            self.fs.move(self.dir, self.root)
            self.fs.delete_dir(self.old_dir)
        else:
            self.fs.move(self.dir, self.root)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.fs.delete_dir(self.dir)

    def _delete_files(self, root: str, old: Manifest) -> None:
        tops = {f["path"].split("/", 1)[0] for f in old.files if f["path"].startswith("v-")}
        for top in tops:
            if self.prefix.startswith(top + "/"):
                continue
            with contextlib.suppress(Exception):
                self.fs.delete_dir(join(root, top))


def write_table(
    halves: Iterable[Half],
    uri: str,
    *,
    source: str,
    seed: int | None = None,
    overwrite: bool = False,
    endpoint: str | None = None,
    params: Mapping[str, Any] | None = None,
    halves_per_file: int = HALVES_PER_FILE,
) -> Manifest:
    """Write halves (consumed one at a time) to a feature table, atomically; return its manifest.

    Refuses an existing table unless ``overwrite``. On any failure nothing readable is left.
    """
    fs, root = resolve(uri, endpoint)
    with storage_errors(uri, "write"):
        staging = _Staging(fs, root, uri, overwrite)
        try:
            manifest = _write_files(halves, staging, source, seed, params or {}, halves_per_file)
            staging.commit(manifest)
        except BaseException:
            staging.abort()
            raise
    return manifest


def _write_files(
    halves: Iterable[Half],
    staging: _Staging,
    source: str,
    seed: int | None,
    params: Mapping[str, Any],
    halves_per_file: int,
) -> Manifest:
    counter = Counter()
    digests: list[tuple[str, str, int, str]] = []
    writers: dict[str, tuple[pq.ParquetWriter, Any, dict[str, Any]]] = {}
    parts = dict.fromkeys(SPLITS, 0)
    files: list[dict[str, Any]] = []
    dims: dict[str, int] | None = None
    fps: float | None = None

    def close(split: str) -> None:
        writer, stream, entry = writers.pop(split)
        writer.close()
        stream.close()
        sink: HashingSink = entry["sink"]
        size = staging.fs.get_file_info(staging.path(entry["rel"])).size
        if size != sink.size:  # the store kept other bytes than those written
            raise DataError(
                f"{staging.uri}: {entry['rel']} holds {size} bytes after writing {sink.size}"
            )
        files.append(
            {
                "path": staging.prefix + entry["rel"],
                "split": split,
                "bytes": size,
                "sha256": sink.sha256.hexdigest(),
                "halves": entry["halves"],
            }
        )

    try:
        for h in halves:
            table = half_to_table(h)
            hd = {"video": int(h.video.shape[1]), "audio": int(h.audio.shape[1])}
            if dims is None:
                dims, fps = hd, float(h.fps)
            elif hd != dims or float(h.fps) != fps:
                raise DataError(
                    f"game {h.game!r} half {h.half}: dims {hd} at {h.fps} fps differ from the "
                    f"table's {dims} at {fps} fps"
                )
            counter.add(h)
            digests.append((h.split, h.game, h.half, half_digest(h)))
            if h.split in writers and len(writers[h.split][2]["halves"]) >= halves_per_file:
                close(h.split)
            if h.split not in writers:
                rel = f"split={h.split}/part-{parts[h.split]:05d}.parquet"
                parts[h.split] += 1
                if not staging.s3:  # S3 has no directories; markers would only be clutter
                    staging.fs.create_dir(os.path.dirname(staging.path(rel)), recursive=True)
                stream = staging.fs.open_output_stream(staging.path(rel))
                sink = HashingSink(stream)
                writer = pq.ParquetWriter(
                    pa.PythonFile(sink, mode="w"), table.schema, **_PARQUET_OPTIONS
                )
                writers[h.split] = (writer, stream, {"rel": rel, "halves": [], "sink": sink})
            writer, _, entry = writers[h.split]
            writer.write_table(table, row_group_size=1)  # one row group per half
            entry["halves"].append([h.game, int(h.half), h.n_frames, len(h.events)])
        for split in list(writers):
            close(split)
    finally:
        for writer, stream, _ in writers.values():
            with contextlib.suppress(Exception):
                writer.close()
                stream.close()
    counts = counter.result()
    if counts["halves"] == 0:
        raise DataError(f"{staging.uri}: no halves to write")
    files.sort(key=lambda f: (SPLITS.index(f["split"]), f["path"]))
    assert dims is not None and fps is not None
    return Manifest(
        schema_version=SCHEMA_VERSION,
        source=source,
        seed=seed,
        counts=counts,
        frames=counts["frames"],
        bytes=sum(f["bytes"] for f in files),
        fingerprint=table_fingerprint(digests),
        files=files,
        fps=fps,
        feature_dims=dims,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        params=dict(params),
    )


# ---- reading -------------------------------------------------------------------------------------


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")


def data_files(
    uri: str, split: str | None = None, endpoint: str | None = None, *, patient: bool = False
) -> tuple[pafs.FileSystem, list[str]]:
    """(filesystem, paths) of the Parquet files that the manifest lists, optionally of one split.

    An unreachable store fails within seconds; with ``patient`` (work already under way, e.g.
    a trial of a validated search) an outage is waited for (``storage.call_with_backoff``).
    """
    _check_split(split)
    fs, root = resolve(uri, endpoint)
    if patient:
        m = call_with_backoff(lambda: load_manifest(fs, root, uri), uri, "reading the manifest")
    else:
        with storage_errors(uri, "reading the manifest"):
            m = load_manifest(fs, root, uri)
    return fs, [join(root, f["path"]) for f in m.files if split is None or f["split"] == split]


def iter_halves(
    uri: str,
    split: str | None = None,
    *,
    endpoint: str | None = None,
    copy: bool = True,
    patient: bool = False,
) -> Iterator[Half]:
    """Stream the halves of a table one row group (one half) at a time: flat peak memory.

    ``copy=False`` yields read-only views of the decoded Arrow buffers (no extra copy). A store
    that is unreachable at the start fails within seconds (reading the manifest; with
    ``patient``, inside work already under way, that is waited for too); one that drops while
    parts are read is retried with backoff and the read resumes at the same row group
    (``storage.call_with_backoff``, bounded by $AVSPOT_STORAGE_OUTAGE_S).
    """
    fs, paths = data_files(uri, split, endpoint, patient=patient)
    root = resolve(uri, endpoint)[1]
    for path in paths:
        yield from _part_halves(fs, path, f"reading {path[len(root) :].lstrip('/')}", uri, copy)


def _part_halves(fs: pafs.FileSystem, path: str, what: str, uri: str, copy: bool) -> Iterator[Half]:
    """The halves of one part, row group by row group; reopened after a transient failure."""
    state: dict[str, Any] = {"file": None, "pf": None}

    def drop() -> None:
        if state["file"] is not None:
            with contextlib.suppress(Exception):
                state["file"].close()
        state["file"] = state["pf"] = None

    def row_group(i: int | None) -> Any:
        try:
            if state["pf"] is None:
                state["file"] = fs.open_input_file(path)
                state["pf"] = pq.ParquetFile(state["file"])
            return state["pf"].num_row_groups if i is None else state["pf"].read_row_group(i)
        except BaseException:
            drop()
            raise

    try:
        n = call_with_backoff(lambda: row_group(None), uri, what)
        for i in range(n):
            table = call_with_backoff(lambda i=i: row_group(i), uri, what)
            yield from halves_from_arrow(table, copy=copy)
    finally:
        drop()


def read_halves(
    uri: str,
    split: str | None = None,
    *,
    endpoint: str | None = None,
    threads: int = 4,
    patient: bool = False,
) -> list[Half]:
    """Every half of a table (or a split) in memory, in storage order: the one split reader.

    The parts are read by ``threads`` threads (pyarrow releases the GIL while it reads and
    decodes); outages are retried as in :func:`iter_halves`. On a 40-game table on 2 CPUs this
    read the train split in 4.7 s where Ray Data's read tasks took 24 s to hand the same halves
    to a trial (scheduling, the object store, one batch per half).
    """
    from concurrent.futures import ThreadPoolExecutor

    fs, paths = data_files(uri, split, endpoint, patient=patient)
    root = resolve(uri, endpoint)[1]

    def read(path: str) -> list[Half]:
        return list(_part_halves(fs, path, f"reading {path[len(root) :].lstrip('/')}", uri, True))

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(paths) or 1))) as pool:
        return [h for part in pool.map(read, paths) for h in part]


def list_halves(
    uri: str, split: str | None = None, *, endpoint: str | None = None
) -> list[tuple[str, int]]:
    """(game, half) of each row, in storage order, from the manifest alone."""
    _check_split(split)
    m = read_manifest(uri, endpoint)
    return [
        (g, int(h))
        for f in m.files
        if split is None or f["split"] == split
        for g, h, *_ in f["halves"]
    ]


def ray_read(
    uri: str,
    split: str | None = None,
    *,
    endpoint: str | None = None,
    patient: bool = False,
    **read_kwargs: Any,
) -> ray.data.Dataset:
    """A Ray Dataset over the files the manifest lists (one row per half).

    Iterate with ``iter_batches(batch_format="pyarrow")`` + ``halves_from_arrow`` for speed, or
    ``iter_rows()`` + ``half_from_row``.
    """
    import ray.data  # lazy: the data layer must import without Ray

    fs, paths = data_files(uri, split, endpoint, patient=patient)
    if not paths:
        raise DataError(f"{uri}: no data files" + (f" in split {split!r}" if split else ""))
    return ray.data.read_parquet(paths, filesystem=fs, **read_kwargs)

"""A table's manifest: what it holds, which files make it up, its content fingerprint.

The manifest is written last, as the commit marker: readers read only the files it lists. The
fingerprint (sha256 over per-half digests) does not depend on file layout or storage, so runs
can record exactly which data they saw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.fs as pafs

from avspot.datasets.errors import DataError, one_line
from avspot.datasets.halves import DEFAULT_DTYPE, FEATURE_DTYPES, SPLITS, Half
from avspot.datasets.labels import DEFAULT_LABEL_SET, VISIBILITIES, LabelSet, get_label_set
from avspot.datasets.storage import join, resolve, storage_errors

# 1: files with path, split, bytes, halves. 2: each file also has "sha256" (of its bytes).
# 3: "label_set" (v1 | v2) and "dtype" (float32 | float16) of the table; events carry a
#    visibility; audio may be absent (feature_dims audio 0); split "challenge"; counts per
#    visibility. A v2 manifest misses these: it reads as v1, float32, every event visible.
# Readers accept every version up to SCHEMA_VERSION; parts without a checksum are not hashed.
SCHEMA_VERSION = 3
MANIFEST_NAME = "manifest.json"
ENCODING = "video/audio: list<fixed_size_list<float32, D>> (one list per frame), row group per half"


def encoding_note(dtype: str = DEFAULT_DTYPE, audio: bool = True) -> str:
    """The manifest's ``encoding`` line for a table of ``dtype`` (with or without audio)."""
    if dtype == DEFAULT_DTYPE and audio:
        return ENCODING
    cols = "video/audio" if audio else "video (no audio column)"
    return f"{cols}: list<fixed_size_list<{dtype}, D>> (one list per frame), row group per half"


def is_synthetic(source: str) -> bool:
    """Whether a table's ``source`` is generated data (``avspot data synth``)."""
    return source.lower().startswith("synth")


def source_note(source: str) -> str:
    """A few words saying which data a figure's numbers come from; a synthetic result never
    reads as a SoccerNet one."""
    if is_synthetic(source):
        return "SYNTHETIC data (avspot data synth), not SoccerNet"
    if source.lower().startswith("soccernet-v2"):
        return "SoccerNet-v2 features"
    if source.lower().startswith("soccernet"):
        return "SoccerNet v1 features"
    return f"data: {source} (not presented as SoccerNet)"


@dataclass
class Manifest:
    """What a table holds and which files make it up; written last, as the commit marker."""

    schema_version: int
    source: str
    seed: int | None
    counts: dict[str, Any]
    frames: int
    bytes: int
    fingerprint: str
    files: list[dict[str, Any]]  # {"path" (relative to the table), "split", "bytes", "sha256",
    #                               "halves": [[game, half, frames, events], ...]}
    fps: float
    feature_dims: dict[str, int]  # {"video": Dv, "audio": Da}; Da = 0: a table without audio
    encoding: str = ENCODING
    created: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # generator / ingest parameters
    label_set: str = DEFAULT_LABEL_SET  # v1 | v2 (datasets/labels.py); schema < 3: v1
    dtype: str = DEFAULT_DTYPE  # float32 | float16, the stored features; schema < 3: float32

    @property
    def vocabulary(self) -> LabelSet:
        """The table's label set: class names in order, raw labels, display names."""
        return get_label_set(self.label_set)

    @property
    def has_audio(self) -> bool:
        return int(self.feature_dims.get("audio", 0)) > 0

    @property
    def itemsize(self) -> int:
        """Bytes per stored feature value (4 for float32, 2 for float16)."""
        return int(np.dtype(self.dtype).itemsize)

    @property
    def bytes_per_frame(self) -> int:
        """Decoded feature bytes of one frame, every modality (memory planning)."""
        return self.itemsize * sum(int(v) for v in self.feature_dims.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "source": self.source,
            "seed": self.seed,
            "fingerprint": self.fingerprint,
            "label_set": self.label_set,
            "dtype": self.dtype,
            "counts": self.counts,
            "frames": self.frames,
            "bytes": self.bytes,
            "fps": self.fps,
            "feature_dims": self.feature_dims,
            "encoding": self.encoding,
            "created": self.created,
            "params": self.params,
            "files": self.files,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manifest:
        return cls(
            schema_version=int(d["schema_version"]),
            source=str(d["source"]),
            seed=d.get("seed"),
            counts=dict(d["counts"]),
            frames=int(d["frames"]),
            bytes=int(d["bytes"]),
            fingerprint=str(d["fingerprint"]),
            files=list(d["files"]),
            fps=float(d["fps"]),
            feature_dims=dict(d["feature_dims"]),
            encoding=str(d.get("encoding", ENCODING)),
            created=str(d.get("created", "")),
            params=dict(d.get("params") or {}),
            label_set=str(d.get("label_set", DEFAULT_LABEL_SET)),
            dtype=str(d.get("dtype", DEFAULT_DTYPE)),
        )


def _event_key(e: Any) -> list[Any]:
    key = [e.frame, e.label, e.raw_label, e.position_ms]
    return key if e.visibility == "visible" else [*key, e.visibility]


def half_digest(h: Half) -> str:
    """sha256 of a half's canonical content: header (JSON), then video and audio bytes
    (little-endian, in the stored dtype).

    What schema 3 added enters the header only where it differs from a v1 float32 half (label
    set, dtype, an event's visibility), so the digests, and the fingerprint, of a v1 float32
    table are those of schema 2.
    """
    dtype = "float16" if h.video.dtype == np.float16 else "float32"
    header: dict[str, Any] = {
        "game": h.game,
        "half": int(h.half),
        "split": h.split,
        "fps": float(h.fps),
        "shape": [list(h.video.shape), list(h.audio.shape)],
        "events": [_event_key(e) for e in h.events],
    }
    if h.label_set != DEFAULT_LABEL_SET:
        header["label_set"] = h.label_set
    if dtype != DEFAULT_DTYPE:
        header["dtype"] = dtype
    d = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    little = "<f2" if dtype == "float16" else "<f4"
    d.update(np.ascontiguousarray(h.video, dtype=little).data)
    d.update(np.ascontiguousarray(h.audio, dtype=little).data)
    return d.hexdigest()


def table_fingerprint(half_digests: Iterable[tuple[str, str, int, str]]) -> str:
    """sha256 over sorted (split, game, half, digest) lines: independent of order and layout."""
    lines = sorted(f"{s}\t{g}\t{h}\t{d}" for s, g, h, d in half_digests)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _empty_counts(label_set: LabelSet) -> dict[str, Any]:
    return {
        "games": 0,
        "halves": 0,
        "events": 0,
        "frames": 0,
        "per_class": dict.fromkeys(label_set.classes, 0),
        "visibility": dict.fromkeys(VISIBILITIES, 0),
    }


def split_counts(counts: Mapping[str, Any], split: str) -> dict[str, Any]:
    """One split's counts from a manifest's ``counts``; zeros for a split an older manifest
    does not list (``challenge`` before schema 3)."""
    zero = {"games": 0, "halves": 0, "events": 0, "frames": 0, "per_class": {}}
    return {**zero, **(counts.get("per_split", {}).get(split) or {})}


def visibility_counts(counts: Mapping[str, Any]) -> dict[str, int]:
    """``{"visible": n, "not shown": m}`` of a counts dict (total or one split); before schema 3
    every event was visible."""
    v = counts.get("visibility")
    if v is None:
        return {"visible": int(counts.get("events", 0)), "not shown": 0}
    return {k: int(v.get(k, 0)) for k in VISIBILITIES}


class Counter:
    """Counts per split, class and visibility while halves are written; refuses duplicates."""

    def __init__(self, label_set: LabelSet | None = None) -> None:
        ls = label_set if label_set is not None else get_label_set(DEFAULT_LABEL_SET)
        self.games: dict[str, set[str]] = {s: set() for s in SPLITS}
        self.seen: set[tuple[str, int]] = set()
        self.total = _empty_counts(ls)
        self.per_split = {s: _empty_counts(ls) for s in SPLITS}
        self.per_raw = dict.fromkeys(ls.raw_labels, 0)

    def add(self, h: Half) -> None:
        key = (h.game, h.half)
        if key in self.seen:
            raise DataError(f"game {h.game!r} half {h.half} appears twice")
        other = [s for s in SPLITS if s != h.split and h.game in self.games[s]]
        if other:
            raise DataError(f"game {h.game!r} is in splits {other[0]!r} and {h.split!r}")
        self.seen.add(key)
        self.games[h.split].add(h.game)
        for c in (self.total, self.per_split[h.split]):
            c["halves"] += 1
            c["events"] += len(h.events)
            c["frames"] += h.n_frames
            for e in h.events:
                c["per_class"][e.label] += 1
                c["visibility"][e.visibility] += 1
        for e in h.events:
            self.per_raw[e.raw_label] += 1

    def result(self) -> dict[str, Any]:
        for s in SPLITS:
            self.per_split[s]["games"] = len(self.games[s])
        self.total["games"] = sum(len(g) for g in self.games.values())
        return {**self.total, "per_raw_label": self.per_raw, "per_split": self.per_split}


def load_manifest(fs: pafs.FileSystem, root: str, uri: str) -> Manifest:
    path = join(root, MANIFEST_NAME)
    if fs.get_file_info(path).type != pafs.FileType.File:
        raise DataError(f"{uri}: not a feature table ({MANIFEST_NAME} not found)")
    with fs.open_input_stream(path) as f:
        raw = f.read()
    try:
        d = json.loads(raw)
        m = Manifest.from_dict(d)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{uri}/{MANIFEST_NAME}: malformed manifest: {one_line(exc)}") from None
    if m.schema_version > SCHEMA_VERSION:
        raise DataError(
            f"{uri}: table schema version {m.schema_version} is newer than this avspot's "
            f"({SCHEMA_VERSION}); upgrade avspot"
        )
    if m.dtype not in FEATURE_DTYPES:
        raise DataError(f"{uri}/{MANIFEST_NAME}: unknown dtype {m.dtype!r}")
    try:
        m.vocabulary  # noqa: B018 - an unknown label set fails here, with the valid ones
    except DataError as exc:
        raise DataError(f"{uri}/{MANIFEST_NAME}: {exc}") from None
    return m


def read_manifest(uri: str, endpoint: str | None = None) -> Manifest:
    """The manifest of the table at ``uri``; DataError when there is none."""
    fs, root = resolve(uri, endpoint)
    with storage_errors(uri, "reading the manifest"):
        return load_manifest(fs, root, uri)

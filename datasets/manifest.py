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
from avspot.datasets.halves import SPLITS, Half
from avspot.datasets.labels import CLASSES, RAW_LABELS
from avspot.datasets.storage import join, resolve, storage_errors

# 1: files with path, split, bytes, halves. 2: each file also has "sha256" (of its bytes).
# Readers accept every version up to SCHEMA_VERSION; parts without a checksum are not hashed.
SCHEMA_VERSION = 2
MANIFEST_NAME = "manifest.json"
ENCODING = "video/audio: list<fixed_size_list<float32, D>> (one list per frame), row group per half"


def is_synthetic(source: str) -> bool:
    """Whether a table's ``source`` is generated data (``avspot data synth``)."""
    return source.lower().startswith("synth")


def source_note(source: str) -> str:
    """A few words saying which data a figure's numbers come from; a synthetic result never
    reads as a SoccerNet one."""
    if is_synthetic(source):
        return "SYNTHETIC data (avspot data synth), not SoccerNet"
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
    feature_dims: dict[str, int]
    encoding: str = ENCODING
    created: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # generator / ingest parameters

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "source": self.source,
            "seed": self.seed,
            "fingerprint": self.fingerprint,
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
        )


def half_digest(h: Half) -> str:
    """sha256 of a half's canonical content: header (JSON), then video and audio float32 bytes."""
    header = {
        "game": h.game,
        "half": int(h.half),
        "split": h.split,
        "fps": float(h.fps),
        "shape": [list(h.video.shape), list(h.audio.shape)],
        "events": [[e.frame, e.label, e.raw_label, e.position_ms] for e in h.events],
    }
    d = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    d.update(np.ascontiguousarray(h.video, dtype="<f4").data)
    d.update(np.ascontiguousarray(h.audio, dtype="<f4").data)
    return d.hexdigest()


def table_fingerprint(half_digests: Iterable[tuple[str, str, int, str]]) -> str:
    """sha256 over sorted (split, game, half, digest) lines: independent of order and layout."""
    lines = sorted(f"{s}\t{g}\t{h}\t{d}" for s, g, h, d in half_digests)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _empty_counts() -> dict[str, Any]:
    return {
        "games": 0,
        "halves": 0,
        "events": 0,
        "frames": 0,
        "per_class": dict.fromkeys(CLASSES, 0),
    }


class Counter:
    """Counts per split and class while halves are written; refuses duplicates."""

    def __init__(self) -> None:
        self.games: dict[str, set[str]] = {s: set() for s in SPLITS}
        self.seen: set[tuple[str, int]] = set()
        self.total = _empty_counts()
        self.per_split = {s: _empty_counts() for s in SPLITS}
        self.per_raw = dict.fromkeys(RAW_LABELS, 0)

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
    return m


def read_manifest(uri: str, endpoint: str | None = None) -> Manifest:
    """The manifest of the table at ``uri``; DataError when there is none."""
    fs, root = resolve(uri, endpoint)
    with storage_errors(uri, "reading the manifest"):
        return load_manifest(fs, root, uri)

"""The recorded-grid JSON file: its format, validation, and safe appends from several processes.

One JSON object (``format`` "avspot-grid-recording", ``version`` 1)::

    {"format": "avspot-grid-recording", "version": 1,
     "header": {
       "preset": "cpu", "metric": "val_average_map", "max_epochs": 8, "seed": 0,
       "axes": {"fusion": [{"label": "video", "set": {"fusion": "video"}}, ...],
                "pooling": [{"label": "netvlad-16", "set": {"pooling": "netvlad", "clusters": 16}}],
                "window_s": [20.0, 30.0, 60.0], ...},       # a bare value v: label v, set {axis: v}
       "fixed": {"dropout": 0.4, "schedule": "step", ...},   # trainer overrides of every config
       "data": {"source": "synthetic", "fingerprint": "...", "params": {...}, "counts": {...}},
       "created": "2026-...Z", "machine": {...}, "command": "...",
       "runs": [{"started", "command", "machine"}, ...]},   # one per recording session
     "entries": [                                          # one per configuration, any order
       {"key": "fusion=video pooling=netvlad-16 window_s=20.0 lr=0.001",
        "point": {"fusion": "video", "pooling": "netvlad-16", "window_s": 20.0, "lr": 0.001},
        "overrides": {...},                  # the --set strings the point was trained with
        "train_config": {...},               # the resolved flat TrainConfig
        "epochs": 8, "stop_reason": "max_epochs", "best_epoch": 7,
        "curves": {"val_average_map": [...], "val_map": [...], "train_loss": [...], ...},
        "epoch_s": [...], "train_s": [...],  # seconds per epoch: train + validation, train only
        "wall_s": 12.3, "recorded": "2026-...Z", "host": "..."}]}

The grid is the product of the axes (axis order = the order of ``axes``); a configuration is
found by its ``key`` (``point_key``). ``curves`` hold one value per epoch run (fewer than
``max_epochs`` when the trainer stopped early); ``curves[header.metric]`` is required. A value
that was not finite (a diverged run) is ``null``; the replay reports it as NaN, as the real
trial would, and the curves and the grid's best skip it.

Appends take an exclusive lock (``fcntl.flock`` on ``.NAME.work/lock`` next to the file), re-read
the file, merge the entry and replace the file atomically; several recorders can share a grid:
each claims a configuration first (``O_EXCL`` files in ``.NAME.work/claims``; a claim whose
process is gone is taken over).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "avspot-grid-recording"
VERSION = 1
# Header fields that must agree when a recording is resumed (the rest describes the sessions).
IDENTITY_FIELDS = ("metric", "max_epochs", "seed", "axes", "fixed")

Label = str | int | float | bool | None


class RecordingError(ValueError):
    """A recording file that is malformed, incomplete or does not match the requested grid."""


# ---- grid ---------------------------------------------------------------------------------------


def axis_items(axes: Mapping[str, Sequence[Any]]) -> dict[str, list[dict[str, Any]]]:
    """Axes with every value spelled out as ``{"label": L, "set": {key: value}}``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, values in axes.items():
        items = []
        for v in values:
            if isinstance(v, Mapping):
                if "label" not in v:
                    raise RecordingError(f"axis {name!r}: value {v!r} has no 'label'")
                items.append({"label": v["label"], "set": dict(v.get("set", {name: v["label"]}))})
            else:
                items.append({"label": v, "set": {name: v}})
        labels = [str(i["label"]) for i in items]
        if not items or len(set(labels)) != len(labels):
            raise RecordingError(f"axis {name!r}: needs distinct labels, got {labels}")
        out[name] = items
    return out


def axis_labels(axes: Mapping[str, Sequence[Any]]) -> dict[str, list[Label]]:
    """Axis name -> its labels (the categorical choices a searcher picks from)."""
    return {name: [i["label"] for i in items] for name, items in axis_items(axes).items()}


def point_key(point: Mapping[str, Any], names: Sequence[str]) -> str:
    """Canonical key of a grid point: ``"axis=label axis=label ..."`` in axis order."""
    return " ".join(f"{n}={point[n]}" for n in names)


def grid_points(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Label]]:
    """Every grid point (axis -> label), in recording order (the first axis varies slowest)."""
    labels = axis_labels(axes)
    names = list(labels)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*labels.values())]


def point_overrides(axes: Mapping[str, Sequence[Any]], point: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer overrides that a grid point sets (the union of its axis values' ``set``)."""
    out: dict[str, Any] = {}
    for name, items in axis_items(axes).items():
        item = next(i for i in items if i["label"] == point[name])
        out.update(item["set"])
    return out


class ReplaySpace:
    """Optuna define-by-run space for replays: one categorical per axis, over its labels.

    Lives here (not in replay.py) so that Ray workers can unpickle it by name: Tune pickles the
    searcher, and with it this space, when it saves the experiment state.
    """

    def __init__(self, axes: Mapping[str, Sequence[Label]]) -> None:
        self.axes = {k: list(v) for k, v in axes.items()}

    def __call__(self, trial: Any) -> None:
        for name, labels in self.axes.items():
            trial.suggest_categorical(name, labels)
        return None


# ---- reading ------------------------------------------------------------------------------------


@dataclass
class Recording:
    """A loaded, validated recording."""

    path: Path
    header: dict[str, Any]
    entries: dict[str, dict[str, Any]]  # key -> entry

    @property
    def metric(self) -> str:
        return str(self.header["metric"])

    @property
    def axes(self) -> dict[str, list[Label]]:
        return axis_labels(self.header["axes"])

    @property
    def keys(self) -> list[str]:
        """Keys of the whole grid, in recording order."""
        names = list(self.axes)
        return [point_key(p, names) for p in grid_points(self.header["axes"])]

    def missing(self) -> list[str]:
        return [k for k in self.keys if k not in self.entries]

    def curve(self, key: str, name: str | None = None) -> list[float]:
        """One configuration's per-epoch values (NaN where the recording has null)."""
        values = self.entries[key]["curves"][name or self.metric]
        return [math.nan if v is None else float(v) for v in values]

    @property
    def total_epochs(self) -> int:
        """Trial-epochs of the full grid (each configuration's epochs as recorded)."""
        return sum(int(e["epochs"]) for e in self.entries.values())

    @property
    def total_seconds(self) -> float:
        return sum(sum(e.get("epoch_s") or [0.0]) for e in self.entries.values())

    def best(self) -> tuple[float, str, int]:
        """(the grid's best metric value over every configuration and epoch, its key, epoch)."""
        best = (-math.inf, "", 0)
        for key in self.keys:
            if key not in self.entries:
                continue
            for epoch, v in enumerate(self.curve(key), start=1):
                if not math.isnan(v) and v > best[0]:
                    best = (v, key, epoch)
        return best

    def require_complete(self) -> None:
        missing = self.missing()
        if missing:
            raise RecordingError(
                f"{self.path}: {len(missing)} of {len(self.keys)} configurations are not "
                f"recorded yet (e.g. {missing[0]!r}); finish the recording first (rerun "
                "record.py with the same arguments: it continues where it stopped)"
            )


def load(path: str | os.PathLike[str]) -> Recording:
    """Read and validate a recording (complete or not)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such recording") from None
    except json.JSONDecodeError as exc:
        raise RecordingError(f"{path}: not JSON ({exc})") from None
    return from_dict(doc, path)


def from_dict(doc: Mapping[str, Any], path: Path = Path("<memory>")) -> Recording:
    """Validate a recording document: format, header, and every entry against the grid."""
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise RecordingError(f"{path}: not an {FORMAT} v{VERSION} file")
    header = dict(doc.get("header") or {})
    for field in ("metric", "max_epochs", "axes"):
        if field not in header:
            raise RecordingError(f"{path}: header has no {field!r}")
    names = list(axis_labels(header["axes"]))
    grid = {point_key(p, names) for p in grid_points(header["axes"])}
    entries: dict[str, dict[str, Any]] = {}
    for e in doc.get("entries") or []:
        point = e.get("point") or {}
        if set(point) != set(names):
            raise RecordingError(f"{path}: entry point {point} does not name the axes {names}")
        key = point_key(point, names)
        if key not in grid:
            raise RecordingError(f"{path}: entry {key!r} is not a point of the grid")
        if key in entries:
            raise RecordingError(f"{path}: entry {key!r} appears twice")
        curves = e.get("curves") or {}
        n = int(e.get("epochs", 0))
        values = curves.get(header["metric"])
        if n < 1 or values is None or len(values) != n:
            raise RecordingError(
                f"{path}: entry {key!r} needs {header['metric']!r} for each of its {n} epochs"
            )
        if not all(v is None or (isinstance(v, int | float) and math.isfinite(v)) for v in values):
            raise RecordingError(
                f"{path}: entry {key!r}: {header['metric']} must be numbers or null"
            )
        entries[key] = dict(e, key=key)
    return Recording(path=path, header=header, entries=entries)


# ---- writing ------------------------------------------------------------------------------------


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def work_dir(path: Path) -> Path:
    """``.NAME.work`` beside the recording: the lock file and the claims of running recorders."""
    return path.parent / f".{path.name}.work"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive lock on the recording for a read-modify-write (blocks until it is free)."""
    d = work_dir(path)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def identity(header: Mapping[str, Any]) -> dict[str, Any]:
    """The header fields that define the grid, plus the data's fingerprint."""
    out = {k: header.get(k) for k in IDENTITY_FIELDS}
    out["data_fingerprint"] = (header.get("data") or {}).get("fingerprint")
    return out


def check_same_grid(existing: Mapping[str, Any], header: Mapping[str, Any], path: Path) -> None:
    """Refuse to mix configurations of different grids or data in one file."""
    a, b = identity(existing), identity(header)
    # JSON round trip: tuples become lists, etc.
    a, b = json.loads(json.dumps(a)), json.loads(json.dumps(b))
    diff = sorted(k for k in a if a[k] != b[k])
    if diff:
        raise RecordingError(
            f"{path} was recorded with other {', '.join(diff)}; use another --out, or the same "
            "arguments as before to continue it"
        )


def start_session(path: Path, header: dict[str, Any], session: dict[str, Any]) -> Recording:
    """Create the file with ``header`` or check that the existing one records the same grid;
    append ``session`` to ``header.runs``. Returns the recording as it is now."""
    with locked(path):
        if path.exists():
            doc = json.loads(path.read_text())
            rec = from_dict(doc, path)
            check_same_grid(rec.header, header, path)
        else:
            doc = {"format": FORMAT, "version": VERSION, "header": dict(header), "entries": []}
        doc["header"].setdefault("runs", []).append(session)
        atomic_write_json(path, doc)
        return from_dict(doc, path)


def append_entry(path: Path, entry: Mapping[str, Any]) -> int:
    """Merge one configuration's entry into the file (replacing one with the same key), under
    the lock; returns how many configurations the file holds now."""
    with locked(path):
        doc = json.loads(path.read_text())
        names = list(axis_labels(doc["header"]["axes"]))
        key = point_key(entry["point"], names)
        kept = [e for e in doc["entries"] if point_key(e["point"], names) != key]
        doc["entries"] = [*kept, dict(entry, key=key)]
        from_dict(doc, path)  # never write a file that would not load
        atomic_write_json(path, doc)
        return len(doc["entries"])


def _claim_file(path: Path, key: str) -> Path:
    return work_dir(path) / "claims" / hashlib.sha1(key.encode()).hexdigest()


def _alive(info: Mapping[str, Any]) -> bool:
    if info.get("host") != socket.gethostname():
        return True  # another machine's claim: cannot tell, respect it
    try:
        os.kill(int(info.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


def claim(path: Path, key: str) -> bool:
    """Claim a configuration for this process; False when a live recorder holds it."""
    f = _claim_file(path, key)
    f.parent.mkdir(parents=True, exist_ok=True)
    info = {"key": key, "pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(f.read_text() or "{}")
                age = time.time() - f.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile
            except (OSError, json.JSONDecodeError):
                held, age = {}, 0.0
            if (held and _alive(held)) or (not held and age < 60):
                return False  # a live recorder's claim (or one being written right now)
            f.unlink(missing_ok=True)  # a killed recorder's claim: take it over
            continue
        with os.fdopen(fd, "w") as out:
            json.dump(info, out)
        return True
    return False


def release(path: Path, key: str) -> None:
    _claim_file(path, key).unlink(missing_ok=True)


def cleanup_work_dir(path: Path) -> None:
    """Remove ``.NAME.work`` once no claim is left in it (best effort)."""
    d = work_dir(path)
    claims = d / "claims"
    if claims.exists() and any(claims.iterdir()):
        return
    shutil.rmtree(d, ignore_errors=True)

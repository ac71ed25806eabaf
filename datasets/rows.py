"""One half <-> one Arrow row of a feature table, and the checks a half passes before it is written.

Arrow encoding, one row per half (schema 3)::

    game: string   half: int8   split: string   fps: float64   n_frames: int32
    video: list<fixed_size_list<T, Dv>>     # (N, Dv): one fixed-size list per frame
    audio: list<fixed_size_list<T, Da>>     # (N, Da); absent in a table without audio (Da = 0)
    events: list<struct<frame: int32, label: string, raw_label: string, position_ms: int64,
                        visibility: string>>
    label_set: string                       # v1 | v2

``T`` is float32 or float16 (the table's dtype). The frames of a half are one contiguous buffer
inside Arrow, so ``(N, D)`` comes back as a zero-copy numpy view of the decoded column
(``copy=False``) in the stored dtype (float16 is not upcast on the host). Rows written before
schema 3 have no ``label_set`` column and no event ``visibility``: they read as v1, visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from avspot.datasets.errors import DataError
from avspot.datasets.halves import (
    DEFAULT_DTYPE,
    SPLITS,
    UNLABELLED_SPLITS,
    Event,
    Half,
    check_dtype,
)
from avspot.datasets.labels import DEFAULT_LABEL_SET, HALVES, VISIBILITIES, LabelSet, get_label_set

EVENT_TYPE = pa.struct(
    [
        ("frame", pa.int32()),
        ("label", pa.string()),
        ("raw_label", pa.string()),
        ("position_ms", pa.int64()),
        ("visibility", pa.string()),
    ]
)
_ARROW_FLOAT = {"float32": pa.float32(), "float16": pa.float16()}
_FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504


def table_schema(
    video_dim: int = 512, audio_dim: int = 512, dtype: str = DEFAULT_DTYPE
) -> pa.Schema:
    """Arrow schema of a feature table's rows (no ``audio`` column when ``audio_dim`` is 0)."""
    t = _ARROW_FLOAT[dtype]
    fields = [
        ("game", pa.string()),
        ("half", pa.int8()),
        ("split", pa.string()),
        ("fps", pa.float64()),
        ("n_frames", pa.int32()),
        ("video", pa.list_(pa.list_(t, video_dim))),
    ]
    if audio_dim > 0:
        fields.append(("audio", pa.list_(pa.list_(t, audio_dim))))
    fields += [("events", pa.list_(EVENT_TYPE)), ("label_set", pa.string())]
    return pa.schema(fields)


def dtype_of(x: np.ndarray) -> str:
    """The table dtype a feature array is stored as: float16 stays, anything else is float32."""
    return "float16" if x.dtype == np.float16 else "float32"


def as_stored(x: np.ndarray, dtype: str, where: str, name: str) -> np.ndarray:
    """``x`` as a contiguous array of ``dtype``; DataError when float16 cannot hold a value."""
    if dtype == "float16" and x.dtype != np.float16 and x.size:
        big = np.abs(x) > _FLOAT16_MAX
        if big.any():
            frame = int(np.flatnonzero(big.any(axis=1))[0])
            raise DataError(
                f"{where}: {name} value {float(x[np.unravel_index(np.argmax(big), x.shape)]):g} "
                f"at frame {frame} overflows float16 (|x| > {_FLOAT16_MAX:g}); use --dtype float32"
            )
    return np.ascontiguousarray(x, dtype=np.float16 if dtype == "float16" else np.float32)


def _matrix_column(x: np.ndarray) -> pa.Array:
    """(N, D) float32/float16 -> one-row list<fixed_size_list<T, D>> array sharing x's buffer."""
    flat = pa.array(x.reshape(-1))  # zero-copy for a contiguous float array
    inner = pa.FixedSizeListArray.from_arrays(flat, x.shape[1])
    return pa.ListArray.from_arrays(pa.array([0, x.shape[0]], pa.int32()), inner)


def _matrix_from_scalar(value: pa.ListScalar, copy: bool) -> np.ndarray:
    frames = value.values  # FixedSizeListArray of this row's frames
    width = frames.type.list_size
    flat = frames.flatten().to_numpy(zero_copy_only=True)  # (N * D,), the stored dtype
    out = flat.reshape(-1, width)  # (N, D)
    return out.copy() if copy else out


def check_half(h: Half, label_set: LabelSet | None = None) -> None:
    """DataError (naming the game and half) unless ``h`` can be written: a known split and half,
    2-D features of equal length, events of ``label_set`` (default: the half's own) inside the
    half, and no events in an unlabelled split (``challenge``)."""
    where = f"game {h.game!r} half {h.half}"
    if h.split not in SPLITS:
        raise DataError(f"{where}: unknown split {h.split!r} (expected one of {', '.join(SPLITS)})")
    if h.half not in HALVES:
        raise DataError(f"{where}: half must be 1 or 2")
    try:
        ls = label_set if label_set is not None else get_label_set(h.label_set)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    for name, x in (("video", h.video), ("audio", h.audio)):
        if not isinstance(x, np.ndarray) or x.ndim != 2:
            raise DataError(f"{where}: {name} must be a 2-D array (N, D)")
    if h.video.shape[1] == 0:
        raise DataError(f"{where}: video has width 0 (every table has video features)")
    if h.video.shape[0] != h.audio.shape[0]:
        raise DataError(
            f"{where}: video has {h.video.shape[0]} frames but audio has {h.audio.shape[0]}"
        )
    if h.events and h.split in UNLABELLED_SPLITS:
        raise DataError(
            f"{where}: split {h.split!r} has no labels (never scored) but the half has "
            f"{len(h.events)} events"
        )
    n = h.video.shape[0]
    for e in h.events:
        if (
            e.label not in ls.classes
            or e.raw_label not in ls.raw_labels
            or ls.class_of(e.raw_label) != e.label
        ):
            raise DataError(
                f"{where}: event label {e.raw_label!r}/{e.label!r} is not a "
                f"{ls.name} label (label set {ls.name}: {', '.join(ls.raw_labels)})"
            )
        if e.visibility not in VISIBILITIES:
            raise DataError(
                f"{where}: event visibility {e.visibility!r} (expected one of "
                f"{', '.join(map(repr, VISIBILITIES))})"
            )
        if not 0 <= e.frame < n:
            raise DataError(f"{where}: event frame {e.frame} outside the half's {n} frames")


def half_to_table(h: Half, dtype: str | None = None, label_set: LabelSet | None = None) -> pa.Table:
    """One half as a one-row Arrow table in the feature-table schema, its features stored as
    ``dtype`` (default: float16 when the half's video is float16, else float32)."""
    check_half(h, label_set)
    dtype = dtype or dtype_of(h.video)
    check_dtype(dtype)
    where = f"game {h.game!r} half {h.half}"
    video = as_stored(h.video, dtype, where, "video")
    events = pa.array(
        [
            [
                {
                    "frame": e.frame,
                    "label": e.label,
                    "raw_label": e.raw_label,
                    "position_ms": e.position_ms,
                    "visibility": e.visibility,
                }
                for e in h.events
            ]
        ],
        pa.list_(EVENT_TYPE),
    )
    schema = table_schema(h.video.shape[1], h.audio.shape[1], dtype)
    columns = [
        pa.array([h.game], pa.string()),
        pa.array([h.half], pa.int8()),
        pa.array([h.split], pa.string()),
        pa.array([float(h.fps)], pa.float64()),
        pa.array([h.n_frames], pa.int32()),
        _matrix_column(video),
    ]
    if h.audio.shape[1] > 0:
        columns.append(_matrix_column(as_stored(h.audio, dtype, where, "audio")))
    columns += [events, pa.array([h.label_set], pa.string())]
    return pa.Table.from_arrays(columns, schema=schema)


def _no_audio(n: int, video: np.ndarray) -> np.ndarray:
    return np.zeros((n, 0), video.dtype)


def halves_from_arrow(data: pa.Table | pa.RecordBatch, *, copy: bool = True) -> list[Half]:
    """Rows of a feature-table Arrow table/batch (e.g. a Ray ``batch_format="pyarrow"`` batch).

    With ``copy=False`` the arrays are read-only zero-copy views of the Arrow buffers.
    """
    batches = data.to_batches() if isinstance(data, pa.Table) else [data]
    out: list[Half] = []
    for b in batches:
        cols = {name: b.column(name) for name in b.schema.names}
        for i in range(b.num_rows):
            video = _matrix_from_scalar(cols["video"][i], copy)
            audio = (
                _matrix_from_scalar(cols["audio"][i], copy)
                if "audio" in cols
                else _no_audio(video.shape[0], video)
            )
            out.append(
                Half(
                    game=cols["game"][i].as_py(),
                    half=int(cols["half"][i].as_py()),
                    split=cols["split"][i].as_py(),
                    fps=float(cols["fps"][i].as_py()),
                    video=video,
                    audio=audio,
                    events=[Event(**e) for e in (cols["events"][i].as_py() or [])],
                    label_set=(
                        cols["label_set"][i].as_py() if "label_set" in cols else DEFAULT_LABEL_SET
                    ),
                )
            )
    return out


def _as_matrix(value: Any) -> np.ndarray:
    """A row's feature cell in any form Ray or Arrow hands out -> a fresh (N, D) array (float16
    stays float16, anything else becomes float32)."""
    if isinstance(value, pa.Scalar):
        return _matrix_from_scalar(value, copy=True)
    if isinstance(value, np.ndarray) and value.dtype != object:
        return np.array(value, dtype=np.dtype(dtype_of(value)), copy=True)
    if isinstance(value, np.ndarray | list | tuple):
        if len(value) == 0:
            return np.zeros((0, 0), np.float32)
        first = value[0]
        if isinstance(first, np.ndarray) and first.dtype != object:
            return np.stack(value).astype(np.dtype(dtype_of(first)), copy=True)  # (N, D)
        return np.asarray([np.asarray(r, dtype=np.float32) for r in value], dtype=np.float32)
    raise DataError(f"cannot read a feature matrix from a {type(value).__name__}")


def half_from_row(row: Mapping[str, Any], dtype: str | None = None) -> Half:
    """A Ray Data / Arrow row (dict) back into a Half, with fresh writable arrays.

    Ray hands out read-only arrays from its object store (or Python lists from ``iter_rows``);
    both are copied here. Python lists carry no dtype: they become float32 unless ``dtype``
    (the manifest's) says otherwise; arrays keep theirs. For speed, iterate Ray batches with
    ``batch_format="pyarrow"`` and use ``halves_from_arrow`` (the stored dtype, zero-copy).
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
            visibility=str(e.get("visibility") or "visible"),
        )
        for e in (list(events_raw) if events_raw is not None else [])
    ]

    def scalar(v: Any) -> Any:
        return v.as_py() if isinstance(v, pa.Scalar) else v

    video = _as_matrix(row["video"])
    audio = _as_matrix(row["audio"]) if "audio" in row else _no_audio(video.shape[0], video)
    if dtype is not None:
        check_dtype(dtype)
        video, audio = video.astype(dtype, copy=False), audio.astype(dtype, copy=False)
    if audio.shape[0] != video.shape[0] and audio.size == 0:
        audio = _no_audio(video.shape[0], video)
    label_set = scalar(row.get("label_set")) or DEFAULT_LABEL_SET
    return Half(
        game=str(scalar(row["game"])),
        half=int(scalar(row["half"])),
        split=str(scalar(row["split"])),
        fps=float(scalar(row["fps"])),
        video=video,
        audio=audio,
        events=events,
        label_set=str(label_set),
    )

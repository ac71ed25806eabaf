"""SoccerNet JSON files: `Labels.json` (v1) or `Labels-v2.json` (v2) and `results_spotting.json`.

Every reader and writer takes a `LabelSet` (default v1). Predictions file, one per game at
`<out>/<league>/<season>/<game>/results_spotting.json`: `{"UrlLocal": game, "predictions":
[{"gameTime": "1 - 12:34", "label": "card", "position": "754000", "half": "1", "confidence":
"0.9"}]}`, the label one of the label set's classes (v1 card/subs/soccer, v2 the 17 names). The
official tools write every value as a string; the official evaluator reads `int(position)`
(milliseconds), `int(half)`, the label through its event dictionary and the confidence as a
number, and ignores `gameTime`. Reading accepts strings or JSON numbers for position, half and
confidence. Anything else (not JSON, no `predictions` list, a label outside the label set, a
half other than 1 or 2, a negative position, a confidence that is no number) raises `DataError`
naming the file and the entry; the official evaluator skips unknown v2 labels silently instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from avspot.avmodels.halfspots import (
    FRAMERATE,
    detections_to_dense,
    events_to_dense,
    official_half_frames,
    position_to_frame,
)
from avspot.datasets.atomic import write_json_atomic
from avspot.datasets.errors import DataError
from avspot.datasets.labels import (
    HALVES,
    LABEL_SETS,
    V1,
    VISIBILITIES,
    LabelSet,
    format_game_time,
    get_label_set,
    parse_game_time,
)

PREDICTIONS_FILE = "results_spotting.json"
LABEL_FILES: dict[str, str] = {ls.labels_file: ls.name for ls in LABEL_SETS.values()}
_HALVES = {"1": 1, "2": 2, 1: 1, 2: 2}  # anything else goes the slow way (and is checked)
_get = itemgetter


@dataclass(frozen=True)
class Predictions:
    """Columns of one game's predictions in file order (order matters: in a frame, last wins)."""

    half: np.ndarray  # (M,) int64, 1 or 2
    position_ms: np.ndarray  # (M,) int64
    label: np.ndarray  # (M,) int64 class index in the label set (v1: card 0, subs 1, soccer 2)
    confidence: np.ndarray  # (M,) float64

    def frames(self, framerate: float = FRAMERATE) -> np.ndarray:
        """Official frames: `int(framerate * (position / 1000))`."""
        return position_to_frame(self.position_ms, framerate)


@dataclass(frozen=True)
class Labels:
    """Columns of one game's annotations: half, position in ms, class index, official value."""

    half: np.ndarray  # (E,) int64
    position_ms: np.ndarray  # (E,) int64
    label: np.ndarray  # (E,) int64 class index in the label set
    value: np.ndarray | None = None  # (E,) float64: 1 visible, -1 "not shown"; None: all 1

    def values(self) -> np.ndarray:
        """(E,) 1 per visible event, -1 per event not shown (the official target value)."""
        return np.ones(self.half.size) if self.value is None else self.value

    def frames(self, framerate: float = FRAMERATE) -> np.ndarray:
        """Official frames: `int(framerate * position / 1000)`, `framerate * seconds` from gameTime."""
        return position_to_frame(self.position_ms, framerate)


# ---- reading -------------------------------------------------------------------------------------


def load_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; DataError naming the file when it is missing or malformed."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: malformed JSON ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def _label_set(label_set: LabelSet | str) -> LabelSet:
    return get_label_set(label_set) if isinstance(label_set, str) else label_set


def unknown_label(where: str, label: Any, ls: LabelSet, expected: tuple[str, ...]) -> DataError:
    """The one-line error for a label outside ``ls``, naming the label set it belongs to."""
    others = [o.name for o in LABEL_SETS.values() if o is not ls and label in o.raw_labels]
    hint = f"; {label!r} is a label of {others[0]}" if others else ""
    return DataError(
        f"{where}: unknown label {label!r} "
        f"(label set {ls.name}: expected one of {', '.join(expected)}{hint})"
    )


def read_predictions(path: str | os.PathLike[str], label_set: LabelSet | str = V1) -> Predictions:
    """Read one `results_spotting.json`."""
    return parse_predictions(load_json(path), source=str(path), label_set=label_set)


def parse_predictions(
    content: Any, source: str = "<predictions>", label_set: LabelSet | str = V1
) -> Predictions:
    """Columns of a `results_spotting.json` dict, validated against ``label_set``'s classes."""
    ls = _label_set(label_set)
    preds = content.get("predictions") if isinstance(content, Mapping) else None
    if not isinstance(preds, list):
        raise DataError(f"{source}: expected an object with a 'predictions' list")
    index = ls.class_index
    try:  # fast path: the common, well-formed file (each column in one C-level pass)
        n = len(preds)
        out = Predictions(
            np.fromiter(map(_HALVES.__getitem__, map(_get("half"), preds)), np.int64, n),
            np.fromiter(map(int, map(_get("position"), preds)), np.int64, n),
            np.fromiter(map(index.__getitem__, map(_get("label"), preds)), np.int64, n),
            np.fromiter(map(float, map(_get("confidence"), preds)), np.float64, n),
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        half, position, label, confidence = _parse_slow(preds, source, ls)
        out = Predictions(*_columns(half, position, label, confidence))
    _check_columns(out.half, out.position_ms, source, "prediction")
    return out


def _parse_slow(preds: list, source: str, ls: LabelSet) -> tuple[list, list, list, list]:
    """Entry by entry, to name the first bad one."""
    half, position, label, confidence = [], [], [], []
    index = ls.class_index
    for i, p in enumerate(preds):
        where = f"{source}: prediction {i}"
        if not isinstance(p, Mapping):
            raise DataError(f"{where}: expected an object, got {type(p).__name__}")
        for key in ("half", "position", "label", "confidence"):
            if key not in p:
                raise DataError(f"{where}: missing {key!r}")
        if not isinstance(p["label"], str) or p["label"] not in index:
            raise unknown_label(where, p["label"], ls, ls.classes)
        half.append(_to_int(p["half"], where, "half"))
        position.append(_to_int(p["position"], where, "position"))
        label.append(index[p["label"]])
        try:
            if isinstance(p["confidence"], bool | list | dict) or p["confidence"] is None:
                raise TypeError
            confidence.append(float(p["confidence"]))
        except (TypeError, ValueError):
            raise DataError(f"{where}: confidence {p['confidence']!r} is not a number") from None
    return half, position, label, confidence


def _columns(half: Any, position: Any, label: Any, value: Any) -> tuple[np.ndarray, ...]:
    """The four columns of predictions or labels: int64 half, position (ms), class; float64
    confidence or target value."""
    ints = (np.asarray(c, dtype=np.int64) for c in (half, position, label))
    return (*ints, np.asarray(value, dtype=np.float64))


def _to_int(value: Any, where: str, key: str) -> int:
    """`int(value)` as the official reader, plus decimal strings such as "754000.0"."""
    try:
        if isinstance(value, bool | list | dict) or value is None:
            raise TypeError
        try:
            out = int(value)
        except ValueError:
            out = int(float(value))
        if abs(out) >= 2**53:
            raise OverflowError
        return out
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: {key} {value!r} is not an integer") from None


def _check_columns(half: np.ndarray, position: np.ndarray, source: str, what: str) -> None:
    bad = np.flatnonzero((half != 1) & (half != 2))
    if bad.size:
        raise DataError(f"{source}: {what} {bad[0]}: half {half[bad[0]]} is not 1 or 2")
    bad = np.flatnonzero(position < 0)
    if bad.size:
        raise DataError(f"{source}: {what} {bad[0]}: negative position {position[bad[0]]} ms")


def read_labels(path: str | os.PathLike[str], label_set: LabelSet | str = V1) -> Labels:
    """Read one `Labels.json` (v1) or `Labels-v2.json` (v2).

    A file named after the other label set's label file is refused (the official evaluator with
    ``version=1`` and its default ``Labels-v2.json`` would keep only the cards, silently).
    """
    ls = _label_set(label_set)
    name = Path(path).name
    if LABEL_FILES.get(name, ls.name) != ls.name:
        raise DataError(
            f"{path}: a {LABEL_FILES[name]} label file ({name}), but the label set is {ls.name} "
            f"(reads {ls.labels_file})"
        )
    return parse_labels(load_json(path), source=str(path), label_set=ls)


def parse_labels(content: Any, source: str = "<labels>", label_set: LabelSet | str = V1) -> Labels:
    """Columns of a `Labels.json` / `Labels-v2.json` dict, validated.

    As the official `label2vector`: the half is the gameTime's first digit; the position is
    `int(annotation["position"])` ms when present, else the gameTime's minutes and seconds; the
    value is -1 when `visibility` is "not shown", else 1; the class is the label set's (v1: the
    first of card/subs/soccer the label contains, v2: the label itself). Unlike the official
    reader, which skips them silently, labels outside the label set's raw labels and unknown
    visibilities raise DataError.
    """
    ls = _label_set(label_set)
    annotations = content.get("annotations") if isinstance(content, Mapping) else None
    if not isinstance(annotations, list):
        raise DataError(f"{source}: expected an object with an 'annotations' list")
    index = ls.class_index
    half, position, label, value = [], [], [], []
    for i, a in enumerate(annotations):
        where = f"{source}: annotation {i}"
        if not isinstance(a, Mapping) or "gameTime" not in a or "label" not in a:
            raise DataError(f"{where}: expected an object with 'gameTime' and 'label'")
        try:
            game_half, seconds = parse_game_time(a["gameTime"])
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        if not isinstance(a["label"], str) or a["label"] not in ls.raw_labels:
            raise unknown_label(where, a["label"], ls, ls.raw_labels)
        visibility = a.get("visibility", VISIBILITIES[0])
        if visibility not in VISIBILITIES:
            raise DataError(
                f"{where}: visibility {visibility!r} (expected {' or '.join(VISIBILITIES)})"
            )
        half.append(game_half)
        if "position" in a:
            position.append(_to_int(a["position"], where, "position"))
        else:
            position.append(1000 * seconds)
        label.append(index[ls.class_of(a["label"])])
        value.append(-1.0 if visibility == "not shown" else 1.0)
    out = Labels(*_columns(half, position, label, value))
    _check_columns(out.half, out.position_ms, source, "annotation")
    return out


# ---- discovery -----------------------------------------------------------------------------------


def find_games(root: str | os.PathLike[str], filename: str) -> dict[str, Path]:
    """{game: file} for every `filename` under root; game = the folder path relative to root."""
    root = Path(root)
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if filename in filenames:
            game = Path(dirpath).relative_to(root).as_posix()
            found["" if game == "." else game] = Path(dirpath) / filename
    return found


def find_label_files(root: str | os.PathLike[str]) -> dict[str, dict[str, Path]]:
    """{label set name: {game: its label file}} for every `Labels.json` and `Labels-v2.json`
    under root (one walk); a label set with no file is absent."""
    root = Path(root)
    found: dict[str, dict[str, Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename, name in LABEL_FILES.items():
            if filename in filenames:
                game = Path(dirpath).relative_to(root).as_posix()
                found.setdefault(name, {})["" if game == "." else game] = Path(dirpath) / filename
    return found


# ---- writing -------------------------------------------------------------------------------------


def predictions_json(
    game: str,
    predictions: Iterable[tuple[int, int, str, float]],
    label_set: LabelSet | str = V1,
) -> dict[str, Any]:
    """`results_spotting.json` content from (half, position_ms, label, confidence) tuples."""
    ls = _label_set(label_set)
    rows = []
    for half, position_ms, label, confidence in predictions:
        if label not in ls.class_index:
            raise unknown_label(f"game {game}", label, ls, ls.classes)
        rows.append(
            {
                "gameTime": format_game_time(int(half), int(position_ms) // 1000),
                "label": label,
                "position": str(int(position_ms)),
                "half": str(int(half)),
                "confidence": repr(float(confidence)),
            }
        )
    return {"UrlLocal": game, "predictions": rows}


def write_predictions(
    out_dir: str | os.PathLike[str],
    game: str,
    predictions: Iterable[tuple[int, int, str, float]],
    label_set: LabelSet | str = V1,
) -> Path:
    """Write `<out_dir>/<game>/results_spotting.json` atomically; returns its path."""
    path = Path(out_dir) / game / PREDICTIONS_FILE
    write_json_atomic(path, predictions_json(game, predictions, label_set))
    return path


# ---- dense vectors (the official evaluator's form; tests compare against it) -----------------


def dict_to_dense(
    content: Mapping,
    kind: str,
    framerate: float = FRAMERATE,
    n_frames: int | None = None,
    label_set: LabelSet | str = V1,
) -> tuple[np.ndarray, np.ndarray]:
    """Two (N, C) halves from a ``results_spotting.json`` dict (``kind="predictions"``:
    detections, the official ``predictions2vector``) or a labels dict (``kind="labels"``:
    targets, the official ``label2vector``), by the official rules."""
    ls = _label_set(label_set)
    n = official_half_frames(framerate) if n_frames is None else n_frames
    if kind == "predictions":
        p = parse_predictions(content, source="<predictions>", label_set=ls)
        columns = (position_to_frame(p.position_ms, framerate), p.label, p.confidence)
        return _per_half(p.half, columns, detections_to_dense, n, ls)
    if kind != "labels":
        raise ValueError(f"kind {kind!r}: expected 'predictions' or 'labels'")
    lab = parse_labels(content, source="<labels>", label_set=ls)
    columns = (lab.frames(framerate), lab.label, lab.values().astype(np.int64))
    return _per_half(lab.half, columns, events_to_dense, n, ls)


def _per_half(
    halves: np.ndarray, columns: tuple[np.ndarray, ...], dense: Any, n: int, ls: LabelSet
) -> tuple[np.ndarray, np.ndarray]:
    """The two halves' dense (N, C) vectors: ``dense(rows, n, C)`` of each half's rows."""
    out = []
    for half in HALVES:
        sel = halves == half
        out.append(dense(zip(*(c[sel] for c in columns), strict=True), n, ls.num_classes))
    return out[0], out[1]

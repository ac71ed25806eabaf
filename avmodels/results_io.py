"""SoccerNet v1 JSON files: `Labels.json` (ground truth) and `results_spotting.json` (predictions).

Predictions file, one per game at `<out>/<league>/<season>/<game>/results_spotting.json`:
`{"UrlLocal": game, "predictions": [{"gameTime": "1 - 12:34", "label": "card", "position":
"754000", "half": "1", "confidence": "0.9"}]}`. The official tools write every value as a string;
the official evaluator reads `int(position)` (milliseconds), `int(half)`, the label through
`{"card": 0, "subs": 1, "soccer": 2}` and the confidence as a number, and ignores `gameTime`.
Reading accepts strings or JSON numbers for position, half and confidence. Anything else (not
JSON, no `predictions` list, an unknown label, a half other than 1 or 2, a negative position, a
confidence that is no number) raises `DataError` naming the file and the entry.
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

from avspot.avmodels.metrics import (
    FRAMERATE,
    detections_to_dense,
    events_to_dense,
    official_half_frames,
    position_to_frame,
)
from avspot.datasets.atomic import write_json_atomic
from avspot.datasets.errors import DataError
from avspot.datasets.labels import (
    CLASS_INDEX,
    CLASSES,
    class_of_label,
    format_game_time,
    parse_game_time,
)

PREDICTIONS_FILE = "results_spotting.json"
_HALVES = {"1": 1, "2": 2, 1: 1, 2: 2}  # anything else goes the slow way (and is checked)
_get = itemgetter


@dataclass(frozen=True)
class Predictions:
    """Columns of one game's predictions in file order (order matters: in a frame, last wins)."""

    half: np.ndarray  # (M,) int64, 1 or 2
    position_ms: np.ndarray  # (M,) int64
    label: np.ndarray  # (M,) int64 class index: card 0, subs 1, soccer 2
    confidence: np.ndarray  # (M,) float64

    def frames(self, framerate: float = FRAMERATE) -> np.ndarray:
        """Official frames: `int(framerate * (position / 1000))`."""
        return position_to_frame(self.position_ms, framerate)


@dataclass(frozen=True)
class Labels:
    """Columns of one game's annotations: half, position in ms, class index."""

    half: np.ndarray  # (E,) int64
    position_ms: np.ndarray  # (E,) int64
    label: np.ndarray  # (E,) int64

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


def read_predictions(path: str | os.PathLike[str]) -> Predictions:
    """Read one `results_spotting.json`."""
    return parse_predictions(load_json(path), source=str(path))


def parse_predictions(content: Any, source: str = "<predictions>") -> Predictions:
    """Columns of a `results_spotting.json` dict, validated."""
    preds = content.get("predictions") if isinstance(content, Mapping) else None
    if not isinstance(preds, list):
        raise DataError(f"{source}: expected an object with a 'predictions' list")
    try:  # fast path: the common, well-formed file (each column in one C-level pass)
        n = len(preds)
        out = Predictions(
            np.fromiter(map(_HALVES.__getitem__, map(_get("half"), preds)), np.int64, n),
            np.fromiter(map(int, map(_get("position"), preds)), np.int64, n),
            np.fromiter(map(CLASS_INDEX.__getitem__, map(_get("label"), preds)), np.int64, n),
            np.fromiter(map(float, map(_get("confidence"), preds)), np.float64, n),
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        half, position, label, confidence = _parse_slow(preds, source)
        out = Predictions(
            np.asarray(half, dtype=np.int64),
            np.asarray(position, dtype=np.int64),
            np.asarray(label, dtype=np.int64),
            np.asarray(confidence, dtype=np.float64),
        )
    _check_columns(out.half, out.position_ms, source, "prediction")
    return out


def _parse_slow(preds: list, source: str) -> tuple[list, list, list, list]:
    """Entry by entry, to name the first bad one."""
    half, position, label, confidence = [], [], [], []
    for i, p in enumerate(preds):
        where = f"{source}: prediction {i}"
        if not isinstance(p, Mapping):
            raise DataError(f"{where}: expected an object, got {type(p).__name__}")
        for key in ("half", "position", "label", "confidence"):
            if key not in p:
                raise DataError(f"{where}: missing {key!r}")
        if p["label"] not in CLASS_INDEX:
            raise DataError(
                f"{where}: unknown label {p['label']!r} (expected one of {', '.join(CLASSES)})"
            )
        half.append(_to_int(p["half"], where, "half"))
        position.append(_to_int(p["position"], where, "position"))
        label.append(CLASS_INDEX[p["label"]])
        try:
            if isinstance(p["confidence"], bool | list | dict) or p["confidence"] is None:
                raise TypeError
            confidence.append(float(p["confidence"]))
        except (TypeError, ValueError):
            raise DataError(f"{where}: confidence {p['confidence']!r} is not a number") from None
    return half, position, label, confidence


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


def read_labels(path: str | os.PathLike[str]) -> Labels:
    """Read one v1 `Labels.json`."""
    return parse_labels(load_json(path), source=str(path))


def parse_labels(content: Any, source: str = "<labels>") -> Labels:
    """Columns of a v1 `Labels.json` dict, validated.

    As the official `label2vector`: the half is the gameTime's first digit; the position is
    `int(annotation["position"])` ms when present, else the gameTime's minutes and seconds; the
    class is the first of card/subs/soccer contained in the label. Unlike the official reader,
    which skips them silently, labels with no class raise DataError.
    """
    annotations = content.get("annotations") if isinstance(content, Mapping) else None
    if not isinstance(annotations, list):
        raise DataError(f"{source}: expected an object with an 'annotations' list")
    half, position, label = [], [], []
    for i, a in enumerate(annotations):
        where = f"{source}: annotation {i}"
        if not isinstance(a, Mapping) or "gameTime" not in a or "label" not in a:
            raise DataError(f"{where}: expected an object with 'gameTime' and 'label'")
        try:
            game_half, seconds = parse_game_time(a["gameTime"])
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
        c = class_of_label(a["label"]) if isinstance(a["label"], str) else None
        if c is None:
            raise DataError(
                f"{where}: unknown label {a['label']!r} (no card, subs or soccer in it)"
            )
        half.append(game_half)
        if "position" in a:
            position.append(_to_int(a["position"], where, "position"))
        else:
            position.append(1000 * seconds)
        label.append(c)
    out = Labels(
        np.asarray(half, dtype=np.int64),
        np.asarray(position, dtype=np.int64),
        np.asarray(label, dtype=np.int64),
    )
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


# ---- writing -------------------------------------------------------------------------------------


def predictions_json(
    game: str, predictions: Iterable[tuple[int, int, str, float]]
) -> dict[str, Any]:
    """`results_spotting.json` content from (half, position_ms, label, confidence) tuples."""
    rows = []
    for half, position_ms, label, confidence in predictions:
        if label not in CLASS_INDEX:
            raise DataError(
                f"game {game}: unknown label {label!r} (expected one of {', '.join(CLASSES)})"
            )
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
) -> Path:
    """Write `<out_dir>/<game>/results_spotting.json` atomically; returns its path."""
    path = Path(out_dir) / game / PREDICTIONS_FILE
    write_json_atomic(path, predictions_json(game, predictions))
    return path


# ---- dense vectors (the official evaluator's form; tests compare against it) -----------------


def spotting_dict_to_dense(
    spots: Mapping, framerate: float = FRAMERATE, n_frames: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two (N, 3) detection halves from a `results_spotting.json` dict (official rules)."""
    n = official_half_frames(framerate) if n_frames is None else n_frames
    parsed = parse_predictions(spots, source="<predictions>")
    frames = position_to_frame(parsed.position_ms, framerate)
    out = []
    for half in (1, 2):
        sel = parsed.half == half
        dets = zip(frames[sel], parsed.label[sel], parsed.confidence[sel], strict=True)
        out.append(detections_to_dense(dets, n))
    return out[0], out[1]


def labels_dict_to_dense(
    labels: Mapping, framerate: float = FRAMERATE, n_frames: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two (N, 3) target halves from a `Labels.json` dict (official `label2vector` rules)."""
    n = official_half_frames(framerate) if n_frames is None else n_frames
    parsed = parse_labels(labels, source="<labels>")
    frames = parsed.frames(framerate)
    out = []
    for half in (1, 2):
        sel = parsed.half == half
        out.append(events_to_dense(zip(frames[sel], parsed.label[sel], strict=True), n))
    return out[0], out[1]

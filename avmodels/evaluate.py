"""`avspot evaluate`: official SoccerNet v1 Average-mAP of a folder of predictions.

Labels come from a SoccerNet folder tree (`<root>/<league>/<season>/<game>/Labels.json`, found
by walking) or from a feature table (a local folder with `manifest.json`, or `s3://`). For a
folder tree each half is the official 14,400 frames (120 min at 2 fps; later frames are clipped
to the last one, as `label2vector`/`predictions2vector` do); for a table a half has the table's
`n_frames`, and the same clipping applies at its end.

Every selected game must have a `results_spotting.json` (the official `evaluate` stops with
FileNotFoundError on the first game without one; here the DataError names it and counts the
others). A predictions file for a game that the labels do not know is a DataError too; files
for known games outside the chosen split are ignored (as the official split lists do).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from avspot.avmodels.metrics import (
    FRAMERATE,
    METRICS,
    HalfSpots,
    average_map_spots,
    official_half_frames,
)
from avspot.avmodels.results_io import (
    PREDICTIONS_FILE,
    Predictions,
    find_games,
    read_labels,
    read_predictions,
)
from avspot.datasets.errors import DataError
from avspot.datasets.halves import SPLITS, Half
from avspot.datasets.labels import CLASS_INDEX, DISPLAY_NAMES
from avspot.datasets.layout import LABELS_FILE, official_games
from avspot.datasets.progress import progress


def evaluate(
    labels: str | os.PathLike[str],
    predictions: str | os.PathLike[str],
    metric: str = "loose",
    split: str | None = None,
    endpoint: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Average-mAP of `predictions` (folder of results_spotting.json) against `labels`.

    ``progress`` shows a bar of games read on stderr (when it is a terminal). Returns the
    `avspot evaluate --json` dict `{"average_map", "per_class", "metric"}` plus `games`,
    `halves`, `events`, `detections` (counts per class), `seed_average_map` (the seed's plain
    mean over deltas), `deltas`, `map_per_delta`, `per_class_per_delta`, and the `labels`,
    `predictions` and `split` arguments.
    """
    if metric not in METRICS:
        raise DataError(f"--metric {metric!r}: expected one of {', '.join(METRICS)}")
    pred_root = Path(predictions)
    if not pred_root.is_dir():
        raise DataError(f"--predictions {predictions}: no such folder")
    pred_files = find_games(pred_root, PREDICTIONS_FILE)
    if not pred_files:
        raise DataError(f"--predictions {predictions}: no {PREDICTIONS_FILE} under it")
    labels_str = os.fspath(labels)
    if _is_table(labels_str):
        halves, games = _table_halves(labels_str, pred_files, split, endpoint, progress)
        framerate = halves[0][1] if halves else FRAMERATE
        spots = [h for h, _ in halves]
    else:
        spots, games = _tree_halves(labels_str, pred_files, split, progress)
        framerate = FRAMERATE
    result = average_map_spots(spots, framerate=framerate, metric=metric)
    out = result.to_dict()
    out.update(
        {
            "games": games,
            "halves": len(spots),
            "labels": labels_str,
            "predictions": os.fspath(predictions),
            "split": split,
        }
    )
    return out


# ---- folder tree ----------------------------------------------------------------------------------


def _tree_halves(
    root: str, pred_files: Mapping[str, Path], split: str | None, show: bool = False
) -> tuple[list[HalfSpots], int]:
    if not Path(root).is_dir():
        raise DataError(f"--labels {root}: no such folder (expected a SoccerNet tree or a table)")
    label_files = find_games(root, LABELS_FILE)
    if not label_files:
        raise DataError(f"--labels {root}: no {LABELS_FILE} under it")
    games = sorted(label_files)
    if split is not None:
        wanted = set(official_games(split))
        games = [g for g in games if g in wanted]
        if not games:
            raise DataError(f"--labels {root}: no game of the official {split!r} split")
    _check_games(set(label_files), games, pred_files, root, split)
    n = official_half_frames(FRAMERATE)
    halves: list[HalfSpots] = []
    for game in progress(games, desc="evaluate", enabled=show, unit="game"):
        lab = read_labels(label_files[game])
        preds = read_predictions(pred_files[game])
        lab_frames = lab.frames(FRAMERATE)
        pred_frames = preds.frames(FRAMERATE)
        for half in (1, 2):
            ls = lab.half == half
            halves.append(_half_spots(lab_frames[ls], lab.label[ls], preds, pred_frames, half, n))
    return halves, len(games)


def _half_spots(
    event_frames: np.ndarray,
    event_classes: np.ndarray,
    preds: Predictions,
    pred_frames: np.ndarray,
    half: int,
    n_frames: int,
) -> HalfSpots:
    ps = preds.half == half
    return HalfSpots.from_lists(
        event_frames,
        event_classes,
        pred_frames[ps],
        preds.label[ps],
        preds.confidence[ps],
        n_frames,
    )


def _check_games(
    known: set[str],
    selected: list[str],
    pred_files: Mapping[str, Path],
    labels: str,
    split: str | None,
) -> None:
    unknown = sorted(set(pred_files) - known)
    if unknown:
        raise DataError(
            f"{pred_files[unknown[0]]}: game {unknown[0]!r} is not in the labels {labels}"
            + (f" ({len(unknown) - 1} more unknown games)" if len(unknown) > 1 else "")
        )
    missing = [g for g in selected if g not in pred_files]
    if missing:
        hint = "" if split is not None else "; pass --split to evaluate one split"
        raise DataError(
            f"game {missing[0]!r}: no {PREDICTIONS_FILE} in the predictions folder "
            f"({len(missing)} of {len(selected)} games lack one{hint})"
        )


# ---- feature table ---------------------------------------------------------------------------------


def _is_table(uri: str) -> bool:
    return uri.startswith("s3://") or (Path(uri) / "manifest.json").is_file()


def _table_halves(
    uri: str,
    pred_files: Mapping[str, Path],
    split: str | None,
    endpoint: str | None,
    show: bool = False,
) -> tuple[list[tuple[HalfSpots, float]], int]:
    from avspot.datasets.table import iter_halves, list_halves  # pyarrow: only for tables

    if split is not None and split not in SPLITS:
        raise DataError(f"--split {split!r}: expected one of {', '.join(SPLITS)}")
    known = {game for game, _ in list_halves(uri, None, endpoint=endpoint)}
    halves = iter_halves(uri, split, endpoint=endpoint, copy=False)
    rows = [_Row(h) for h in progress(halves, desc="evaluate", enabled=show, unit="half")]
    if not rows:
        raise DataError(f"--labels {uri}: no halves" + (f" in split {split!r}" if split else ""))
    selected = sorted({r.game for r in rows})
    _check_games(known, selected, pred_files, uri, split)
    preds = {game: read_predictions(pred_files[game]) for game in selected}
    fps = {float(r.fps) for r in rows}
    if len(fps) > 1:
        raise DataError(f"--labels {uri}: halves with different fps {sorted(fps)}")
    framerate = fps.pop()
    halves = []
    for r in rows:
        p = preds[r.game]
        try:
            ev = [(int(e.frame), CLASS_INDEX[e.label]) for e in r.events]
        except KeyError:
            bad = next(e.label for e in r.events if e.label not in CLASS_INDEX)
            raise DataError(
                f"{uri}: game {r.game!r} half {r.half}: unknown class {bad!r}"
            ) from None
        ev_arr = np.asarray(ev, dtype=np.int64).reshape(-1, 2)
        spots = _half_spots(
            ev_arr[:, 0], ev_arr[:, 1], p, p.frames(framerate), int(r.half), r.n_frames
        )
        halves.append((spots, framerate))
    return halves, len(selected)


class _Row:
    """What evaluation needs of a table half (drops the feature arrays as soon as read)."""

    __slots__ = ("events", "fps", "game", "half", "n_frames")

    def __init__(self, half: Half) -> None:
        self.game = half.game
        self.half = int(half.half)
        self.fps = float(half.fps)
        self.n_frames = half.n_frames
        self.events = list(half.events)


# ---- output ----------------------------------------------------------------------------------------


def format_result(result: Mapping[str, Any]) -> str:
    """Human-readable table: Average-mAP, per-class values and the mAP-vs-tolerance curve."""
    deltas = result.get("deltas") or []
    span = f"deltas {deltas[0]:g}-{deltas[-1]:g} s" if deltas else ""
    lines = [
        f"Average-mAP ({result.get('metric')}, {span}): {result['average_map']:.4f}"
        f"  over {result.get('games', '?')} games ({result.get('halves', '?')} halves)",
        f"  seed variant (plain mean over deltas): {result.get('seed_average_map', float('nan')):.4f}",
        "",
        f"  {'class':<15}{'Average-mAP':>12}{'events':>9}{'predictions':>13}",
    ]
    events = result.get("events", {})
    dets = result.get("detections", {})
    for name, value in result["per_class"].items():
        lines.append(
            f"  {DISPLAY_NAMES.get(name, name):<15}{value:>12.4f}{events.get(name, 0):>9}"
            f"{dets.get(name, 0):>13}"
        )
    if deltas:
        lines += ["", "  mAP per tolerance:"]
        curve = result.get("map_per_delta", [])
        lines.append(
            "  " + "  ".join(f"{d:g}s {m:.3f}" for d, m in zip(deltas, curve, strict=False))
        )
    return "\n".join(lines)

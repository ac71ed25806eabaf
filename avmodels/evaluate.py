"""`avspot evaluate`: official SoccerNet Average-mAP (v1 or v2) of a folder of predictions.

Labels come from a SoccerNet folder tree (`<root>/<league>/<season>/<game>/Labels.json` for v1,
`Labels-v2.json` for v2, found by walking) or from a feature table (a local folder with
`manifest.json`, or `s3://`). The label set is the table's (its manifest), the tree's (the label
files found) or `--label-set`; a mismatch between them, label files of both kinds without
`--label-set`, or a label outside the label set in any file is a DataError naming it: the score
is never computed on the wrong vocabulary. Values equal the official
`SoccerNet.Evaluation.ActionSpotting.evaluate(..., version=1, label_files="Labels.json")` for v1
and `evaluate(..., version=2)` for v2 (visible / unshown Average-mAP for v2 only, None for v1 as
there). Each half is the official 14,400 frames (120 min at 2 fps; later frames are clipped to
the last one, as `label2vector`/`predictions2vector` do), frames from the millisecond positions,
for a table too (whatever its feature rate).

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

from avspot.avmodels.halfspots import FRAMERATE, HalfSpots, official_half_frames, position_to_frame
from avspot.avmodels.metrics import METRICS, average_map_spots
from avspot.avmodels.results_io import (
    PREDICTIONS_FILE,
    Predictions,
    find_games,
    find_label_files,
    read_labels,
    read_predictions,
)
from avspot.datasets.errors import DataError
from avspot.datasets.halves import SPLITS, Half
from avspot.datasets.labels import LABEL_SETS, LabelSet, get_label_set
from avspot.datasets.layout import official_games
from avspot.datasets.progress import progress

HALF_FRAMES = official_half_frames(FRAMERATE)


def evaluate(
    labels: str | os.PathLike[str],
    predictions: str | os.PathLike[str],
    metric: str = "loose",
    split: str | None = None,
    endpoint: str | None = None,
    progress: bool = False,
    label_set: str | LabelSet | None = None,
) -> dict[str, Any]:
    """Average-mAP of `predictions` (folder of results_spotting.json) against `labels`.

    ``label_set``: v1 / v2, or None to take it from the labels. ``progress`` shows a bar of
    games read on stderr (when it is a terminal). Returns the `avspot evaluate --json` dict
    `{"average_map", "per_class", "metric", "label_set", "average_map_visible",
    "average_map_unshown", "per_class_visible", "per_class_unshown"}` (the visible / unshown
    values None for v1, as the official) plus `games`, `halves`, `events`, `events_unshown`,
    `detections` (counts per class), `seed_average_map` (the seed's plain mean over deltas),
    `deltas`, `map_per_delta[_visible|_unshown]`, `per_class_per_delta`, and the `labels`,
    `predictions` and `split` arguments.
    """
    if metric not in METRICS:
        raise DataError(f"metric {metric!r}: expected one of {', '.join(METRICS)}", field="metric")
    requested = _requested(label_set)
    pred_root = Path(predictions)
    if not pred_root.is_dir():
        raise DataError(f"predictions {predictions}: no such folder", field="predictions")
    pred_files = find_games(pred_root, PREDICTIONS_FILE)
    if not pred_files:
        raise DataError(
            f"predictions {predictions}: no {PREDICTIONS_FILE} under it", field="predictions"
        )
    labels_str = os.fspath(labels)
    if _is_table(labels_str):
        spots, games, ls = _table_halves(
            labels_str, pred_files, split, endpoint, progress, requested
        )
    else:
        spots, games, ls = _tree_halves(labels_str, pred_files, split, progress, requested)
    # visible / unshown: v2 only, as the official (it returns None for them with version=1)
    result = average_map_spots(
        spots, framerate=FRAMERATE, metric=metric, label_set=ls, visibility=ls.name != "v1"
    )
    out = result.to_dict()
    out.update(
        {
            "label_set": ls.name,
            "games": games,
            "halves": len(spots),
            "labels": labels_str,
            "predictions": os.fspath(predictions),
            "split": split,
        }
    )
    return out


def _requested(label_set: str | LabelSet | None) -> LabelSet | None:
    if label_set is None or isinstance(label_set, LabelSet):
        return label_set
    try:
        return get_label_set(label_set)
    except DataError:
        raise DataError(
            f"label_set {label_set!r}: expected one of {', '.join(LABEL_SETS)}", field="label_set"
        ) from None


# ---- folder tree ----------------------------------------------------------------------------------


def _tree_label_set(
    root: str, found: Mapping[str, Mapping[str, Path]], requested: LabelSet | None
) -> LabelSet:
    """The label set of a tree: the requested one (its label file must be there, and no game
    may have only the other kind), else the one kind of label file found."""
    names = " or ".join(ls.labels_file for ls in LABEL_SETS.values())
    if not found:
        raise DataError(f"labels {root}: no {names} under it", field="labels")
    if requested is None:
        if len(found) > 1:
            kinds = ", ".join(f"{LABEL_SETS[n].labels_file} ({n})" for n in found)
            raise DataError(
                f"label_set: {root} holds label files of two label sets, {kinds}; choose one",
                field="label_set",
            )
        return LABEL_SETS[next(iter(found))]
    own = found.get(requested.name, {})
    for name, files in found.items():
        if name == requested.name:
            continue
        only = sorted(set(files) - set(own))
        if only:
            raise DataError(
                f"{files[only[0]]}: a {name} label file, but label set {requested.name} "
                f"reads {requested.labels_file}"
                + (f" ({len(only) - 1} more games like it)" if len(only) > 1 else "")
            )
    return requested


def _tree_halves(
    root: str,
    pred_files: Mapping[str, Path],
    split: str | None,
    show: bool,
    requested: LabelSet | None,
) -> tuple[list[HalfSpots], int, LabelSet]:
    if not Path(root).is_dir():
        raise DataError(
            f"labels {root}: no such folder (expected a SoccerNet tree or a table)", field="labels"
        )
    found = find_label_files(root)
    ls = _tree_label_set(root, found, requested)
    label_files = found[ls.name]
    games = sorted(label_files)
    if split is not None:
        wanted = set(official_games(split))
        games = [g for g in games if g in wanted]
        if not games:
            raise DataError(
                f"labels {root}: no game of the official {split!r} split", field="labels"
            )
    _check_games(set(label_files), games, pred_files, root, split)
    halves: list[HalfSpots] = []
    for game in progress(games, desc="evaluate", enabled=show, unit="game"):
        lab = read_labels(label_files[game], ls)
        preds = read_predictions(pred_files[game], ls)
        lab_frames = lab.frames(FRAMERATE)
        lab_values = lab.values()
        pred_frames = preds.frames(FRAMERATE)
        for half in (1, 2):
            sel = lab.half == half
            halves.append(
                _half_spots(
                    lab_frames[sel], lab.label[sel], lab_values[sel], preds, pred_frames, half, ls
                )
            )
    return halves, len(games), ls


def _half_spots(
    event_frames: np.ndarray,
    event_classes: np.ndarray,
    event_values: np.ndarray,
    preds: Predictions,
    pred_frames: np.ndarray,
    half: int,
    ls: LabelSet,
) -> HalfSpots:
    ps = preds.half == half
    return HalfSpots.from_lists(
        event_frames,
        event_classes,
        pred_frames[ps],
        preds.label[ps],
        preds.confidence[ps],
        HALF_FRAMES,
        num_classes=ls.num_classes,
        event_values=event_values,
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
        hint = "" if split is not None else "; evaluate one split"
        raise DataError(
            f"game {missing[0]!r}: no {PREDICTIONS_FILE} in the predictions folder "
            f"({len(missing)} of {len(selected)} games lack one{hint})",
            field=None if split is not None else "split",
        )


# ---- feature table ---------------------------------------------------------------------------------


def _is_table(uri: str) -> bool:
    return uri.startswith("s3://") or (Path(uri) / "manifest.json").is_file()


def _table_halves(
    uri: str,
    pred_files: Mapping[str, Path],
    split: str | None,
    endpoint: str | None,
    show: bool,
    requested: LabelSet | None,
) -> tuple[list[HalfSpots], int, LabelSet]:
    from avspot.datasets.manifest import read_manifest  # pyarrow: only for tables
    from avspot.datasets.table import iter_halves, list_halves

    if split is not None and split not in SPLITS:
        raise DataError(f"split {split!r}: expected one of {', '.join(SPLITS)}", field="split")
    manifest = read_manifest(uri, endpoint)
    name = manifest.label_set
    if name not in LABEL_SETS:
        raise DataError(f"{uri}/manifest.json: unknown label_set {name!r}")
    ls = LABEL_SETS[name]
    if requested is not None and requested.name != ls.name:
        raise DataError(
            f"{uri}/manifest.json: the table's label set is {ls.name}, not {requested.name}"
        )
    known = {game for game, _ in list_halves(uri, None, endpoint=endpoint)}
    halves = iter_halves(uri, split, endpoint=endpoint, copy=False)
    rows = [_Row(h) for h in progress(halves, desc="evaluate", enabled=show, unit="half")]
    if not rows:
        raise DataError(
            f"labels {uri}: no halves" + (f" in split {split!r}" if split else ""), field="labels"
        )
    selected = sorted({r.game for r in rows})
    _check_games(known, selected, pred_files, uri, split)
    preds = {game: read_predictions(pred_files[game], ls) for game in selected}
    index = ls.class_index
    out = []
    for r in rows:
        p = preds[r.game]
        bad = next((e.label for e in r.events if e.label not in index), None)
        if bad is not None:
            raise DataError(
                f"{uri}: game {r.game!r} half {r.half}: unknown class {bad!r} (label set {ls.name})"
            )
        ms = np.array([int(e.position_ms) for e in r.events], dtype=np.int64)
        classes = np.array([index[e.label] for e in r.events], dtype=np.int64)
        values = np.array([-1.0 if e.visibility == "not shown" else 1.0 for e in r.events])
        out.append(
            _half_spots(
                position_to_frame(ms, FRAMERATE),
                classes,
                values,
                p,
                p.frames(FRAMERATE),
                r.half,
                ls,
            )
        )
    return out, len(selected), ls


class _Row:
    """What evaluation needs of a table half (drops the feature arrays as soon as read)."""

    __slots__ = ("events", "game", "half")

    def __init__(self, half: Half) -> None:
        self.game = half.game
        self.half = int(half.half)
        self.events = list(half.events)


# ---- output ----------------------------------------------------------------------------------------


def format_result(result: Mapping[str, Any]) -> str:
    """Human-readable table: Average-mAP (and visible / unshown for v2), per-class values and
    the mAP-vs-tolerance curve."""
    ls = LABEL_SETS.get(str(result.get("label_set")), LABEL_SETS["v1"])
    deltas = result.get("deltas") or []
    span = f"deltas {deltas[0]:g}-{deltas[-1]:g} s" if deltas else ""
    vis, uns = result.get("per_class_visible"), result.get("per_class_unshown")
    lines = [
        f"Average-mAP ({result.get('metric')}, {span}, label set {ls.name}): "
        f"{result['average_map']:.4f}"
        f"  over {result.get('games', '?')} games ({result.get('halves', '?')} halves)",
    ]
    if result.get("average_map_visible") is not None:
        lines.append(
            f"  visible {result['average_map_visible']:.4f}, "
            f"unshown {result['average_map_unshown']:.4f} (official 17/13 rescale)"
        )
    lines += [
        f"  seed variant (plain mean over deltas): {result.get('seed_average_map', float('nan')):.4f}",
        "",
        f"  {'class':<20}{'Average-mAP':>12}"
        + (f"{'visible':>9}{'unshown':>9}" if vis and uns else "")
        + f"{'events':>9}{'predictions':>13}",
    ]
    events = result.get("events", {})
    dets = result.get("detections", {})
    for name, value in result["per_class"].items():
        cols = f"{vis[name]:>9.4f}{uns[name]:>9.4f}" if vis and uns else ""
        lines.append(
            f"  {ls.display_name(name):<20}{value:>12.4f}{cols}{events.get(name, 0):>9}"
            f"{dets.get(name, 0):>13}"
        )
    if deltas:
        lines += ["", "  mAP per tolerance:"]
        curve = result.get("map_per_delta", [])
        lines.append(
            "  " + "  ".join(f"{d:g}s {m:.3f}" for d, m in zip(deltas, curve, strict=False))
        )
    return "\n".join(lines)

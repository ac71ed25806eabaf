"""Summaries of a feature table, from its manifest, after checking its parts.

By default every part's size and Parquet footer are checked (``verify.check_table``); with
``verify=True`` (``avspot data inspect --verify``) every byte is read: checksums recomputed,
every row group decoded. A bad part is named in a DataError (exit 2).

The summary says the table's label set, stored dtype, feature widths (audio 0: no audio) and
fps, and counts per split: games, halves, hours, events per class and, for SoccerNet-v2 tables,
visible / "not shown" events. The ``challenge`` split (no labels) is shown when it has games.
"""

from __future__ import annotations

from typing import Any

from avspot.datasets.halves import SPLITS, UNLABELLED_SPLITS
from avspot.datasets.manifest import split_counts, visibility_counts
from avspot.datasets.verify import check_table


def inspect_table(uri: str, endpoint: str | None = None, *, verify: bool = False) -> dict[str, Any]:
    """Games, halves, frames, hours, events per class (and visibility) per split, bytes, label
    set, dtype, widths and manifest facts.

    Checks every part first (sizes and footers; with ``verify`` checksums and every row group
    too): DataError naming the first bad part.
    """
    m = check_table(uri, endpoint, deep=verify)
    classes = m.vocabulary.classes
    per_split = {}
    for s in SPLITS:
        c = split_counts(m.counts, s)
        per_split[s] = {
            "games": c["games"],
            "halves": c["halves"],
            "frames": c["frames"],
            "hours": round(c["frames"] / m.fps / 3600, 3),
            "events": {**{k: c["per_class"].get(k, 0) for k in classes}, "total": c["events"]},
            "visibility": visibility_counts(c),
            "labelled": s not in UNLABELLED_SPLITS,
            "files": sum(1 for f in m.files if f["split"] == s),
            "bytes": sum(f["bytes"] for f in m.files if f["split"] == s),
        }
    total = m.counts
    return {
        "uri": uri,
        "label_set": m.label_set,
        "classes": list(classes),
        "dtype": m.dtype,
        "fps": m.fps,
        "feature_dims": dict(m.feature_dims),
        "audio": m.has_audio,
        "games": total["games"],
        "halves": total["halves"],
        "frames": m.frames,
        "hours": round(m.frames / m.fps / 3600, 3),
        "events": {**{k: total["per_class"].get(k, 0) for k in classes}, "total": total["events"]},
        "visibility": visibility_counts(total),
        "per_split": per_split,
        "bytes": m.bytes,
        "files": len(m.files),
        "missing_files": [],  # a missing part is an error now (kept for readers of --json)
        "verified": "checksums+rows" if verify else "sizes+footers",
        "checksums": all(f.get("sha256") for f in m.files),
        "manifest": {
            "schema_version": m.schema_version,
            "source": m.source,
            "seed": m.seed,
            "fingerprint": m.fingerprint,
            "created": m.created,
            "label_set": m.label_set,
            "dtype": m.dtype,
            "fps": m.fps,
            "feature_dims": m.feature_dims,
            "encoding": m.encoding,
            "params": m.params,
        },
    }


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def _grid(cells: list[list[str]]) -> list[str]:
    """Rows of cells as aligned text: first column left, the others right, a rule under row 0."""
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return [line(cells[0]), line(["-" * w for w in widths]), *[line(r) for r in cells[1:]]]


def _shown_splits(summary: dict[str, Any]) -> list[str]:
    """Every labelled split, and an unlabelled one (challenge) only when it has games."""
    return [s for s in SPLITS if s not in UNLABELLED_SPLITS or summary["per_split"][s]["halves"]]


def _display(label_set: str) -> dict[str, str]:
    from avspot.datasets.labels import get_label_set

    ls = get_label_set(label_set)
    return {c: ls.display_name(c) for c in ls.classes}


def _v1_rows(summary: dict[str, Any], splits: list[str]) -> list[list[str]]:
    classes = summary["classes"]
    names = _display(summary["label_set"])
    header = (
        ["split", "games", "halves", "hours"] + [names[c] for c in classes] + ["events", "size"]
    )
    rows = [header]
    for s, p in [(s, summary["per_split"][s]) for s in splits] + [("total", summary)]:
        size = p["bytes"]
        rows.append(
            [s, str(p["games"]), str(p["halves"]), f"{p['hours']:.1f}"]
            + [str(p["events"][c]) for c in classes]
            + [str(p["events"]["total"]), _size(size)]
        )
    return rows


def _v2_rows(summary: dict[str, Any], splits: list[str]) -> list[str]:
    header = ["split", "games", "halves", "hours", "events", "visible", "not shown", "size"]
    rows = [header]
    for s, p in [(s, summary["per_split"][s]) for s in splits] + [("total", summary)]:
        v = p["visibility"]
        rows.append(
            [s, str(p["games"]), str(p["halves"]), f"{p['hours']:.1f}", str(p["events"]["total"])]
            + [str(v["visible"]), str(v["not shown"]), _size(p["bytes"])]
        )
    labelled = [s for s in splits if summary["per_split"][s]["labelled"]]
    per_class = [["class", *labelled, "total"]]
    for c in summary["classes"]:
        counts = [summary["per_split"][s]["events"][c] for s in labelled]
        per_class.append([c, *map(str, counts), str(summary["events"][c])])
    return [*_grid(rows), "", *_grid(per_class)]


def format_summary(summary: dict[str, Any]) -> str:
    """A readable table of ``inspect_table``'s result."""
    man = summary["manifest"]
    dims = summary["feature_dims"]
    audio = f"audio {dims['audio']}" if dims.get("audio") else "no audio"
    seed = "" if man["seed"] is None else f", seed {man['seed']}"
    splits = _shown_splits(summary)
    n_classes = len(summary["classes"])
    out = [
        f"table {summary['uri']}",
        f"source {man['source']}{seed}, schema v{man['schema_version']}, label set "
        f"{summary['label_set']} ({n_classes} classes), {summary['dtype']}, "
        f"{summary['fps']:g} fps, widths video {dims['video']} {audio}",
        f"fingerprint {man['fingerprint']}  created {man['created']}",
        f"parts checked: {summary.get('verified', 'sizes+footers')}"
        + ("" if summary.get("checksums", True) else " (no checksums recorded: schema v1)"),
        "",
    ]
    if summary["label_set"] == "v1":
        out += _grid(_v1_rows(summary, splits))
    else:
        out += _v2_rows(summary, splits)
    return "\n".join(out)

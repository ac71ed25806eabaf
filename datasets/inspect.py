"""Summaries of a feature table, from its manifest, after checking its parts.

By default every part's size and Parquet footer are checked (``verify.check_table``); with
``verify=True`` (``avspot data inspect --verify``) every byte is read: checksums recomputed,
every row group decoded. A bad part is named in a DataError (exit 2).
"""

from __future__ import annotations

from typing import Any

from avspot.datasets.halves import SPLITS
from avspot.datasets.labels import CLASSES, DISPLAY_NAMES
from avspot.datasets.verify import check_table


def inspect_table(uri: str, endpoint: str | None = None, *, verify: bool = False) -> dict[str, Any]:
    """Games, halves, frames, hours, events per class per split, bytes and manifest facts.

    Checks every part first (sizes and footers; with ``verify`` checksums and every row group
    too): DataError naming the first bad part.
    """
    m = check_table(uri, endpoint, deep=verify)
    per_split = {}
    for s in SPLITS:
        c = m.counts["per_split"][s]
        per_split[s] = {
            "games": c["games"],
            "halves": c["halves"],
            "frames": c["frames"],
            "hours": round(c["frames"] / m.fps / 3600, 3),
            "events": {**{k: c["per_class"][k] for k in CLASSES}, "total": c["events"]},
            "files": sum(1 for f in m.files if f["split"] == s),
            "bytes": sum(f["bytes"] for f in m.files if f["split"] == s),
        }
    return {
        "uri": uri,
        "games": m.counts["games"],
        "halves": m.counts["halves"],
        "frames": m.frames,
        "hours": round(m.frames / m.fps / 3600, 3),
        "events": {**{k: m.counts["per_class"][k] for k in CLASSES}, "total": m.counts["events"]},
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


def format_summary(summary: dict[str, Any]) -> str:
    """A readable table of ``inspect_table``'s result."""
    man = summary["manifest"]
    header = (
        ["split", "games", "halves", "hours"]
        + [DISPLAY_NAMES[c] for c in CLASSES]
        + ["events", "size"]
    )
    rows = []
    for s in SPLITS:
        p = summary["per_split"][s]
        rows.append(
            [
                s,
                p["games"],
                p["halves"],
                f"{p['hours']:.1f}",
                *[p["events"][c] for c in CLASSES],
                p["events"]["total"],
                _size(p["bytes"]),
            ]
        )
    ev = summary["events"]
    rows.append(
        [
            "total",
            summary["games"],
            summary["halves"],
            f"{summary['hours']:.1f}",
            *[ev[c] for c in CLASSES],
            ev["total"],
            _size(summary["bytes"]),
        ]
    )
    cells = [header] + [[str(x) for x in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    seed = "" if man["seed"] is None else f", seed {man['seed']}"
    out = [
        f"table {summary['uri']}",
        f"source {man['source']}{seed}, schema v{man['schema_version']}, {man['fps']:g} fps, "
        f"dims video {man['feature_dims']['video']} audio {man['feature_dims']['audio']}",
        f"fingerprint {man['fingerprint']}  created {man['created']}",
        f"parts checked: {summary.get('verified', 'sizes+footers')}"
        + ("" if summary.get("checksums", True) else " (no checksums recorded: schema v1)"),
        "",
        line(cells[0]),
        line(["-" * w for w in widths]),
        *[line(r) for r in cells[1:]],
    ]
    return "\n".join(out)

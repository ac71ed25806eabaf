"""Half-precision tables: bytes on disk and the time to read the train split, float32 vs float16.

    .venv/bin/python benchmarks/bench_half_precision.py --workdir DIR            # 20 games, 45 min
    .venv/bin/python benchmarks/bench_half_precision.py --games 2 --half-minutes 1  # smoke run

Writes the same synthetic games (``avspot data synth --games N --seed S --half-minutes M``) as
a float32 and a float16 table, then reports each table's bytes on disk (the parts the manifest
lists), the train split's decoded feature bytes in memory, and the wall time to read the train
split into memory (``read_halves(uri, "train")``, median of ``--repeats``), plus the largest
difference between the float16 and float32 features. With ``--train-epochs E`` it also trains
the same fixed-seed configuration on each table (``avspot train --set max_epochs=E --set seed=0
--set fusion=before_fc --set clusters=16``, in process) and reports the validation Average-mAP
of both and their difference. Prints figures; asserts nothing. The data is SYNTHETIC (avspot
data synth), not SoccerNet.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import numpy as np

from avspot.avmodels.names import VAL_AVERAGE_MAP, VAL_MAP
from avspot.datasets.synth import synthesize
from avspot.datasets.table import iter_halves, list_halves, read_halves


def _read_train(uri: str) -> tuple[float, int]:
    """(seconds, decoded feature bytes) of one read of the train split into memory."""
    t0 = time.perf_counter()
    halves = read_halves(uri, "train")
    seconds = time.perf_counter() - t0
    return seconds, sum(h.video.nbytes + h.audio.nbytes for h in halves)


def _largest_difference(uri16: str, uri32: str) -> tuple[float, float]:
    """Largest |float16 - float32| of a video value, and the largest |value|, half by half."""
    diff = scale = 0.0
    for a, b in zip(iter_halves(uri16, "train"), iter_halves(uri32, "train"), strict=True):
        diff = max(diff, float(np.max(np.abs(a.video.astype(np.float32) - b.video))))
        scale = max(scale, float(np.max(np.abs(b.video))))
    return diff, scale


# The fixed-seed configuration both tables train (``avspot train --set key=value``).
TRAIN_SET = {"seed": 0, "fusion": "before_fc", "clusters": 16}


def _train(uri: str, epochs: int) -> dict[str, float]:
    """Best-epoch validation Average-mAP and chunk mAP of the fixed-seed run, and its wall time."""
    from avspot.search.cli.train import train_from_table

    t0 = time.perf_counter()
    result = train_from_table(uri, {**TRAIN_SET, "max_epochs": epochs}, log=lambda _line: None)
    m = result.best_metrics
    return {"average_map": m[VAL_AVERAGE_MAP], "map": m[VAL_MAP], "s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--games", type=int, default=20)
    p.add_argument("--half-minutes", type=float, default=45.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels", default="v1", choices=["v1", "v2"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-epochs", type=int, default=0, help="also train on both (0: no)")
    p.add_argument("--workdir", default=None, help="where the two tables go (default: a temp dir)")
    args = p.parse_args(argv)
    work = args.workdir or tempfile.mkdtemp(prefix="avspot-bench-f16-")
    os.makedirs(work, exist_ok=True)
    gen = {"games": args.games, "seed": args.seed, "half_minutes": args.half_minutes}
    dtypes = ("float32", "float16")
    uris = {dt: os.path.join(work, f"synth{args.games}-{dt}") for dt in dtypes}
    rows = {}
    try:
        manifests, writes = {}, {}
        for dt in dtypes:
            t0 = time.perf_counter()
            manifests[dt] = synthesize(
                uris[dt], **gen, labels=args.labels, dtype=dt, overwrite=True
            )
            writes[dt] = time.perf_counter() - t0
        times: dict[str, list[float]] = {dt: [] for dt in dtypes}
        memory = {}
        for _ in range(args.repeats):  # alternate, so both see the same machine load
            for dt in dtypes:
                seconds, memory[dt] = _read_train(uris[dt])
                times[dt].append(seconds)
        for dt in dtypes:
            m = manifests[dt]
            split_bytes = sum(f["bytes"] for f in m.files if f["split"] == "train")
            median = statistics.median(times[dt])
            rows[dt] = (m.bytes, split_bytes, memory[dt], median, writes[dt], m.fingerprint[:12])
        diff, scale = _largest_difference(uris["float16"], uris["float32"])
        halves = len(list_halves(uris["float32"], "train"))
        trained = {dt: _train(uris[dt], args.train_epochs) for dt in dtypes if args.train_epochs}
        load = os.getloadavg()[0]
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"data: SYNTHETIC (avspot data synth --labels {args.labels} --games {args.games} "
        f"--seed {args.seed} --half-minutes {args.half_minutes:g}); train split: {halves} halves; "
        f"{os.cpu_count()} CPUs, load average {load:.1f} at the end"
    )
    print("| dtype | table MB on disk | train split MB on disk | train split MB in memory | "
          f"read train split s (median of {args.repeats}, alternating) | synth + write s | fingerprint |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for dtype, (total, split, mem, sec, write_s, fp) in rows.items():
        print(
            f"| {dtype} | {total / 1e6:,.1f} | {split / 1e6:,.1f} | {mem / 1e6:,.1f} | "
            f"{sec:.2f} | {write_s:.1f} | {fp} |"
        )
    for dt in ("float32", "float16"):
        print(f"{dt} reads of the train split, s: {', '.join(f'{t:.2f}' for t in times[dt])}")
    r32, r16 = rows["float32"], rows["float16"]
    print(
        f"float16 / float32: disk {r16[0] / r32[0]:.2f}x, memory {r16[2] / r32[2]:.2f}x, read "
        f"time {r16[3] / r32[3]:.2f}x; largest |float16 - float32| of a video value {diff:.2e} "
        f"(largest |value| {scale:.2f})"
    )
    if trained:
        sets = " ".join(f"--set {k}={v}" for k, v in TRAIN_SET.items())
        print(f"fixed-seed training: avspot train --set max_epochs={args.train_epochs} {sets}")
        print("| dtype | val Average-mAP | val chunk mAP | wall s |\n|---|---|---|---|")
        for dt, t in trained.items():
            print(f"| {dt} | {t['average_map']:.4f} | {t['map']:.4f} | {t['s']:.0f} |")
        d = trained["float16"]["average_map"] - trained["float32"]["average_map"]
        print(f"float16 - float32 validation Average-mAP: {d:+.4f} (|difference| {abs(d):.4f})")
    print(
        "reproduce: .venv/bin/python benchmarks/bench_half_precision.py "
        f"--games {args.games} --half-minutes {args.half_minutes:g} --seed {args.seed} "
        f"--labels {args.labels} --repeats {args.repeats} --train-epochs {args.train_epochs}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does a trial's feed keep up? Training windows/s of a trial's feed against the in-process loader.

    .venv/bin/python benchmarks/bench_feed.py --table /tmp/big/synth40     # 40 games, 45-min halves
    .venv/bin/python benchmarks/bench_feed.py --games 40                    # synthesizes it (~1 min)

Measures, on the same table, T = 20 s windows, batches of 256, nothing consuming the batches:
- the in-process loader: the train split read with pyarrow into ``ChunkBatches`` (read time
  apart), then one epoch of batches;
- a trial's ``MemoryFeed`` (the default feed) and ``RayTrainStream`` (the feed of splits larger
  than memory), each inside a 1-CPU Ray task on local Ray as a trial runs, 3 epochs: windows/s
  per epoch, the first one including the feed's start-up (Ray Data read or pipeline start);
- the Parquet read speed of the split (pyarrow, MB/s of decoded features) for zstd level 1
  (the table's setting), snappy and no compression, and their size on disk.
Prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

WINDOW_S = 20.0
FPS = 2.0
BATCH = 256


def _loader_rate(table: str) -> tuple[float, float, int]:
    """(read seconds, windows/s of one epoch, windows per epoch) of the in-process loader."""
    from avspot.avmodels.data import ChunkBatches
    from avspot.datasets.table import read_halves

    t0 = time.perf_counter()
    halves = read_halves(table, "train")
    read_s = time.perf_counter() - t0
    batches = ChunkBatches(halves, round(WINDOW_S * FPS), BATCH, seed=0)
    t0 = time.perf_counter()
    n = sum(len(b["targets"]) for b in batches(1))
    return read_s, n / (time.perf_counter() - t0), n


def _feed_epochs(table: str, kind: str, epochs: int) -> list[tuple[int, float]]:
    """(windows, seconds) per epoch of a trial feed, run in a 1-CPU Ray task like a trial."""
    import ray

    from avspot.datasets.manifest import read_manifest

    @ray.remote(num_cpus=1)
    def run() -> list[tuple[int, float]]:
        from avspot.search.tuning.stream import FeedSpec, MemoryFeed, RayTrainStream

        w = round(WINDOW_S * FPS)
        feed = (
            MemoryFeed(FeedSpec(table, w, BATCH, 0))
            if kind == "memory"
            else RayTrainStream(FeedSpec(table, w, BATCH, 0), prefetch=0)
        )
        out = []
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            n = sum(len(b["targets"]) for b in feed(epoch))
            out.append((n, time.perf_counter() - t0))
        feed.close()
        return out

    read_manifest(table)  # bad table: fail here, not in the task
    return ray.get(run.remote())


def _parquet_speeds(table: str, tmp: Path) -> list[tuple[str, float, float]]:
    """(compression, MB/s of decoded features, MB on disk) of the train split rewritten."""
    from avspot.datasets import table as T
    from avspot.datasets.table import iter_halves, read_halves, write_table

    halves = read_halves(table, "train")
    out = []
    saved = dict(T._PARQUET_OPTIONS)
    try:
        for name, options in (
            ("zstd-1", {"compression": "zstd", "compression_level": 1}),
            ("snappy", {"compression": "snappy"}),
            ("none", {"compression": "none"}),
        ):
            T._PARQUET_OPTIONS.clear()
            T._PARQUET_OPTIONS.update({**saved, **options})
            if name != "zstd-1":
                T._PARQUET_OPTIONS.pop("compression_level", None)
            uri = str(tmp / f"t-{name}")
            m = write_table(halves, uri, source="bench")
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                nbytes = sum(h.video.nbytes + h.audio.nbytes for h in iter_halves(uri, copy=False))
                times.append(time.perf_counter() - t0)
            out.append((name, nbytes / 1e6 / statistics.median(times), m.bytes / 1e6))
    finally:
        T._PARQUET_OPTIONS.clear()
        T._PARQUET_OPTIONS.update(saved)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=None, help="a feature table (default: synthesize one)")
    ap.add_argument("--games", type=int, default=40)
    ap.add_argument("--half-minutes", type=float, default=45.0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--no-parquet", action="store_true", help="skip the compression comparison")
    args = ap.parse_args(argv)

    import ray

    from avspot.datasets.manifest import read_manifest
    from avspot.datasets.synth import synthesize

    with tempfile.TemporaryDirectory(prefix="avspot-bench-feed-") as tmp:
        table = args.table
        if table is None:
            table = str(Path(tmp) / "table")
            synthesize(table, games=args.games, seed=0, half_minutes=args.half_minutes)
        m = read_manifest(table)
        read_s, loader, n = _loader_rate(table)
        ray.init(address="local", num_cpus=2, object_store_memory=1 << 30, include_dashboard=False)
        try:
            memory = _feed_epochs(table, "memory", args.epochs)
            stream = _feed_epochs(table, "stream", args.epochs)
        finally:
            ray.shutdown()
        speeds = [] if args.no_parquet else _parquet_speeds(table, Path(tmp))

    train = m.counts["per_split"]["train"]
    print(
        f"data: {m.source} table {table}, {train['games']} train games, {train['halves']} halves, "
        f"{train['frames'] / FPS / 3600:.1f} h; T = {WINDOW_S:g} s, batches of {BATCH}; "
        f"{n} windows per epoch"
    )
    print(f"in-process loader: {loader:8.0f} windows/s (the split read first in {read_s:.1f} s)")
    for name, rows in (("trial MemoryFeed", memory), ("trial RayTrainStream", stream)):
        rates = [w / s for w, s in rows]
        steady = statistics.median(rates[1:]) if len(rates) > 1 else rates[0]
        per_epoch = ", ".join(f"{r:.0f}" for r in rates)
        print(
            f"{name:<21} {steady:8.0f} windows/s after epoch 1 ({steady / loader:.0%} of the "
            f"loader); per epoch {per_epoch} (epoch 1: {rows[0][1]:.1f} s incl. start-up)"
        )
    for name, mbs, size in speeds:
        print(f"parquet {name:<7} read {mbs:6.0f} MB/s of features, {size:7.0f} MB on disk")
    print(f"reproduce: {sys.executable} benchmarks/bench_feed.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

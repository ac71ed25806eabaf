"""Does a trial's feed keep up, at SoccerNet scale? Windows/s, table bytes read, peak memory.

    .venv/bin/python benchmarks/bench_feed.py --games 10                          # local table
    .venv/bin/python benchmarks/bench_feed.py --games 10,50,100 --storage s3      # SeaweedFS S3

For each table (synthetic games of 45-min halves, T = 20 s windows, batches of 256, nothing
consuming the batches), each in a fresh process, as a trial runs:
- the in-process loader: the train split read into memory (``read_halves``), ``ChunkBatches``;
- two trials starting together on one machine: which one read the split from the table's
  storage into the node cache, the bytes each read, the seconds it took;
- ``MemoryFeed`` (the split within the feed budget: the node cache's shared map) and
  ``StreamFeed`` (forced: the budget set to a tenth of the split; groups of halves read from the
  node cache, so trial memory stays flat): windows/s per epoch and peak RSS of the process.
Windows/s are medians over the epochs after the first; the loader, MemoryFeed and StreamFeed
processes run in ``--rounds`` interleaved rounds (loader, memory, stream, loader, ...), and a
feed's share of the loader is the median of its per-round ratios, so that the machine's drift
between processes cancels (epochs of a 10-game table last ~60 ms). Peak RSS is the largest of the
rounds. Prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WINDOW_S = 20.0
FPS = 2.0
BATCH = 256

# One measurement in a fresh process: prints a JSON line. argv: kind table endpoint epochs
_CHILD = r"""
import json, os, resource, statistics, sys, time
kind, table, endpoint, epochs = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
w, batch = int(sys.argv[5]), int(sys.argv[6])
from avspot.datasets.manifest import read_manifest
m = read_manifest(table, endpoint)
out = {"kind": kind}
t0 = time.perf_counter()
if kind == "loader":
    from avspot.avmodels.data import ChunkBatches
    from avspot.datasets.table import read_halves
    feed = ChunkBatches(read_halves(table, "train", endpoint=endpoint), w, batch, seed=0)
elif kind == "fill":
    from avspot.datasets.node_cache import ensure_split
    cached, filled = ensure_split(table, m, "train", endpoint=endpoint)
    out.update(filled=filled, table_bytes_read=cached.fill["table_bytes_read"] if filled else 0,
               split_bytes=cached.nbytes)
    feed = None
else:
    from avspot.search.tuning.feed import train_feed
    feed = train_feed(table, m, window_frames=w, batch_size=batch, seed=0, endpoint=endpoint,
                      max_epochs=epochs)
    choice = feed.wait()
    out.update(choice=choice.kind, table_bytes_read=choice.table_bytes_read,
               split_bytes=choice.split_bytes)
out["ready_s"] = time.perf_counter() - t0
rates = []
for epoch in range(1, epochs + 1 if feed is not None else 1):
    t0 = time.perf_counter()
    n = sum(len(b["targets"]) for b in feed(epoch))
    rates.append(n / (time.perf_counter() - t0))
    out["windows"] = n
if feed is not None and hasattr(feed, "close"):
    feed.close()
out["rates"] = rates
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def _child(kind: str, table: str, endpoint: str | None, epochs: int, env: dict) -> dict:
    w = round(WINDOW_S * FPS)
    argv = [sys.executable, "-c", _CHILD, kind, table, endpoint or "", str(epochs), str(w)]
    r = subprocess.run(
        [*argv, str(BATCH)], env=env, capture_output=True, text=True, check=False, timeout=3600
    )
    if r.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _steady(rates: list[float]) -> float:
    return statistics.median(rates[1:]) if len(rates) > 1 else rates[0]


def _table(games: int, storage: str, tmp: Path, s3: object | None, minutes: float) -> str:
    from avspot.datasets.synth import synthesize

    uri = f"s3://{s3.bucket}/bench-{games}" if s3 is not None else str(tmp / f"t{games}")  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    synthesize(uri, games=games, seed=0, half_minutes=minutes, overwrite=True)
    print(f"  synthesized {games} games to {storage} in {time.perf_counter() - t0:.0f} s")
    return uri


def _rounds(runs: list[dict]) -> dict:
    """One feed's rounds as one result: per-round steady rates, the largest peak RSS."""
    out = dict(runs[0])
    out["round_rates"] = [_steady(r["rates"]) for r in runs]
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return out


def measure(
    table: str, endpoint: str | None, epochs: int, env: dict, cache: Path, rounds: int = 3
) -> dict:
    """Loader, the two-trial fill, MemoryFeed and forced StreamFeed on one table."""
    from avspot.datasets.manifest import read_manifest

    m = read_manifest(table, endpoint)
    env = {**env, "AVSPOT_CACHE_DIR": str(cache)}
    # two trials of one machine start together: one fills the node cache, the other waits
    w = round(WINDOW_S * FPS)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, "fill", table, endpoint or "", "1", str(w), str(BATCH)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    fills = [json.loads(p.communicate(timeout=3600)[0].strip().splitlines()[-1]) for p in procs]
    split = int(sum(f["split_bytes"] for f in fills if f["filled"]))
    forced = {**env, "AVSPOT_FEED_MEMORY_BYTES": str(split // 10)}
    runs: dict[str, list[dict]] = {"loader": [], "memory": [], "stream": []}
    for _ in range(rounds):  # interleaved, so the three see the same machine
        runs["loader"].append(_child("loader", table, endpoint, epochs, env))
        runs["memory"].append(_child("feed", table, endpoint, epochs, env))
        runs["stream"].append(_child("feed", table, endpoint, epochs, forced))
    loader, memory, stream = (_rounds(runs[k]) for k in runs)
    train = m.counts["per_split"]["train"]
    return {
        "games": m.counts["games"],
        "train_halves": train["halves"],
        "train_hours": train["frames"] / FPS / 3600,
        "split_bytes": split,
        "table_bytes": sum(f["bytes"] for f in m.files if f["split"] == "train"),
        "windows": loader["windows"],
        "loader": loader,
        "fills": fills,
        "memory": memory,
        "stream": stream,
    }


def report(rows: list[dict], storage: str, half_minutes: float = 45.0) -> None:
    print(
        f"\ndata: SYNTHETIC tables (avspot data synth, {half_minutes:g}-min halves), storage {storage}; "
        f"T = {WINDOW_S:g} s, batches of {BATCH}; windows/s: median of the epochs after the "
        "first, median of the rounds; share of the loader: median of the per-round ratios"
    )
    head = (
        "| games | train split (decoded) | feed | windows/s | of the loader | table bytes read "
        "(2 trials) | peak RSS MB |"
    )
    print(head)
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        loader_rounds = r["loader"]["round_rates"]
        read = [f["table_bytes_read"] for f in r["fills"]]
        who = f"{read[0] / 1e6:.0f} MB + {read[1] / 1e6:.0f} MB (split {r['table_bytes'] / 1e6:.0f} MB)"
        fill_s = max(f["ready_s"] for f in r["fills"])
        for name, res in (("in-process loader", r["loader"]), ("MemoryFeed", r["memory"]),
                          ("StreamFeed (budget = split/10)", r["stream"])):  # fmt: skip
            rate = statistics.median(res["round_rates"])
            share = statistics.median(
                [a / b for a, b in zip(res["round_rates"], loader_rounds, strict=True)]
            )
            note = who + f", filled in {fill_s:.1f} s" if name == "MemoryFeed" else "-"
            if name == "in-process loader":
                note = f"{r['table_bytes'] / 1e6:.0f} MB (its own read)"
            print(
                f"| {r['games']} | {r['split_bytes'] / 1e9:.2f} GB, {r['train_halves']} halves | "
                f"{name} | {rate:,.0f} | {share:.2f}x | {note} | "
                f"{res['peak_rss_mb']:,.0f} |"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", default="10", help="comma-separated table sizes (default 10)")
    ap.add_argument("--storage", choices=["local", "s3"], default="local")
    ap.add_argument("--half-minutes", type=float, default=45.0)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the 3 feeds")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    sizes = [int(g) for g in args.games.split(",")]

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the S3 server
    with tempfile.TemporaryDirectory(prefix="avspot-bench-feed-") as tmp_s:
        tmp = Path(tmp_s)
        env = dict(os.environ)
        s3 = None
        if args.storage == "s3":
            from tests.support.s3server import S3Server

            s3 = S3Server(tmp / "s3", bucket="avspot").start()
            env.update(s3.env)
            os.environ.update(s3.env)
        try:
            rows = []
            for games in sizes:
                table = _table(games, args.storage, tmp, s3, args.half_minutes)
                endpoint = s3.endpoint if s3 is not None else None
                cache = tmp / f"cache-{games}"
                rows.append(measure(table, endpoint, args.epochs, env, cache, args.rounds))
        finally:
            if s3 is not None:
                s3.stop()
    report(rows, args.storage, args.half_minutes)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"reproduce: {sys.executable} benchmarks/bench_feed.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

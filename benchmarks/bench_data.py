"""Data-layer throughput and memory: synth, ingest, bytes per game, streaming reader peak RSS.

    .venv/bin/python benchmarks/bench_data.py                      # full size (a few minutes)
    .venv/bin/python benchmarks/bench_data.py --half-minutes 2     # quick smoke run

Prints figures; asserts nothing. Peak RSS is measured in a fresh child process per table so
that earlier work does not inflate it: ``iter_halves`` (streaming) against reading every half
into a list (the way the SoccerNet code bases load features).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from avspot.datasets.labels import format_game_time
from avspot.datasets.soccernet import ingest
from avspot.datasets.synth import synth_games, synthesize

_CHILD = """
import resource, sys
from avspot.datasets.table import iter_halves
mode, uri = sys.argv[1], sys.argv[2]
if mode == "stream":
    frames = sum(h.n_frames for h in iter_halves(uri))
else:
    halves = list(iter_halves(uri))
    frames = sum(h.n_frames for h in halves)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, frames)
"""


def _peak_rss_mb(mode: str, uri: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, uri], capture_output=True, text=True, check=True
    )
    return float(out.stdout.split()[0])


def _write_soccernet_tree(root: str, games: int, half_minutes: float, seed: int) -> str:
    """A SoccerNet v1 tree from synthetic games (+ a split file); returns the split file path."""
    splits: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    annotations: dict[str, list[dict[str, str]]] = {}
    for h in synth_games(games, seed, half_minutes):
        d = os.path.join(root, h.game)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, f"{h.half}_ResNET_PCA512.npy"), h.video)
        np.save(
            os.path.join(d, f"{h.half}_VGGish.npy"), h.audio[: h.n_frames - 2]
        )  # VGGish shorter
        if h.half == 1:
            splits[h.split].append(h.game)
        annotations.setdefault(h.game, []).extend(
            {
                "gameTime": format_game_time(h.half, e.position_ms // 1000),
                "label": e.raw_label,
                "team": "home",
            }
            for e in h.events
        )
    for game, anns in annotations.items():
        with open(os.path.join(root, game, "Labels.json"), "w") as f:
            json.dump({"UrlLocal": game, "annotations": anns}, f)
    path = os.path.join(root, "splits.json")
    with open(path, "w") as f:
        json.dump(splits, f)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--synth-games", type=int, default=20)
    p.add_argument("--ingest-games", type=int, default=10)
    p.add_argument("--sizes", default="5,10,20,50", help="games per table for the RSS comparison")
    p.add_argument("--half-minutes", type=float, default=45.0)
    p.add_argument("--workdir", default=None, help="where tables go (default: a temp dir)")
    args = p.parse_args(argv)
    cmd = " ".join(
        ["python", "benchmarks/bench_data.py", *(argv if argv is not None else sys.argv[1:])]
    )
    print(f"reproduce: {cmd}")
    print(
        f"machine: {os.cpu_count()} CPUs; half length {args.half_minutes:g} min + 0-4 min stoppage"
    )
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        # synth: generation alone, then generation + Parquet + fingerprint
        t0 = time.perf_counter()
        n = sum(1 for _ in synth_games(args.synth_games, 0, args.half_minutes))
        gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        m = synthesize(
            os.path.join(tmp, "synth"),
            games=args.synth_games,
            seed=0,
            half_minutes=args.half_minutes,
        )
        total = time.perf_counter() - t0
        print(
            f"synth  {args.synth_games} games: generate {n / gen:6.1f} halves/s ({gen:.1f}s); "
            f"generate+write {n / total:6.1f} halves/s ({total:.1f}s)"
        )
        print(
            f"table  {m.bytes / args.synth_games / 1e6:.1f} MB per game "
            f"({m.bytes / m.frames / 1024:.2f} KiB per frame, raw float32 {2 * 512 * 4 / 1024:.1f} KiB)"
        )
        # ingest of a SoccerNet tree written from synthetic games
        root = os.path.join(tmp, "soccernet")
        split_file = _write_soccernet_tree(root, args.ingest_games, args.half_minutes, seed=1)
        t0 = time.perf_counter()
        mi = ingest(root, os.path.join(tmp, "ingested"), splits=split_file)
        dt = time.perf_counter() - t0
        print(
            f"ingest {args.ingest_games} games: {mi.counts['halves'] / dt:6.1f} halves/s ({dt:.1f}s)"
        )
        # peak RSS: streaming vs loading everything
        print("peak RSS of a reader process (MB):")
        print(f"  {'games':>5}  {'table MB':>8}  {'iter_halves':>11}  {'load all':>8}")
        for g in [int(x) for x in args.sizes.split(",") if x]:
            uri = os.path.join(tmp, f"rss-{g}")
            mt = synthesize(uri, games=g, seed=2, half_minutes=args.half_minutes)
            stream, load = _peak_rss_mb("stream", uri), _peak_rss_mb("load", uri)
            print(f"  {g:>5}  {mt.bytes / 1e6:>8.0f}  {stream:>11.0f}  {load:>8.0f}")
            shutil.rmtree(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())

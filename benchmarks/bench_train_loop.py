"""Samples/s of the plain in-process training loop: the baseline for Tune + Ray Data overhead.

    .venv/bin/python benchmarks/bench_train_loop.py                      # ~1-2 min on 2 cores
    .venv/bin/python benchmarks/bench_train_loop.py --clusters 512 --pool-out none

Synthesizes a small table (``avspot.datasets.synth.synthesize``; or ``--table URI``), reads its
train split into ``avmodels.data.ChunkBatches`` and times ``Trainer.train_epoch`` (forward +
backward + Adam, batch 256, T = 20 s, 512-d per modality) over ``--batches`` batches after one
warm-up batch; also the batching alone. Prints figures, asserts nothing (docs/contracts.md, performance
compares them with sn-spotting's NetVLAD on the same machine: k=64 712 windows/s, k=512 90).
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=None, help="existing table URI (default: synthesize one)")
    p.add_argument("--games", type=int, default=4, help="synthetic games (default 4)")
    p.add_argument("--half-minutes", type=float, default=10.0, help="minutes per synthetic half")
    p.add_argument("--fusions", default="before_fc,video", help="comma-separated fusion methods")
    p.add_argument("--pooling", default="netvlad")
    p.add_argument("--clusters", type=int, default=64)
    p.add_argument("--pool-out", default="512", help="projection width, or none (sn-spotting head)")
    p.add_argument("--window-s", type=float, default=20.0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--batches", type=int, default=10, help="timed batches per configuration")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = p.parse_args(argv)

    import torch

    from avspot.avmodels.data import ChunkBatches
    from avspot.avmodels.train_config import TrainConfig
    from avspot.avmodels.trainer import Trainer
    from avspot.datasets.table import iter_halves

    torch.set_num_threads(args.threads)
    print("$ " + shlex.join([sys.executable, *sys.argv]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    with tempfile.TemporaryDirectory() as tmp:
        uri = args.table
        if uri is None:
            from avspot.datasets.synth import synthesize

            uri = str(Path(tmp) / "table")
            t0 = time.perf_counter()
            synthesize(uri, games=args.games, seed=0, half_minutes=args.half_minutes)
            print(f"synthesized {args.games} games in {time.perf_counter() - t0:.1f}s: {uri}")
        halves = list(iter_halves(uri, split="train"))
        if not halves:
            print(f"{uri}: no train halves", file=sys.stderr)
            return 2
        w = int(round(args.window_s * halves[0].fps))
        stream = ChunkBatches(halves, w, args.batch_size, seed=0)
        print(f"train: {len(halves)} halves, {stream.num_samples} chunks of {w} frames")

        t0 = time.perf_counter()
        n = sum(len(b["targets"]) for b in itertools.islice(stream(1), args.batches))
        dt = time.perf_counter() - t0
        print(f"batching only: {n / dt:,.0f} samples/s ({n} samples, {dt:.2f}s)")

        for fusion in args.fusions.split(","):
            cfg = TrainConfig().merge(
                {
                    "fusion": fusion,
                    "pooling": args.pooling,
                    "clusters": args.clusters,
                    "pool_out": None if args.pool_out.lower() == "none" else int(args.pool_out),
                    "window_s": float(args.window_s),
                    "batch_size": args.batch_size,
                    "video_dim": int(halves[0].video.shape[1]),
                    "audio_dim": int(halves[0].audio.shape[1]),
                }
            )
            trainer = Trainer(cfg)
            params = sum(p.numel() for p in trainer.model.parameters())

            def limited(epoch: int, count: int) -> object:
                return itertools.islice(stream(epoch), count)

            trainer.train_epoch(0, lambda e: limited(e, 1))  # warm-up
            _, _, samples, seconds = trainer.train_epoch(1, lambda e: limited(e, args.batches))
            print(
                f"train loop fusion={fusion} pooling={args.pooling} k={args.clusters} "
                f"pool_out={args.pool_out} "
                f"T={args.window_s:g}s batch={args.batch_size} ({params / 1e6:.2f}M params): "
                f"{samples / seconds:,.0f} samples/s ({samples} samples, {seconds:.2f}s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Platform overhead: a trial's training samples/s under Ray Tune + Ray Data vs a bare PyTorch loop.

Both train the same configuration on the same synthetic table for the same epochs; the figure is
the median per-epoch `train_samples_per_s` the trainer reports (training time only, validation
excluded) and their ratio (target in docs/contracts.md: Tune within 1.15x of the bare loop).

    .venv/bin/python benchmarks/bench_platform.py [--games 8] [--half-minutes 10] [--epochs 3]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", type=int, default=8)
    ap.add_argument("--half-minutes", type=float, default=10.0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument(
        "--set",
        action="append",
        default=["fusion=before_fc", "pooling=netvlad", "clusters=64", "window_s=20"],
    )
    args = ap.parse_args(argv)

    from avspot.avmodels.data import ChunkBatches
    from avspot.avmodels.train_config import TrainConfig
    from avspot.avmodels.trainer import Trainer
    from avspot.datasets.synth import synthesize
    from avspot.datasets.table import iter_halves, read_halves
    from avspot.search.tuning.tuner import SearchOptions, run_search

    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides.update(max_epochs=str(args.epochs), val_spotting="false", monitor="val_map")
    with tempfile.TemporaryDirectory(prefix="avspot-bench-platform-") as tmp:
        table = str(Path(tmp) / "table")
        synthesize(table, games=args.games, seed=0, half_minutes=args.half_minutes)

        # Bare loop: the train split in memory, in-process batches.
        cfg = TrainConfig.from_overrides(overrides)
        batches = ChunkBatches(
            read_halves(table, "train"), cfg.model.window_frames, cfg.batch_size, seed=0
        )
        t0 = time.perf_counter()
        bare = Trainer(cfg).fit(batches, lambda: iter_halves(table, "valid"))
        bare_wall = time.perf_counter() - t0
        bare_sps = statistics.median(h["train_samples_per_s"] for h in bare.history)

        # Tune + Ray Data: one trial of the same config (a one-point grid via a fixed space).
        space_dir = Path(tmp)
        (space_dir / "results").mkdir()
        t0 = time.perf_counter()
        result = run_search(
            SearchOptions(
                data=table,
                space="smoke",
                trials=1,
                max_epochs=args.epochs,
                storage=str(space_dir / "results"),
                experiment="bench-platform",
                metric="val_map",
                tracking=False,
                register=False,
                fixed={k: str(v) for k, v in cfg.flat().items()},  # every field, as the bare run
                out=io.StringIO(),
            )
        )
        tune_wall = time.perf_counter() - t0
        rows = [
            json.loads(line)
            for line in (Path(result.rows[0]["path"]) / "result.json").read_text().splitlines()
            if line.strip()
        ]
        tune_sps = statistics.median(r["train_samples_per_s"] for r in rows)

    print(f"config: {' '.join(f'{k}={v}' for k, v in overrides.items())}")
    print(f"data: SYNTHETIC, {args.games} games of {args.half_minutes:g}-min halves")
    print(f"bare PyTorch loop:  {bare_sps:8.1f} train samples/s  (wall {bare_wall:.0f} s)")
    print(f"Ray Tune + Ray Data:{tune_sps:8.1f} train samples/s  (wall {tune_wall:.0f} s)")
    print(f"ratio bare/tune: {bare_sps / tune_sps:.2f}x (target <= 1.25x)")
    print(f"reproduce: {sys.executable} benchmarks/bench_platform.py " + " ".join(argv or []))
    return 0


if __name__ == "__main__":
    sys.exit(main())

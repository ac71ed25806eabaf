"""Platform overhead: a trial's training samples/s under Ray Tune + Ray Data vs a bare PyTorch loop.

    .venv/bin/python benchmarks/bench_platform.py                       # both tables, 3 runs each
    .venv/bin/python benchmarks/bench_platform.py --tables 8x20 --runs 1

Both train the same configuration (``before_fc``, NetVLAD k=64, T = 20 s) on the same synthetic
table for the same epochs; a run's figure is the median per-epoch ``train_samples_per_s`` that
the trainer reports (training time only, validation excluded); the ratio bare/Tune is the
platform's overhead. Tables: ``GxM`` = G games of M-minute halves (8x20: 8 games of 20-min
halves, 3 epochs; 6x10: 6 games of 10-min halves, 2 epochs). Prints each run and the median of
the ratios (target in docs/contracts.md: within 1.15x). Asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
from pathlib import Path

TABLES = {"8x20": (8, 20.0, 3), "6x10": (6, 10.0, 2)}
CONFIG = ["fusion=before_fc", "pooling=netvlad", "clusters=64", "window_s=20"]


def one_run(table: str, overrides: dict[str, str], tmp: Path, run: int) -> tuple[float, float]:
    """(bare samples/s, Tune samples/s) of one run on ``table``."""
    from avspot.avmodels.data import ChunkBatches
    from avspot.avmodels.train_config import TrainConfig
    from avspot.avmodels.trainer import Trainer
    from avspot.datasets.table import iter_halves, read_halves
    from avspot.search.cli.sets import parse_sets
    from avspot.search.tuning.tuner import SearchOptions, run_search

    # Bare loop: the train split in memory, in-process batches.
    typed = parse_sets([f"{k}={v}" for k, v in overrides.items()])
    cfg = TrainConfig().merge(typed)
    batches = ChunkBatches(read_halves(table, "train"), cfg.model.window_frames, cfg.batch_size)
    bare = Trainer(cfg).fit(batches, lambda: iter_halves(table, "valid"))
    bare_sps = statistics.median(h["train_samples_per_s"] for h in bare.history)

    # Tune + Ray Data: one trial of the same config (every field fixed with --set).
    results = tmp / f"results-{run}"
    result = run_search(
        SearchOptions(
            data=table,
            space="smoke",
            trials=1,
            max_epochs=cfg.max_epochs,
            storage=str(results),
            experiment=f"bench-platform-{run}",
            metric="val_map",
            tracking=False,
            register=False,
            fixed={k: str(v) for k, v in cfg.flat().items()},
            out=io.StringIO(),
        )
    )
    rows = [
        json.loads(line)
        for line in (Path(result.rows[0]["path"]) / "result.json").read_text().splitlines()
        if line.strip()
    ]
    return bare_sps, statistics.median(r["train_samples_per_s"] for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--set", action="append", default=list(CONFIG))
    args = ap.parse_args(argv)

    import ray

    from avspot.datasets.synth import synthesize

    summary = []
    for name in args.tables:
        games, minutes, epochs = TABLES[name]
        overrides = dict(kv.split("=", 1) for kv in args.set)
        overrides.update(max_epochs=str(epochs), val_spotting="false", monitor="val_map")
        ratios = []
        with tempfile.TemporaryDirectory(prefix="avspot-bench-platform-") as tmp:
            table = str(Path(tmp) / "table")
            synthesize(table, games=games, seed=0, half_minutes=minutes)
            for run in range(args.runs):
                bare, tune = one_run(table, overrides, Path(tmp), run)
                ray.shutdown()  # every run starts its own local Ray, as a search does
                ratios.append(bare / tune)
                print(
                    f"{name} run {run + 1}: bare {bare:8.1f} samples/s, Tune + Ray Data "
                    f"{tune:8.1f} samples/s, ratio {bare / tune:.2f}x",
                    flush=True,
                )
        summary.append((name, statistics.median(ratios), ratios))
    print(f"config: {' '.join(args.set)}; data: SYNTHETIC")
    for name, med, ratios in summary:
        games, minutes, epochs = TABLES[name]
        runs = ", ".join(f"{r:.2f}x" for r in ratios)
        print(
            f"{games} games of {minutes:g}-min halves, {epochs} epochs: median ratio bare/Tune "
            f"{med:.2f}x over {len(ratios)} runs ({runs}); target <= 1.15x"
        )
    print("reproduce:", sys.executable, "benchmarks/bench_platform.py", *(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

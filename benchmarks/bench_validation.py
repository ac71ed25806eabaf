"""What validation costs in a trial-epoch, and whether a cheaper one picks the same winners.

    .venv/bin/python benchmarks/bench_validation.py                 # ~15-30 min on 2 cores
    .venv/bin/python benchmarks/bench_validation.py --configs 6 --epochs 2 --games 6

Trains ``--configs`` configurations drawn from the ``fusion`` space (its baselines first, then
random points with a fixed seed) on a synthetic table, in process. After every epoch the same
weights are validated several ways: spotting every validation half at a 1 s stride (the full
validation), and cheaper variants (a coarser stride; spotting every k-th half; chunk
classification always covers every half). Each epoch's training time, each validation's time
and Average-mAP are recorded. Prints, per variant: the median share of a trial-epoch that
validation takes, and the Spearman rank correlation with the full validation over (a) every
trial-epoch and (b) the trials ranked by their best epoch (which trials win), and whether the
winner is the same. Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# (stride in seconds, spot every k-th validation half); the first is the full validation
VARIANTS = ((1.0, 1), (2.0, 1), (4.0, 1), (4.0, 2), (6.0, 1), (8.0, 1), (8.0, 2))


def _key(stride: float, every: int) -> str:
    return f"{stride:g}s/{every}"


def configs(n: int, seed: int) -> list[dict[str, str]]:
    """The fusion space's baselines, then random points of it (Optuna's RandomSampler)."""
    import optuna

    from avspot.search.spaces import get_space

    space = get_space("fusion")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = [dict(b) for b in space.baselines][:n]
    while len(out) < n:
        trial = study.ask()
        space.suggest(trial)
        out.append({**space.defaults, **trial.params})
        study.tell(trial, 0.0)
    return [{k: str(v) for k, v in c.items()} for c in out]


def run(table: str, overrides: dict[str, str], epochs: int) -> list[dict[str, float]]:
    """Per epoch: train seconds, and per stride validation seconds and Average-mAP."""
    from avspot.avmodels.data import ChunkBatches
    from avspot.avmodels.train_config import TrainConfig
    from avspot.avmodels.trainer import Trainer
    from avspot.datasets.table import read_halves
    from avspot.search.cli.sets import parse_sets

    typed = parse_sets([f"{k}={v}" for k, v in overrides.items()])
    cfg = TrainConfig().merge({**typed, "max_epochs": epochs, "monitor": "val_map"})
    trainer = Trainer(cfg)
    batches = ChunkBatches(read_halves(table, "train"), cfg.model.window_frames, cfg.batch_size)
    valid = read_halves(table, "valid")
    rows = []
    for epoch in range(1, epochs + 1):
        loss = trainer.train_epoch(epoch, batches)
        assert loss is not None
        row: dict[str, float] = {"epoch": epoch, "train_s": loss[3]}
        for stride, every in VARIANTS:
            trainer.cfg = dataclasses.replace(cfg, val_stride_s=stride, val_spot_every=every)
            t0 = time.perf_counter()
            metrics, _ = trainer.evaluate(valid)
            row[f"val_s@{_key(stride, every)}"] = time.perf_counter() - t0
            row[f"amap@{_key(stride, every)}"] = metrics["val_average_map"]
        trainer.cfg = cfg
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=None)
    ap.add_argument("--games", type=int, default=8)
    ap.add_argument("--half-minutes", type=float, default=20.0)
    ap.add_argument("--configs", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the raw rows as JSON here")
    args = ap.parse_args(argv)

    import torch
    from scipy.stats import spearmanr

    from avspot.datasets.synth import synthesize

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="avspot-bench-validation-") as tmp:
        table = args.table or str(Path(tmp) / "table")
        if args.table is None:
            synthesize(table, games=args.games, seed=args.seed, half_minutes=args.half_minutes)
        results = []
        for i, c in enumerate(configs(args.configs, args.seed)):
            rows = run(table, c, args.epochs)
            results.append({"config": c, "epochs": rows})
            best = max(r[f"amap@{_key(*VARIANTS[0])}"] for r in rows)
            print(f"config {i + 1}/{args.configs}: {c.get('fusion')} {c.get('pooling')} "
                  f"best full Average-mAP {best:.3f}", flush=True)  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"data: SYNTHETIC, {args.games} games of {args.half_minutes:g}-min halves; "
          f"{args.configs} fusion-space configurations x {args.epochs} epochs")  # fmt: skip
    every = [r for res in results for r in res["epochs"]]
    full = f"amap@{_key(*VARIANTS[0])}"
    full_best = [max(r[full] for r in res["epochs"]) for res in results]
    for stride, each in VARIANTS:
        k = f"amap@{_key(stride, each)}"
        shares = [
            r[f"val_s@{_key(stride, each)}"] / (r["train_s"] + r[f"val_s@{_key(stride, each)}"])
            for r in every
        ]
        rho_all = spearmanr([r[full] for r in every], [r[k] for r in every])
        cheap_best = [max(r[k] for r in res["epochs"]) for res in results]
        rho_best = spearmanr(full_best, cheap_best)
        same = full_best.index(max(full_best)) == cheap_best.index(max(cheap_best))
        line = (
            f"stride {stride:g} s, every {each} half: validation {statistics.median(shares):.0%} "
            f"of a trial-epoch (median); Spearman vs full: {rho_all.statistic:.3f} over "
            f"{len(every)} trial-epochs, {rho_best.statistic:.3f} over the {len(results)} trials' "
            f"best; same winner: {'yes' if same else 'no'}"
        )
        print(line)
    print("reproduce:", sys.executable, "benchmarks/bench_validation.py", *(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

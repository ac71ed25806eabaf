"""Average-mAP: ours against the official SoccerNet v1 evaluator, same inputs, same values.

    .venv/bin/python benchmarks/bench_evaluate.py                # ~1-2 min on 2 cores
    .venv/bin/python benchmarks/bench_evaluate.py --games 20     # quicker, smaller

Writes a SoccerNet-layout tree of `--games` games (two halves of 45 min plus 0-3 min of stoppage
time, real event rates: 4.4 cards, 5.1 substitutions, 3.1 goals per game) with one prediction
per second per class, then times (targets: docs/contracts.md, performance):
  1. the computation: the official `average_mAP` on the dense per-half arrays against
     `metrics.average_map` on the same arrays (target >= 100x);
  2. the whole command: the official `evaluate` (JSON reading included) against
     `avspot evaluate --json`, in process (`cli.main`) and as a subprocess (target >= 10x).
The official slow paths run once (`--official-repeats`); ours are medians of `--repeats` runs.
The official computation is timed inside the official `evaluate` run (its `average_mAP` is
wrapped), so the official code runs once in all. Values are asserted equal to 1e-9; times are
only printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

RAW = {
    "card": ["y-card", "r-card", "yr-card"],
    "subs": ["substitution-in"],
    "soccer": ["soccer-ball"],
}
RATES = {"card": 4.4, "subs": 5.1, "soccer": 3.1}  # events per game (seed Table 3)


def write_tree(root: Path, games: int, seed: int) -> tuple[Path, Path]:
    """Labels.json and results_spotting.json for `games` games; one prediction/s/class."""
    from avspot.avmodels import results_io

    rng = np.random.default_rng(seed)
    labels, preds = root / "labels", root / "predictions"
    for g in range(games):
        game = f"bench_league/2020-2021/2020-01-{g % 28 + 1:02d} - {g:04d} Home 1 - 0 Away"
        annotations, rows = [], []
        for half in (1, 2):
            seconds = 2700 + int(rng.integers(0, 181))
            events = {
                c: np.sort(rng.integers(0, seconds, rng.poisson(r / 2))) for c, r in RATES.items()
            }
            for c, secs in events.items():
                for s in secs:
                    annotations.append(
                        {
                            "gameTime": f"{half} - {s // 60:02d}:{s % 60:02d}",
                            "label": str(rng.choice(RAW[c])),
                        }
                    )
            for c, secs in events.items():
                conf = rng.random(seconds) * 0.5
                for s in secs:  # a bump of confidence around each event
                    near = np.arange(max(0, s - 10), min(seconds, s + 11))
                    conf[near] += 0.5 * np.exp(-np.abs(near - s - rng.normal(0, 3)) / 4)
                conf = np.round(np.minimum(conf, 1.0), 4)
                rows += [(half, 1000 * s, c, float(conf[s])) for s in range(seconds)]
        (labels / game).mkdir(parents=True, exist_ok=True)
        (labels / game / "Labels.json").write_text(json.dumps({"annotations": annotations}))
        results_io.write_predictions(preds, game, rows)
    return labels, preds


def official_evaluate(labels: Path, preds: Path, metric: str) -> tuple[dict, dict, tuple]:
    """The official evaluate on the tree: its result, wall/CPU seconds (total and compute) and
    the dense arrays it passed to `average_mAP`."""
    from SoccerNet.Evaluation import ActionSpotting as official
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V1

    timing: dict[str, float] = {}
    captured: list = []
    original = official.average_mAP

    def timed(*args, **kw):
        captured.append((*args, kw.get("deltas")))
        t0, c0 = time.perf_counter(), time.process_time()
        out = original(*args, **kw)
        timing["compute"] = time.perf_counter() - t0
        timing["compute_cpu"] = time.process_time() - c0
        return out

    official.average_mAP = timed
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            result = official.evaluate(
                str(labels),
                str(preds),
                prediction_file="results_spotting.json",
                version=1,
                metric=metric,
                label_files="Labels.json",
                dataset=None,  # the games of the tree (the official lists name real games)
                EVENT_DICTIONARY=EVENT_DICTIONARY_V1,
            )
        timing["total"] = time.perf_counter() - t0
        timing["total_cpu"] = time.process_time() - c0
    finally:
        official.average_mAP = original
    return result, timing, captured[0]


def median_time(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds (this process and its children) of `repeats` calls."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        r0, t0 = _cpu(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu() - r0)
    return statistics.median(walls), statistics.median(cpus), out


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--games", type=int, default=100, help="games (2 halves each; default 100)")
    p.add_argument("--metric", default="loose", choices=["loose", "tight"])
    p.add_argument("--repeats", type=int, default=5, help="runs of ours (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workdir",
        default=None,
        help="where to write the tree (kept, and reused by later runs; default: a temp dir)",
    )
    args = p.parse_args(argv)

    from avspot.avmodels.metrics import average_map
    from avspot.search.cli.main import main as cli_main

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        t0 = time.perf_counter()
        stamp = root / f".bench-tree-{args.games}-{args.seed}"
        if stamp.exists():  # --workdir reuse: the tree of an earlier run with the same arguments
            labels, preds = root / "labels", root / "predictions"
        else:
            labels, preds = write_tree(root, args.games, args.seed)
            stamp.touch()
        n_preds = sum(len(json.loads(f.read_text())["predictions"]) for f in preds.rglob("*.json"))
        print(
            f"tree: {args.games} games, {2 * args.games} halves, {n_preds:,} predictions "
            f"(written in {time.perf_counter() - t0:.1f}s) under {root}"
        )

        print("official evaluate (runs once) ...", flush=True)
        ref, off, (targets, detections, _closests, _fr, deltas) = official_evaluate(
            labels, preds, args.metric
        )
        compute = median_time(
            lambda: average_map(targets, detections, metric=args.metric), args.repeats
        )
        argv_cli = [
            "evaluate", "--labels", str(labels), "--predictions", str(preds),
            "--metric", args.metric, "--json",
        ]  # fmt: skip

        def run_cli() -> dict:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                rc = cli_main(argv_cli)
            assert rc == 0
            return json.loads(buf.getvalue())

        in_proc = median_time(run_cli, args.repeats)
        cmd = [sys.executable, "-m", "avspot", *argv_cli]
        n_proc = max(1, args.repeats // 2)
        as_proc = median_time(
            lambda: json.loads(
                subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            ),
            n_proc,
        )

    res, cli_out, proc_out = compute[2], in_proc[2], as_proc[2]
    values = {
        "official evaluate": ref["a_mAP"],
        "metrics.average_map": res.average_map,
        "avspot evaluate (main)": cli_out["average_map"],
        "avspot evaluate (subprocess)": proc_out["average_map"],
    }
    for name, v in values.items():
        print(f"  Average-mAP {name:<30} {v:.15f}")
        assert abs(v - ref["a_mAP"]) <= 1e-9, (name, v, ref["a_mAP"])
    for i, c in enumerate(["card", "subs", "soccer"]):
        assert abs(cli_out["per_class"][c] - ref["a_mAP_per_class"][i]) <= 1e-9
        assert abs(proc_out["per_class"][c] - ref["a_mAP_per_class"][i]) <= 1e-9
        assert abs(res.per_class[c] - ref["a_mAP_per_class"][i]) <= 1e-9
    print(f"  per class: {cli_out['per_class']}  (identical to the official to 1e-9)")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print()
    rows = [
        (f"computation (dense arrays -> Average-mAP, {args.metric}, {len(deltas)} deltas)", None),
        ("official average_mAP (1 run)", (off["compute"], off["compute_cpu"])),
        (f"metrics.average_map (median of {args.repeats})", compute[:2]),
        (
            "speed-up (target >= 100x)",
            (off["compute"] / compute[0], off["compute_cpu"] / compute[1]),
        ),
        ("whole command (JSON files -> Average-mAP)", None),
        ("official evaluate (1 run)", (off["total"], off["total_cpu"])),
        (f"avspot evaluate, main() (median of {args.repeats})", in_proc[:2]),
        (f"avspot evaluate, subprocess (median of {n_proc})", as_proc[:2]),
        (
            "speed-up in process (target >= 10x)",
            (off["total"] / in_proc[0], off["total_cpu"] / in_proc[1]),
        ),
        (
            "speed-up as a process (target >= 10x)",
            (off["total"] / as_proc[0], off["total_cpu"] / as_proc[1]),
        ),
    ]
    print(f"{'':<56}{'wall':>10}{'CPU':>10}")
    for label, vals in rows:
        if vals is None:
            print(label + ":")
        elif label.startswith("speed-up"):
            print(f"  {label:<54}{vals[0]:>9.1f}x{vals[1]:>9.1f}x")
        else:
            print(f"  {label:<54}{vals[0]:>9.3f}s{vals[1]:>9.3f}s")
    print()
    print(
        "reproduce: "
        + shlex.join(
            [
                ".venv/bin/python",
                "benchmarks/bench_evaluate.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

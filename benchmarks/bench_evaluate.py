"""Average-mAP: ours against the official SoccerNet evaluator (v1 and v2), same inputs, same values.

    .venv/bin/python benchmarks/bench_evaluate.py                # ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_evaluate.py --cases v1:loose --games 20   # quicker

For each case (`--cases`, label set:metric; default v1 loose, v2 loose, v2 tight) writes a
SoccerNet-layout tree of `--games` games (two halves of 45 min plus 0-3 min of stoppage time;
v1: Labels.json at the seed's event rates, 4.4 cards, 5.1 substitutions, 3.1 goals per game, one
prediction per second per class; v2: Labels-v2.json at SoccerNet-v2's approximate rates, ~220
events per game over 17 classes, 10% not shown, one prediction every 5 s per class), then times
(targets: docs/contracts.md, performance):
  1. the computation: the official `average_mAP` on the dense per-half arrays against
     `metrics.average_map` on the same arrays (target >= 100x);
  2. the whole command: the official `evaluate` (JSON reading included) against
     `avspot evaluate --json`, in process (`cli.main`) and as a subprocess (target >= 10x).
The official slow paths run once (`--official-repeats`); ours are medians of `--repeats` runs.
The official computation is timed inside the official `evaluate` run (its `average_mAP` is
wrapped), so the official code runs once per case. Every value (Average-mAP, per class, and
for v2 visible / unshown with their per-class values) is asserted equal to 1e-9; times are only
printed.
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
# Events per game of SoccerNet-v2 (approximate: its ~110k annotations over 500 games); about 10%
# of events are marked "not shown" here.
RATES_V2 = {
    "Penalty": 0.35, "Kick-off": 5.1, "Goal": 3.4, "Substitution": 5.7, "Offside": 4.2,
    "Shots on target": 11.6, "Shots off target": 10.5, "Clearance": 15.8,
    "Ball out of play": 63.6, "Throw-in": 37.8, "Foul": 23.3, "Indirect free-kick": 21.0,
    "Direct free-kick": 4.4, "Corner": 9.7, "Yellow card": 4.1, "Red card": 0.11,
    "Yellow->red card": 0.09,
}  # fmt: skip
UNSHOWN = 0.1


def write_tree(
    root: Path, games: int, seed: int, label_set: str = "v1", every: int = 1
) -> tuple[Path, Path]:
    """Labels(-v2).json and results_spotting.json for `games` games; one prediction every
    `every` seconds per class, confidence bumped around each event."""
    from avspot.avmodels import results_io
    from avspot.datasets.labels import get_label_set

    ls = get_label_set(label_set)
    rates = RATES if label_set == "v1" else RATES_V2
    rng = np.random.default_rng(seed)
    labels, preds = root / label_set / "labels", root / label_set / "predictions"
    for g in range(games):
        game = f"bench_league/2020-2021/2020-01-{g % 28 + 1:02d} - {g:04d} Home 1 - 0 Away"
        annotations, rows = [], []
        for half in (1, 2):
            seconds = 2700 + int(rng.integers(0, 181))
            events = {
                c: np.sort(rng.integers(0, seconds, rng.poisson(r / 2))) for c, r in rates.items()
            }
            for c, secs in events.items():
                for s in secs:
                    a = {
                        "gameTime": f"{half} - {s // 60:02d}:{s % 60:02d}",
                        "label": str(rng.choice(RAW[c])) if label_set == "v1" else c,
                    }
                    if label_set != "v1":
                        a["position"] = str(1000 * int(s) + int(rng.integers(0, 1000)))
                        a["visibility"] = "not shown" if rng.random() < UNSHOWN else "visible"
                    annotations.append(a)
            for c, secs in events.items():
                conf = rng.random(seconds) * 0.5
                for s in secs:  # a bump of confidence around each event
                    near = np.arange(max(0, s - 10), min(seconds, s + 11))
                    conf[near] += 0.5 * np.exp(-np.abs(near - s - rng.normal(0, 3)) / 4)
                conf = np.round(np.minimum(conf, 1.0), 4)
                rows += [(half, 1000 * s, c, float(conf[s])) for s in range(0, seconds, every)]
        (labels / game).mkdir(parents=True, exist_ok=True)
        (labels / game / ls.labels_file).write_text(json.dumps({"annotations": annotations}))
        results_io.write_predictions(preds, game, rows, ls)
    return labels, preds


def official_evaluate(
    labels: Path, preds: Path, metric: str, label_set: str = "v1"
) -> tuple[dict, dict, tuple]:
    """The official evaluate on the tree (version 1 with Labels.json, or version 2): its result,
    wall/CPU seconds (total and compute) and the dense arrays it passed to `average_mAP`."""
    from SoccerNet.Evaluation import ActionSpotting as official
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V1, EVENT_DICTIONARY_V2

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
                version=1 if label_set == "v1" else 2,
                metric=metric,
                label_files="Labels.json" if label_set == "v1" else "Labels-v2.json",
                dataset=None,  # the games of the tree (the official lists name real games)
                EVENT_DICTIONARY=EVENT_DICTIONARY_V1 if label_set == "v1" else EVENT_DICTIONARY_V2,
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


def run_case(
    root: Path, label_set: str, metric: str, games: int, seed: int, every: int, repeats: int
) -> list[tuple[str, tuple[float, float] | None]]:
    """One label set and metric: the official evaluate once, ours `repeats` times; the values
    asserted equal to 1e-9; returns the timing rows."""
    from avspot.avmodels.metrics import average_map
    from avspot.search.cli.main import main as cli_main

    t0 = time.perf_counter()
    stamp = root / f".bench-tree-{label_set}-{games}-{seed}-{every}"
    if stamp.exists():  # --workdir reuse: the tree of an earlier run with the same arguments
        labels, preds = root / label_set / "labels", root / label_set / "predictions"
    else:
        labels, preds = write_tree(root, games, seed, label_set, every)
        stamp.touch()
    n_preds = sum(len(json.loads(f.read_text())["predictions"]) for f in preds.rglob("*.json"))
    print(
        f"\n== {label_set} {metric}: {games} games, {2 * games} halves, {n_preds:,} predictions "
        f"(one every {every} s per class; tree ready in {time.perf_counter() - t0:.1f}s) "
        f"under {root / label_set}"
    )
    print("official evaluate (runs once) ...", flush=True)
    ref, off, (targets, detections, _closests, _fr, deltas) = official_evaluate(
        labels, preds, metric, label_set
    )
    compute = median_time(
        lambda: average_map(targets, detections, metric=metric, label_set=label_set), repeats
    )
    argv_cli = [
        "evaluate", "--labels", str(labels), "--predictions", str(preds),
        "--metric", metric, "--json",
    ]  # fmt: skip

    def run_cli() -> dict:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = cli_main(argv_cli)
        assert rc == 0
        return json.loads(buf.getvalue())

    in_proc = median_time(run_cli, repeats)
    cmd = [sys.executable, "-m", "avspot", *argv_cli]
    n_proc = max(1, repeats // 2)
    as_proc = median_time(
        lambda: json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout),
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
    worst = max(abs(v - ref["a_mAP"]) for v in values.values())
    for out in (cli_out, proc_out):
        pc = list(out["per_class"].values())
        worst = max([worst, *(abs(a - b) for a, b in zip(pc, ref["a_mAP_per_class"], strict=True))])
        for kind in ("visible", "unshown"):
            if ref[f"a_mAP_{kind}"] is None:
                assert out[f"average_map_{kind}"] is None
                continue
            worst = max(worst, abs(out[f"average_map_{kind}"] - ref[f"a_mAP_{kind}"]))
            pc = list(out[f"per_class_{kind}"].values())
            ref_pc = ref[f"a_mAP_per_class_{kind}"]
            worst = max([worst, *(abs(a - b) for a, b in zip(pc, ref_pc, strict=True))])
    pc = list(res.per_class.values())
    worst = max([worst, *(abs(a - b) for a, b in zip(pc, ref["a_mAP_per_class"], strict=True))])
    assert worst <= 1e-9, worst
    if ref["a_mAP_visible"] is not None:
        print(
            f"  visible {cli_out['average_map_visible']:.15f} (official "
            f"{ref['a_mAP_visible']:.15f}), unshown {cli_out['average_map_unshown']:.15f} "
            f"(official {ref['a_mAP_unshown']:.15f})"
        )
    print(f"  max |ours - official| over every value it returns: {worst:.1e}")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return [
        (f"computation (dense arrays -> Average-mAP, {metric}, {len(deltas)} deltas)", None),
        ("official average_mAP (1 run)", (off["compute"], off["compute_cpu"])),
        (f"metrics.average_map (median of {repeats})", compute[:2]),
        (
            "speed-up (target >= 100x)",
            (off["compute"] / compute[0], off["compute_cpu"] / compute[1]),
        ),
        ("whole command (JSON files -> Average-mAP)", None),
        ("official evaluate (1 run)", (off["total"], off["total_cpu"])),
        (f"avspot evaluate, main() (median of {repeats})", in_proc[:2]),
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--games", type=int, default=100, help="games (2 halves each; default 100)")
    p.add_argument(
        "--cases",
        default="v1:loose,v2:loose,v2:tight",
        help="label set:metric pairs (default v1:loose,v2:loose,v2:tight)",
    )
    p.add_argument("--every-v1", type=int, default=1, help="seconds between v1 predictions")
    p.add_argument("--every-v2", type=int, default=5, help="seconds between v2 predictions")
    p.add_argument("--repeats", type=int, default=5, help="runs of ours (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workdir",
        default=None,
        help="where to write the trees (kept, and reused by later runs; default: a temp dir)",
    )
    args = p.parse_args(argv)
    cases = []
    for item in args.cases.split(","):
        label_set, _, metric = item.partition(":")
        if label_set not in ("v1", "v2") or metric not in ("loose", "tight", *_AT):
            p.error(f"--cases {item!r}: expected v1|v2:loose|tight|at1..at5")
        cases.append((label_set, metric))

    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        for label_set, metric in cases:
            every = args.every_v1 if label_set == "v1" else args.every_v2
            rows = run_case(root, label_set, metric, args.games, args.seed, every, args.repeats)
            tables.append((label_set, metric, rows))
    for label_set, metric, rows in tables:
        print(f"\n{label_set} {metric}{'':<50}{'wall':>10}{'CPU':>10}")
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


_AT = tuple(f"at{d}" for d in range(1, 6))

if __name__ == "__main__":
    sys.exit(main())

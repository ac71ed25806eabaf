"""Record a grid once: every configuration's per-epoch validation curve and seconds per epoch.

    .venv/bin/python benchmarks/search_replay/record.py --estimate
    .venv/bin/python benchmarks/search_replay/record.py
    .venv/bin/python benchmarks/search_replay/record.py --preset tiny --out /tmp/tiny.json
    .venv/bin/python benchmarks/search_replay/record.py --preset gpu-seed

(time 6 configurations and print the estimate; record the default CPU grid into grid_cpu.json
here; a smoke recording in seconds; the seed's grid, for a GPU machine.)

Trains each configuration of a grid in process with the project's trainer (``train``: all
halves in memory, no Ray) on a synthetic feature table that it creates (deterministic in
``--games``/``--half-minutes``/``--data-seed``; its fingerprint goes into the header), or on
``--data URI``, and writes one JSON file (format: ``_recording.py``) that ``replay.py`` replays
search methods over. The trainer runs as a search trial would: monitor ``val_average_map``,
seed 0, the ``paper`` space's defaults (dropout 0.4, step schedule, batch 256), ``max_epochs``
from the preset; an early stop by the trainer is recorded as such (fewer epochs).

Presets (``--axis NAME=L1,L2`` keeps only some labels of an axis, ``--set KEY=VALUE`` adds a
trainer override to every configuration):

- ``cpu`` (default): the seed's 9 models x NetRVLAD k=8 / NetVLAD k=16 x 20/30/60 s windows x
  learning rate 1e-4/1e-3/1e-2 (the ``fusion`` space's range; 1e-4 is the slow starter) = 162
  configurations x 8 epochs on 16 synthetic games of 20-min halves (10/3/3 train/valid/test
  games; 5 batches of 256 per epoch at 20 s). Estimated 32 min on this 2-core machine at load
  2 (``--estimate``: 12 s per configuration, 6-17 s); allow 1-2 h when the machine is busy.
  12 games of 10-min halves (``--games 12 --half-minutes 10``) take 14 min but train only
  1-3 batches per epoch.
- ``gpu-seed``: the seed's grid (the ``paper`` space): 9 models x NetRVLAD k=64 / NetVLAD k=512
  x 20/30/60 s = 54 configurations x 12 epochs on 40 synthetic games of full 45-min halves.
  The trainer picks the device; nothing here is CPU-specific.
- ``tiny``: 2 models x 2 windows x 2 epochs on 3 games of 3-min halves (smoke test, ~5 s).

The header also lists ``baselines``: the ``fusion`` space's BASELINES (the seed's configuration
for video, audio and before_fc) mapped onto the grid, which ``replay.py``'s ``+baselines``
methods evaluate first, as ``avspot search --space fusion`` does.

Resumable: each configuration is appended when it ends (locked read-merge-atomic-replace), so a
killed recording rerun with the same arguments continues with the configurations still missing
(a different grid, fixed settings or table refuses to mix into the same file). Several recorders
with the same arguments share the work: each claims a configuration before training it.
``--estimate`` trains a spread of ``--estimate-configs`` configurations for 2 epochs and prints
the time the whole grid would take on this machine now (first epoch + 7 x a later one, x 162);
a recording prints an estimate after its first configuration and an ETA after each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import shlex
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _project  # noqa: E402  (every avspot import is in _project.py)
import _recording as R  # noqa: E402

HERE = Path(__file__).resolve().parent
CURVES = ("val_average_map", "val_map", "train_loss", "val_loss", "val_average_map_tight", "lr")


# ---- presets ------------------------------------------------------------------------------------


def _pooling_items(pooling_k: dict[str, tuple[str, int]]) -> list[dict[str, Any]]:
    return [
        {"label": label, "set": {"pooling": pooling, "clusters": k}}
        for label, (pooling, k) in pooling_k.items()
    ]


def preset(name: str) -> dict[str, Any]:
    """A grid definition: axes, fixed overrides, epochs and the synthetic data to record on."""
    paper = _project.get_space("paper")  # the seed's grid: fusion methods, windows, defaults
    fusions = list(paper.grid["fusion"])
    windows = [float(w) for w in paper.grid["window_s"]]
    defaults = dict(paper.defaults)  # dropout 0.4, lr 1e-3, schedule step, batch 256
    if name == "cpu":
        fixed = {k: v for k, v in defaults.items() if k != "lr"}
        axes = {
            "fusion": fusions,
            "pooling_k": _pooling_items(
                {"netrvlad-8": ("netrvlad", 8), "netvlad-16": ("netvlad", 16)}
            ),
            "window_s": windows,
            "lr": [1e-4, 1e-3, 1e-2],
        }
        return {"axes": axes, "fixed": fixed, "max_epochs": 8, "games": 16, "half_minutes": 20.0}
    if name == "gpu-seed":
        axes = {
            "fusion": fusions,
            "pooling_k": _pooling_items(dict(paper.module.POOLING_K)),
            "window_s": windows,
        }
        return {
            "axes": axes,
            "fixed": defaults,
            "max_epochs": 12,
            "games": 40,
            "half_minutes": 45.0,
        }
    if name == "tiny":
        fixed = {**defaults, "batch_size": 64}
        axes = {
            "fusion": ["video", "before_fc"],
            "pooling_k": _pooling_items({"netvlad-8": ("netvlad", 8)}),
            "window_s": [10.0, 20.0],
        }
        return {"axes": axes, "fixed": fixed, "max_epochs": 2, "games": 3, "half_minutes": 3.0}
    raise SystemExit(f"--preset {name!r}: unknown; valid: cpu, gpu-seed, tiny")


def map_baselines(axes: dict[str, Any], baselines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``fusion`` space's BASELINES (the seed's configuration for video, audio and
    before_fc) as grid points: on each axis the value whose overrides agree with the baseline on
    the most keys, ties going to the first key (NetVLAD k=64 -> the grid's NetVLAD); a baseline
    that some axis has no fitting value for is left out.
    """
    items = R.axis_items(axes)
    points: list[dict[str, Any]] = []
    for b in baselines:
        point = {}
        for name, values in items.items():

            def agree(item: dict[str, Any], b: dict[str, Any] = b) -> tuple[int, bool]:
                same = [k in b and b[k] == v for k, v in item["set"].items()]
                return sum(same), same[0]  # ties: the first key (pooling before clusters)

            best = max(values, key=agree)
            if agree(best)[0] == 0:
                break
            point[name] = best["label"]
        else:
            if point not in points:
                points.append(point)
    return points


def _parse_scalar(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def restrict_axes(axes: dict[str, Any], specs: list[str]) -> dict[str, Any]:
    """Apply ``--axis NAME=L1,L2``: keep only those labels of the axis (compared as text)."""
    items = R.axis_items(axes)
    out = dict(axes)
    for spec in specs:
        name, _, labels = spec.partition("=")
        if name not in items or not labels:
            raise SystemExit(f"--axis {spec!r}: expected NAME=L1,L2 with NAME in {list(items)}")
        wanted = labels.split(",")
        by_text = {str(i["label"]): i for i in items[name]}
        unknown = [w for w in wanted if w not in by_text]
        if unknown:
            raise SystemExit(f"--axis {name}: unknown labels {unknown}; valid: {list(by_text)}")
        out[name] = [by_text[w] for w in wanted]
    return out


# ---- data ---------------------------------------------------------------------------------------


def prepare_data(
    args: argparse.Namespace, plan: dict[str, Any], tmp: str
) -> tuple[dict, list, list]:
    """(header data description, train halves, valid halves): a fresh synthetic table or --data."""
    synthesize, read_halves, read_manifest = _project.data()
    if args.data:
        uri = args.data
        manifest = read_manifest(uri)
    else:
        games = args.games or plan["games"]
        half_minutes = args.half_minutes or plan["half_minutes"]
        uri = str(
            Path(args.table_dir or tmp) / f"synth-g{games}-m{half_minutes:g}-s{args.data_seed}"
        )
        if Path(uri).exists():
            manifest = read_manifest(uri)
        else:
            t0 = time.perf_counter()
            manifest = synthesize(uri, games=games, seed=args.data_seed, half_minutes=half_minutes)
            print(
                f"synthesized {games} games of {half_minutes:g}-min halves in "
                f"{time.perf_counter() - t0:.1f}s (fingerprint {manifest.fingerprint[:12]})"
            )
    per_split = manifest.counts.get("per_split", {})
    data = {
        "source": manifest.source,
        "uri": uri if args.data else None,
        "fingerprint": manifest.fingerprint,
        "seed": manifest.seed,
        "params": manifest.params,
        "counts": {s: per_split.get(s, {}) for s in ("train", "valid")},
    }
    train_halves, valid_halves = read_halves(uri, "train"), read_halves(uri, "valid")
    if not train_halves or not valid_halves:
        raise SystemExit(f"{uri}: needs train and valid halves (synthetic: --games >= 3)")
    return data, train_halves, valid_halves


# ---- training -----------------------------------------------------------------------------------


def machine(threads: int) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "cuda_device": cuda,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _epoch_log(end: Any) -> None:
    """One line per epoch (with -v)."""
    m = end.metrics
    print(
        f"    epoch {end.epoch}: val_average_map {m.get('val_average_map', math.nan):.4f} "
        f"val_map {m.get('val_map', math.nan):.4f} {m.get('epoch_time_s', 0):.1f}s",
        flush=True,
    )


def train_point(
    header: dict[str, Any],
    point: dict[str, Any],
    halves: tuple[list, list],
    threads: int,
    *,
    max_epochs: int | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Train one grid point; its recording entry (KeyboardInterrupt if the run was interrupted)."""
    TrainConfig, train = _project.trainer()
    train_halves, valid_halves = halves
    overrides = {
        **header["fixed"],
        **R.point_overrides(header["axes"], point),
        "max_epochs": max_epochs or header["max_epochs"],
        "monitor": header["metric"],
        "seed": header["seed"],
        "num_threads": threads,
        "video_dim": int(train_halves[0].video.shape[1]),
        "audio_dim": int(train_halves[0].audio.shape[1]),
    }
    overrides = {k: str(v) for k, v in overrides.items()}  # as recorded: --set strings
    cfg = TrainConfig().merge(_project.parse_sets(overrides))
    result = train(cfg, train_halves, valid_halves, _epoch_log if verbose else None)
    if result.stop_reason == "interrupted" or not result.history:
        raise KeyboardInterrupt
    hist = result.history
    return {
        "point": dict(point),
        "overrides": overrides,
        "train_config": cfg.flat(),
        "epochs": len(hist),
        "stop_reason": result.stop_reason,
        "best_epoch": result.best_epoch,
        "curves": {c: [_num(h.get(c)) for h in hist] for c in CURVES if c in hist[0]},
        "epoch_s": [round(float(h["epoch_time_s"]), 4) for h in hist],
        "train_s": [round(float(h["train_time_s"]), 4) for h in hist],
        "wall_s": round(float(result.wall_s), 3),
        "recorded": _now(),
        "host": socket.gethostname(),
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fmt_s(s: float) -> str:
    if s < 90:
        return f"{s:.0f}s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def config_seconds(epoch_s: list[float], max_epochs: int) -> float:
    """A configuration's time for ``max_epochs`` from a short run: the first epoch (warm-up
    included) plus the later epochs' mean for each of the rest."""
    if len(epoch_s) < 2:
        return epoch_s[0] * max_epochs
    later = sum(epoch_s[1:]) / (len(epoch_s) - 1)
    return epoch_s[0] + later * (max_epochs - 1)


def estimate(header: dict, points: list[dict], halves: tuple, threads: int, k: int) -> float:
    """Train a spread of ``k`` configurations for 2 epochs; print and return the grid's time."""
    names = list(R.axis_labels(header["axes"]))
    n = len(points)
    picks = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(min(k, n))})
    per_config = []
    for i in picks:
        entry = train_point(header, points[i], halves, threads, max_epochs=2)
        secs = config_seconds(entry["epoch_s"], header["max_epochs"])
        per_config.append(secs)
        print(
            f"  {R.point_key(points[i], names)}: epochs {entry['epoch_s']} s -> "
            f"{_fmt_s(secs)} for {header['max_epochs']} epochs",
            flush=True,
        )
    mean = sum(per_config) / len(per_config)
    total = mean * n
    print(
        f"estimate: {n} configurations x {header['max_epochs']} epochs = "
        f"{n * header['max_epochs']} trial-epochs, {_fmt_s(mean)} per configuration "
        f"(mean of {len(picks)}, {_fmt_s(min(per_config))}-{_fmt_s(max(per_config))}) -> "
        f"{_fmt_s(total)} on this machine now (load average "
        f"{os.getloadavg()[0]:.1f}, {threads} torch threads)",
        flush=True,
    )
    return total


# ---- main ---------------------------------------------------------------------------------------


def build_header(
    args: argparse.Namespace, plan: dict[str, Any], data: dict, threads: int, command: str
) -> dict:
    fixed = dict(plan["fixed"])
    for spec in args.set:
        key, sep, value = spec.partition("=")
        if not sep:
            raise SystemExit(f"--set {spec!r}: expected KEY=VALUE")
        fixed[key.strip()] = _parse_scalar(value.strip())
    axes = R.axis_items(restrict_axes(plan["axes"], args.axis))
    baselines = map_baselines(axes, _project.get_space("fusion").baselines)
    return {
        "preset": args.preset,
        "metric": "val_average_map",
        "max_epochs": args.max_epochs or plan["max_epochs"],
        "seed": args.seed,
        "axes": axes,
        "fixed": fixed,
        # evaluated first by replay.py's +baselines methods, as `avspot search --space fusion`
        # evaluates its BASELINES first
        "baselines": baselines,
        "data": data,
        "created": _now(),
        "machine": machine(threads),
        "command": command,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cpu", help="cpu (default), gpu-seed or tiny")
    p.add_argument("--out", default=None, help="recording JSON (default: grid_<preset>.json here)")
    p.add_argument(
        "--data", default=None, help="an existing feature table URI instead of synthetic"
    )
    p.add_argument("--games", type=int, default=None, help="synthetic games (preset's default)")
    p.add_argument("--half-minutes", type=float, default=None, help="synthetic half length")
    p.add_argument("--data-seed", type=int, default=0, help="synthetic table seed (default 0)")
    p.add_argument(
        "--table-dir", default=None, help="keep the synthetic table here (default: temp)"
    )
    p.add_argument("--max-epochs", type=int, default=None, help="epochs per configuration")
    p.add_argument("--seed", type=int, default=0, help="training seed (as `avspot search --seed`)")
    p.add_argument("--axis", action="append", default=[], help="NAME=L1,L2: only these labels")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE on every configuration")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    p.add_argument("--limit", type=int, default=None, help="record at most N configurations now")
    p.add_argument("--estimate", action="store_true", help="time a few configurations, record none")
    p.add_argument(
        "--estimate-configs", type=int, default=6, help="configurations --estimate times"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="one line per epoch")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    command = shlex.join([sys.executable, str(Path(__file__).resolve()), *argv])
    import torch

    torch.set_num_threads(args.threads)
    plan = preset(args.preset)
    out = Path(args.out) if args.out else HERE / f"grid_{args.preset}.json"
    print(f"$ {command}", flush=True)
    with tempfile.TemporaryDirectory(prefix="avspot-record-") as tmp:
        data, train_halves, valid_halves = prepare_data(args, plan, tmp)
        halves = (train_halves, valid_halves)
        header = build_header(args, plan, data, args.threads, command)
        points = R.grid_points(header["axes"])
        names = list(R.axis_labels(header["axes"]))
        print(
            f"grid: {' x '.join(f'{len(v)} {k}' for k, v in header['axes'].items())} = "
            f"{len(points)} configurations x {header['max_epochs']} epochs; "
            f"{len(train_halves)} train / {len(valid_halves)} valid halves",
            flush=True,
        )
        if args.estimate:
            estimate(header, points, halves, args.threads, args.estimate_configs)
            return 0
        session = {"started": _now(), "command": command, "machine": header["machine"]}
        try:
            rec = R.start_session(out, header, session)
        except R.RecordingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        todo = [p for p in points if R.point_key(p, names) not in rec.entries]
        print(
            f"{out}: {len(points) - len(todo)} of {len(points)} recorded; {len(todo)} to go",
            flush=True,
        )
        done, spent = 0, 0.0
        for point in todo:
            if args.limit is not None and done >= args.limit:
                break
            key = R.point_key(point, names)
            if not R.claim(out, key):
                continue  # another recorder is training it
            try:
                if key in R.load(out).entries:
                    continue  # recorded by another recorder meanwhile
                t0 = time.perf_counter()
                entry = train_point(header, point, halves, args.threads, verbose=args.verbose)
                n = R.append_entry(out, entry)
            except KeyboardInterrupt:
                print(
                    f"\ninterrupted; {out} keeps every finished configuration; rerun the same "
                    "command to continue",
                    flush=True,
                )
                return 130
            finally:
                R.release(out, key)
            done += 1
            spent += time.perf_counter() - t0
            left = len(points) - n
            best = max((v for v in entry["curves"][header["metric"]] if v is not None), default=0)
            eta = f"ETA {_fmt_s(spent / done * left)}" if left else "grid complete"
            print(
                f"[{n}/{len(points)}] {key}: best {header['metric']} {best:.4f}, "
                f"{entry['epochs']} epochs, {entry['wall_s']:.1f}s; {eta}",
                flush=True,
            )
            if done == 1 and left:
                print(
                    f"estimate from this configuration: {left} more x {_fmt_s(spent)} = "
                    f"{_fmt_s(spent * left)}",
                    flush=True,
                )
        rec = R.load(out)
        if not rec.missing():
            R.cleanup_work_dir(out)
            best, key, epoch = rec.best()
            print(
                f"complete: {len(rec.entries)} configurations, {rec.total_epochs} trial-epochs, "
                f"{_fmt_s(rec.total_seconds)} of epochs; best {rec.metric} {best:.4f} "
                f"({key}, epoch {epoch})"
            )
            print(f"replay: {shlex.join([sys.executable, str(HERE / 'replay.py'), str(out)])}")
        else:
            print(
                f"{out}: {len(rec.entries)} of {len(points)} recorded (the rest: not reached, or "
                "claimed by another recorder); rerun the same command to continue"
            )
        return 0


if __name__ == "__main__":
    sys.exit(main())
